import ArgumentParser
import Lockstep
import Logging

/// `--metrics HOST:PORT`, which every server binary takes.
public struct MetricsOptions: ParsableArguments {
  @Option(
    help: ArgumentHelp(
      "Serve Prometheus metrics on http://HOST:PORT/metrics (plain HTTP: use a management address).",
      valueName: "host:port"))
  public var metrics: String?

  public init() {}

  public func validate() throws {
    if let metrics, HostPort(parsing: metrics) == nil {
      throw ValidationError("--metrics '\(metrics)' is not HOST:PORT (example: 127.0.0.1:9100)")
    }
  }

  /// The address to serve metrics on, or nil without `--metrics`.
  public var address: HostPort? { metrics.flatMap(HostPort.init(parsing:)) }

  /// Starts serving `render` (sampling with `sample` every second) when
  /// `--metrics` was given; the caller keeps the endpoint for the process's
  /// lifetime.
  public func start(
    logger: Logger, sample: @escaping @Sendable () -> Void, render: @escaping @Sendable () -> [UInt8]
  ) throws -> MetricsEndpoint? {
    guard let address else { return nil }
    let endpoint = try MetricsEndpoint(address: address, logger: logger, sample: sample, render: render)
    try endpoint.start()
    logger.info("serving metrics on http://\(address.host):\(endpoint.port)/metrics")
    return endpoint
  }

  /// A VMM's metrics and their endpoint (nil, nil without `--metrics`).
  public func startNode(logger: Logger) throws -> (NodeMetrics?, MetricsEndpoint?) {
    guard address != nil else { return (nil, nil) }
    let metrics = NodeMetrics()
    let endpoint = try start(logger: logger, sample: { metrics.refresh() }, render: { metrics.render() })
    return (metrics, endpoint)
  }
}
