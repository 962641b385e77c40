import CoreMetrics
import Prometheus
import Synchronization

/// A VMM's metrics (docs/metrics.md), through swift-metrics into a
/// Prometheus registry that ``MetricsEndpoint`` serves.
///
/// The data path never touches a metric: the numbers are read from the
/// node's ``NodeStatus`` when sampled (every second, and at each scrape).
/// The node tells the metrics whose status to read with ``follow(_:)``; a
/// process follows several in turn (standby, backup, the primary it became),
/// and counters stay monotonic across the change: a new source's counters
/// add from zero.
public final class NodeMetrics: Sendable {
  /// The roles ``NodeStatus/role`` reports; `lockstep_role{role=…}` is 1 for
  /// the current one and 0 for the others.
  public static let roles = [
    "primary", "primary-alone", "primary-waiting", "joining", "standby", "backup-cloning", "backup", "going-live",
    "halted", "standalone",
  ]

  /// The registry the metrics live in.
  public let registry: PrometheusCollectorRegistry
  private let state: Mutex<State>

  struct State: ~Copyable {
    var source: (@Sendable () -> NodeStatus?)?
    var epoch: UInt64 = 0
    /// The last status read, and the source it came from.
    var last: (epoch: UInt64, status: NodeStatus)?
    /// The exit count exported so far (the machine's count only grows,
    /// whatever role reads it, except that a clone starts at the primary's).
    var exportedExits: UInt64 = 0
    /// Where the exits-per-second window started (monotonic ns, exits).
    var rateBase: (time: UInt64, exits: UInt64)?
    var handles: Handles
  }

  struct Handles {
    let roles: [String: CoreMetrics.Gauge]
    let generation, protected, lag, held, heldBytes, lastHeartbeat: CoreMetrics.Gauge
    let cloning, cloneRound, cloneBytes, cloneFirstCopy, cloneLastSeconds, cloneLastPause,
      cloneLastBytes: CoreMetrics.Gauge
    let exitsPerSecond: CoreMetrics.Gauge
    let logBytes, logEntries, sent, received, missed, failovers, clones, exits, refused: CoreMetrics.Counter
    let rejected: [String: CoreMetrics.Counter]

    init(factory: PrometheusMetricsFactory) {
      func gauge(_ name: String, _ dimensions: [(String, String)] = []) -> CoreMetrics.Gauge {
        CoreMetrics.Gauge(label: "lockstep_\(name)", dimensions: dimensions, factory: factory)
      }
      func counter(_ name: String, _ dimensions: [(String, String)] = []) -> CoreMetrics.Counter {
        CoreMetrics.Counter(label: "lockstep_\(name)", dimensions: dimensions, factory: factory)
      }
      roles = Dictionary(uniqueKeysWithValues: NodeMetrics.roles.map { ($0, gauge("role", [("role", $0)])) })
      generation = gauge("generation")
      protected = gauge("protected")
      lag = gauge("execution_lag_seconds")
      held = gauge("held_outputs")
      heldBytes = gauge("held_output_bytes")
      lastHeartbeat = gauge("last_heartbeat_age_seconds")
      cloning = gauge("clone_in_progress")
      cloneRound = gauge("clone_round")
      cloneBytes = gauge("clone_sent_bytes")
      cloneFirstCopy = gauge("clone_first_copy_ratio")
      cloneLastSeconds = gauge("clone_last_duration_seconds")
      cloneLastPause = gauge("clone_last_pause_seconds")
      cloneLastBytes = gauge("clone_last_bytes")
      exitsPerSecond = gauge("exits_per_second")
      logBytes = counter("log_bytes_total")
      logEntries = counter("log_entries_total")
      sent = counter("heartbeats_sent_total")
      received = counter("heartbeats_received_total")
      missed = counter("heartbeats_missed_total")
      failovers = counter("failovers_total")
      clones = counter("clones_total")
      exits = counter("exits_total")
      refused = counter("connections_refused_total")
      rejected = Dictionary(
        uniqueKeysWithValues: ["forged", "replayed", "malformed", "foreign"].map {
          ($0, counter("heartbeats_rejected_total", [("reason", $0)]))
        })
    }
  }

