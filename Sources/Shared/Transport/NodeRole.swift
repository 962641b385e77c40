/// What a node of a Lockstep cluster is, as written into its certificate
/// (the subject's organizationalUnitName is `lockstep-<role>`), so that a
/// peer can tell a VMM from an operator by the certificate it verified.
public enum NodeRole: String, Sendable, CaseIterable, CustomStringConvertible {
  /// A `primary-vmm` or `backup-vmm` (roles change at run time, so one
  /// certificate serves both). Only VMMs may call the arbiter's test-and-set.
  case vmm
  /// The `arbiter`.
  case arbiter
  /// An operator running the `lockstep` command line.
  case `operator`

  /// The prefix of the organizationalUnitName that carries the role.
  public static let organizationalUnitPrefix = "lockstep-"

  /// The organizationalUnitName written into this role's certificates,
  /// e.g. `lockstep-vmm`.
  public var organizationalUnit: String { Self.organizationalUnitPrefix + rawValue }

  /// The role an organizationalUnitName such as `lockstep-vmm` names, or
  /// nil when it names none.
  public init?(organizationalUnit: String) {
    guard organizationalUnit.hasPrefix(Self.organizationalUnitPrefix) else { return nil }
    self.init(rawValue: String(organizationalUnit.dropFirst(Self.organizationalUnitPrefix.count)))
  }

  public var description: String { rawValue }
}
