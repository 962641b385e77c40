import ArgumentParser
import Lockstep

/// The failover flags `primary-vmm` and `backup-vmm` share.
public struct FailoverOptions: ParsableArguments {
  @Option(help: "The arbiter, HOST:PORT: enables failover (heartbeats, test-and-set, going live).")
  public var arbiter: String?

  @Option(help: "Milliseconds between two heartbeats to the peer.")
  public var heartbeatInterval = Int(HeartbeatTiming.default.intervalNanoseconds / 1_000_000)

  @Option(help: "Milliseconds of silence (no heartbeat, no log traffic) after which the peer is suspected.")
  public var failureTimeout = Int(HeartbeatTiming.default.failureTimeoutNanoseconds / 1_000_000)

  @Option(help: "A virtual IP, ADDRESS/PREFIX, that moves to the node serving the VM (with --service-dev).")
  public var serviceVip: String?

  @Option(help: "The interface that carries --service-vip.")
  public var serviceDev: String?

  public init() {}

  public func validate() throws {
    if let arbiter, HostPort(parsing: arbiter) == nil {
      throw ValidationError("--arbiter '\(arbiter)' is not HOST:PORT (example: 127.0.0.1:7400)")
    }
    do {
      _ = try HeartbeatTiming(
        interval: .milliseconds(heartbeatInterval), failureTimeout: .milliseconds(failureTimeout))
    } catch {
      throw ValidationError("--heartbeat-interval/--failure-timeout: \(error)")
    }
    if (serviceVip == nil) != (serviceDev == nil) {
      throw ValidationError("--service-vip and --service-dev go together")
    }
    if let serviceVip, !serviceVip.contains("/") {
      throw ValidationError("--service-vip '\(serviceVip)' needs a prefix length, e.g. 10.0.0.100/24")
    }
    if serviceVip != nil && arbiter == nil {
      throw ValidationError("--service-vip moves at failover, which needs --arbiter")
    }
  }

  /// The settings, or nil without `--arbiter`.
  public var settings: FailoverSettings? {
    get throws {
      guard let arbiter, let address = HostPort(parsing: arbiter) else { return nil }
      return FailoverSettings(
        arbiter: address,
        timing: try HeartbeatTiming(
          interval: .milliseconds(heartbeatInterval), failureTimeout: .milliseconds(failureTimeout)),
        serviceVIP: serviceVip, serviceDevice: serviceDev)
    }
  }
}