  /// Metrics in a registry of their own.
  public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
    self.registry = registry
    let handles = Handles(factory: PrometheusMetricsFactory(registry: registry))
    state = Mutex(State(handles: handles))
  }

  /// Reads the node's status from `source` from now on (nil from it: no
  /// sample, e.g. while the node is between roles).
  public func follow(_ source: @escaping @Sendable () -> NodeStatus?) {
    state.withLock { state in
      state.source = source
      state.epoch += 1
    }
  }

  /// Samples the current source once and updates every metric.
  public func refresh(now: UInt64 = ClockReading.monotonicNanoseconds()) {
    guard let source = state.withLock({ $0.source }), let status = source() else { return }
    state.withLock { state in
      let previous = state.last.flatMap { $0.epoch == state.epoch ? $0.status : nil }
      state.last = (state.epoch, status)
      Self.update(state.handles, with: status, previous: previous)
      if status.exits > state.exportedExits {
        state.handles.exits.increment(by: Int64(clamping: status.exits - state.exportedExits))
        state.exportedExits = status.exits
      }
      if let base = state.rateBase, status.exits >= base.exits {
        if now >= base.time + 1_000_000_000 {
          let seconds = Double(now - base.time) / 1e9
          state.handles.exitsPerSecond.record(Double(status.exits - base.exits) / seconds)
          state.rateBase = (now, status.exits)
        }
      } else {
        state.rateBase = (now, status.exits)
      }
    }
  }

  private static func update(_ handles: Handles, with status: NodeStatus, previous: NodeStatus?) {
    for (role, gauge) in handles.roles { gauge.record(role == status.role ? 1 : 0) }
    handles.generation.record(Double(status.generation))
    handles.protected.record(status.protected ? 1 : 0)
    handles.lag.record(Double(status.lagNanoseconds) / 1e9)
    handles.held.record(Double(status.heldOutputs))
    handles.heldBytes.record(Double(status.heldBytes))
    handles.lastHeartbeat.record(
      status.lastHeartbeatMilliseconds == .max ? -1 : Double(status.lastHeartbeatMilliseconds) / 1000)
    handles.cloning.record(status.cloning ? 1 : 0)
    handles.cloneRound.record(Double(status.cloneRound))
    handles.cloneBytes.record(Double(status.cloneBytes))
    handles.cloneFirstCopy.record(Double(status.cloneFirstCopyPermille) / 1000)
    handles.cloneLastSeconds.record(Double(status.lastCloneMilliseconds) / 1000)
    handles.cloneLastPause.record(Double(status.lastClonePauseMicroseconds) / 1e6)
    handles.cloneLastBytes.record(Double(status.lastCloneBytes))
    // Counters: what grew since the previous sample of the same source.
    func add(_ counter: CoreMetrics.Counter, _ value: (NodeStatus) -> UInt64) {
      let before = previous.map(value) ?? 0
      let now = value(status)
      // Clamped: swift-metrics takes an Int64, and some counts come from
      // peers (a heartbeat's sequence, a clone's exit count; HB-2).
      if now > before { counter.increment(by: Int64(clamping: now - before)) }
    }
    add(handles.logBytes) { $0.logBytes }
    add(handles.logEntries) { $0.logRecords }
    add(handles.sent) { $0.heartbeatsSent }
    add(handles.received) { $0.heartbeatsReceived }
    add(handles.missed) { $0.heartbeatsMissed }
    add(handles.failovers) { $0.failovers }
    add(handles.clones) { $0.clones }
    add(handles.refused) { $0.connectionsRefused }
    if let counter = handles.rejected["forged"] { add(counter) { $0.heartbeatsForged } }
    if let counter = handles.rejected["replayed"] { add(counter) { $0.heartbeatsReplayed } }
    if let counter = handles.rejected["malformed"] { add(counter) { $0.heartbeatsMalformed } }
    if let counter = handles.rejected["foreign"] { add(counter) { $0.heartbeatsForeign } }
  }

  /// The Prometheus text exposition of every metric, freshly sampled.
  public func render() -> [UInt8] {
    refresh()
    var buffer: [UInt8] = []
    registry.emit(into: &buffer)
    return buffer
  }
}
