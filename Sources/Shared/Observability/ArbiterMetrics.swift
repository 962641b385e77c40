import CoreMetrics
import Prometheus
import Synchronization

/// The arbiter's metrics (docs/metrics.md): how many VMs it holds records
/// for, and what its server counted (``ArbiterCounters``), through
/// swift-metrics into a Prometheus registry.
public final class ArbiterMetrics: Sendable {
  /// The registry the metrics live in.
  public let registry: PrometheusCollectorRegistry
  private let server: ArbiterServer
  private let state: Mutex<State>

  struct State: ~Copyable {
    var exported = ArbiterCounters()
    var exportedRefusals: [String: UInt64] = [:]
    let vms: CoreMetrics.Gauge
    let live: CoreMetrics.Gauge
    let counters: [(CoreMetrics.Counter, (ArbiterCounters) -> UInt64)]
    let refused: [String: CoreMetrics.Counter]
  }

  /// Metrics of `server`, in a registry of their own.
  public init(server: ArbiterServer, registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
    self.registry = registry
    self.server = server
    let factory = PrometheusMetricsFactory(registry: registry)
    func counter(_ name: String, _ dimensions: [(String, String)] = []) -> CoreMetrics.Counter {
      CoreMetrics.Counter(label: "lockstep_arbiter_\(name)", dimensions: dimensions, factory: factory)
    }
    let counters: [(CoreMetrics.Counter, (ArbiterCounters) -> UInt64)] = [
      (counter("connections_total"), { $0.connections }),
      (counter("connections_refused_total", [("reason", "tls")]), { $0.refusedConnections }),
      (counter("connections_refused_total", [("reason", "busy")]), { $0.busy }),
      (counter("requests_total", [("kind", "query")]), { $0.queries }),
      (counter("requests_total", [("kind", "test_and_set")]), { $0.granted + $0.lost }),
      (counter("test_and_set_total", [("result", "granted")]), { $0.granted }),
      (counter("test_and_set_total", [("result", "lost")]), { $0.lost }),
      (counter("requests_refused_total", [("reason", "refused")]), { $0.refusedRequests }),
      (counter("requests_refused_total", [("reason", "malformed")]), { $0.malformed }),
    ]
    state = Mutex(
      State(
        vms: CoreMetrics.Gauge(label: "lockstep_arbiter_vms", factory: factory),
        live: CoreMetrics.Gauge(label: "lockstep_arbiter_vms_live", factory: factory), counters: counters,
        refused: Dictionary(
          uniqueKeysWithValues: (RefusalLog.tlsKinds + ["operator", "impersonation"]).map {
            ($0, counter("refusals_total", [("reason", $0)]))
          })))
  }

  /// Reads the server's counters and records once.
  public func refresh() {
    let counted = server.counted
    let refusals = server.refusals.counts
    let records = server.store.all
    state.withLock { state in
      state.vms.record(Double(records.count))
      state.live.record(
        Double(records.values.filter { !$0.serviceAddress.isEmpty || !$0.replicationAddress.isEmpty }.count))
      for (counter, value) in state.counters {
        let now = value(counted)
        let before = value(state.exported)
        if now > before { counter.increment(by: now - before) }
      }
      state.exported = counted
      for (kind, count) in refusals {
        let before = state.exportedRefusals[kind] ?? 0
        if count > before, let counter = state.refused[kind] { counter.increment(by: count - before) }
      }
      state.exportedRefusals = refusals
    }
  }

  /// The Prometheus text exposition of every metric, freshly read.
  public func render() -> [UInt8] {
    refresh()
    var buffer: [UInt8] = []
    registry.emit(into: &buffer)
    return buffer
  }
}
