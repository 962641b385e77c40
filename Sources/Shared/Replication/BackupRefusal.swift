/// The primary refused a backup's `join` or `hello`, and why. A refusal
/// that starts with ``ReplicatedPrimary/standbyPrefix`` means "the VM
/// already has a backup": the joiner stands by and asks again later.
public struct BackupRefusal: Error, CustomStringConvertible, Sendable {
  /// The primary that refused.
  public var primary: HostPort
  /// Its reason.
  public var reason: String

  /// Whether the joiner should stand by rather than give up.
  public var standby: Bool { reason.hasPrefix(ReplicatedPrimary.standbyPrefix) }

  public var description: String { "the primary at \(primary) refused this backup: \(reason)" }
}
