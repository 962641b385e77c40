/// How a VMM takes part in failover: the arbiter that decides who may go
/// on, the heartbeat timing, and how the service address moves.
public struct FailoverSettings: Sendable {
  /// The arbiter's address.
  public var arbiter: HostPort
  /// Heartbeat interval and failure timeout.
  public var timing: HeartbeatTiming
  /// A virtual IP (`ADDRESS/PREFIX`) the node serving the VM holds on
  /// ``serviceDevice``, moved with a gratuitous ARP at failover; nil when
  /// clients reach one fixed address (one host).
  public var serviceVIP: String?
  /// The interface carrying ``serviceVIP``.
  public var serviceDevice: String?

  /// Creates settings.
  public init(
    arbiter: HostPort, timing: HeartbeatTiming = .default, serviceVIP: String? = nil, serviceDevice: String? = nil
  ) {
    self.arbiter = arbiter
    self.timing = timing
    self.serviceVIP = serviceVIP
    self.serviceDevice = serviceDevice
  }
}
