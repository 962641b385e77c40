import ArgumentParser
import CommandLineOptions
import Logging
import Prometheus
import Synchronization
import XCTest

@testable import Lockstep

#if canImport(Glibc)
  import Glibc
#endif

/// A command shaped like the binaries': options, a flag, an option group,
/// and a subcommand.
private struct Sample: ParsableCommand {
  static let configuration = CommandConfiguration(commandName: "sample", subcommands: [Nested.self])

  struct Group: ParsableArguments {
    @Option var failureTimeout = 1000
  }

  struct Nested: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "nested")
    @Option var tlsDir: String?
  }

  @Option var vm: String?
  @Option var heartbeatInterval = 50
  @Flag var standalone = false
  @OptionGroup var group: Group
}

final class ObservabilityTests: XCTestCase {
  func merge(_ commandLine: [String], _ environment: [String: String]) throws -> EnvironmentArguments {
    try EnvironmentArguments(command: Sample.self, commandLine: commandLine, environment: environment)
  }

  func testEnvironmentSetsOptionsFlagsAndGroupOptions() throws {
    let merged = try merge(
      ["--vm", "kv"],
      [
        "LOCKSTEP_HEARTBEAT_INTERVAL": "20", "LOCKSTEP_STANDALONE": "true", "LOCKSTEP_FAILURE_TIMEOUT": "3000",
        "PATH": "/usr/bin",
      ])
    XCTAssertEqual(merged.warnings, [])
    let command = try Sample.parse(merged.arguments)
    XCTAssertEqual(command.vm, "kv")
    XCTAssertEqual(command.heartbeatInterval, 20)
    XCTAssertTrue(command.standalone)
    XCTAssertEqual(command.group.failureTimeout, 3000)
  }

  func testCommandLineWinsAndFalseFlagsStayUnset() throws {
    let merged = try merge(
      ["--vm", "kv", "--heartbeat-interval=70"],
      ["LOCKSTEP_VM": "other", "LOCKSTEP_HEARTBEAT_INTERVAL": "20", "LOCKSTEP_STANDALONE": "0"])
    let command = try Sample.parse(merged.arguments)
    XCTAssertEqual(command.vm, "kv")
    XCTAssertEqual(command.heartbeatInterval, 70)
    XCTAssertFalse(command.standalone)
  }

  func testUnknownVariablesAreReportedAndIgnored() throws {
    let merged = try merge([], ["LOCKSTEP_ARBITER": "10.0.0.1:7400", "LOCKSTEP_HELP": "1"])
    XCTAssertEqual(merged.arguments, [])
    XCTAssertEqual(
      merged.warnings,
      ["ignoring LOCKSTEP_ARBITER: sample has no --arbiter", "ignoring LOCKSTEP_HELP: sample has no --help"])
  }

  func testBadFlagValueNamesTheVariable() {
    XCTAssertThrowsError(try merge([], ["LOCKSTEP_STANDALONE": "maybe"])) { error in
      XCTAssertTrue("\(error)".contains("LOCKSTEP_STANDALONE='maybe'"), "\(error)")
      XCTAssertTrue("\(error)".contains("true or false"), "\(error)")
    }
  }

  func testSubcommandFlagsGoAfterTheSubcommand() throws {
    let merged = try merge(["nested"], ["LOCKSTEP_TLS_DIR": "certs/operator", "LOCKSTEP_VM": "kv"])
    XCTAssertEqual(merged.arguments, ["nested", "--tls-dir", "certs/operator"])
    XCTAssertEqual(merged.warnings, ["ignoring LOCKSTEP_VM: sample nested has no --vm"])
  }

  func testNodeMetricsCountersStayMonotonicAcrossSources() {
    let metrics = NodeMetrics()
    var backup = NodeStatus(node: "b", role: "backup", generation: 1, protected: true, backup: "", serviceAddress: "")
    backup.logBytes = 5000
    backup.heartbeatsSent = 40
    backup.exits = 900
    metrics.follow { [backup] in backup }
    metrics.refresh(now: 1_000_000_000)
    var text = metrics.registry.emitToString()
    XCTAssertTrue(text.contains("lockstep_log_bytes_total 5000"), text)
    XCTAssertTrue(text.contains("lockstep_role{role=\"backup\"} 1"), text)
    // The backup went live: the primary it became starts its own counts.
    var primary = NodeStatus(
      node: "b", role: "primary-alone", generation: 2, protected: false, backup: "", serviceAddress: "",
      lagNanoseconds: 2_500_000, heldOutputs: 3, heldBytes: 120, logBytes: 700)
    primary.failovers = 1
    primary.heartbeatsSent = 2
    primary.exits = 1400
    metrics.follow { [primary] in primary }
    metrics.refresh(now: 3_000_000_000)
    text = metrics.registry.emitToString()
    for line in [
      "lockstep_log_bytes_total 5700", "lockstep_heartbeats_sent_total 42", "lockstep_failovers_total 1",
      "lockstep_exits_total 1400", "lockstep_exits_per_second 250", "lockstep_generation 2",
      "lockstep_role{role=\"primary-alone\"} 1", "lockstep_role{role=\"backup\"} 0", "lockstep_held_outputs 3",
      "lockstep_held_output_bytes 120", "lockstep_execution_lag_seconds 0.0025",
    ] {
      XCTAssertTrue(text.contains(line), "missing \(line) in\n\(text)")
    }
  }

  func testEndpointServesMetricsOverHTTP() throws {
    let metrics = NodeMetrics()
    metrics.follow {
      NodeStatus(node: "a", role: "primary", generation: 7, protected: true, backup: "b", serviceAddress: "")
    }
    let endpoint = try MetricsEndpoint(
      address: HostPort(host: "127.0.0.1", port: 0), logger: .init(label: "test"), sample: { metrics.refresh() },
      render: { metrics.render() })
    try endpoint.start()
    defer { endpoint.close() }
    let ok = try httpGet(port: endpoint.port, path: "/metrics")
    XCTAssertTrue(ok.hasPrefix("HTTP/1.1 200 OK\r\n"), ok)
    XCTAssertTrue(ok.contains("Content-Type: text/plain; version=0.0.4"), ok)
    XCTAssertTrue(ok.contains("lockstep_generation 7"), ok)
    XCTAssertTrue(ok.contains("lockstep_protected 1"), ok)
    XCTAssertTrue(try httpGet(port: endpoint.port, path: "/").hasPrefix("HTTP/1.1 404"))
    XCTAssertTrue(try httpGet(port: endpoint.port, path: nil).hasPrefix("HTTP/1.1 400"))
  }

  func testEndpointNamesAnAddressInUse() throws {
    let first = try MetricsEndpoint(address: HostPort(host: "127.0.0.1", port: 0), logger: .init(label: "t")) { [] }
    XCTAssertThrowsError(
      try MetricsEndpoint(address: HostPort(host: "127.0.0.1", port: first.port), logger: .init(label: "t")) { [] }
    ) { error in
      XCTAssertTrue("\(error)".contains("127.0.0.1:\(first.port)"), "\(error)")
    }
  }

  /// One request over a plain socket (`path` nil: a malformed request).
  private func httpGet(port: Int, path: String?) throws -> String {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    XCTAssertGreaterThanOrEqual(fd, 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
      }
    }
    XCTAssertEqual(connected, 0)
    let request = path.map { "GET \($0) HTTP/1.1\r\nHost: test\r\n\r\n" } ?? "HELLO\r\n\r\n"
    _ = request.withCString { send(fd, $0, strlen($0), 0) }
    var response: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    for _ in 0..<1000 {
      let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
      guard count > 0 else { break }
      response += chunk[..<count]
    }
    return String(decoding: response, as: UTF8.self)
  }
}

final class RefusalLogTests: XCTestCase {
  /// Each kind is logged once a period whatever the rate, and every one is
  /// counted.
  func testEachKindIsLoggedOncePerPeriodAndAllAreCounted() {
    let lines = LogLines()
    let log = RefusalLog(
      logger: Logger(label: "refusals") { _ in LogLines.Handler(lines: lines) }, period: .seconds(60))
    for index in 0..<1000 {
      log.record("untrusted", "peer \(index)", now: 1_000_000_000 + UInt64(index))
    }
    log.record("expired", "an expired peer", now: 2_000_000_000)
    XCTAssertEqual(log.counts, ["untrusted": 1000, "expired": 1])
    XCTAssertEqual(log.total, 1001)
    XCTAssertEqual(lines.messages, ["refused (untrusted): peer 0", "refused (expired): an expired peer"])
    // A minute later the next one is logged with what was left out.
    log.record("untrusted", "peer late", now: 62_000_000_000)
    XCTAssertEqual(
      lines.messages.last, "refused (untrusted): peer late (and 999 more of this kind not logged in the last minute)")
  }

  func testTLSErrorsAreClassified() {
    XCTAssertEqual(
      RefusalLog.kind(of: TLSError(.handshake, "handshake failed (peer certificate has expired)")), "expired")
    XCTAssertEqual(
      RefusalLog.kind(of: TLSError(.handshake, "x (peer certificate not signed by the cluster CA: y)")), "untrusted")
    XCTAssertEqual(RefusalLog.kind(of: TLSError(.handshake, "the peer presented no certificate")), "no-certificate")
    XCTAssertEqual(RefusalLog.kind(of: TLSError(.peerNotAllowed, "refused")), "role")
    XCTAssertEqual(RefusalLog.kind(of: TLSError(.timedOut, "slow")), "timeout")
    XCTAssertEqual(RefusalLog.kind(of: TLSError(.handshake, "wrong version number")), "handshake")
  }
}

/// The messages logged through ``LogLines/Handler``s.
private final class LogLines: Sendable {
  private let stored = Synchronization.Mutex<[String]>([])
  var messages: [String] { stored.withLock { $0 } }

  struct Handler: LogHandler {
    let lines: LogLines
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
      get { metadata[key] }
      set { metadata[key] = newValue }
    }
    func log(
      level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String,
      function: String, line: UInt
    ) {
      lines.stored.withLock { $0.append("\(message)") }
    }
  }
}

/// Inputs the fuzzers found crashing the VMM (Fuzz/crashes/README.md).
final class FuzzRegressionTests: XCTestCase {
  /// RING-1: guest-owned ring indices near 2^64 are refused, not overflowed.
  func testRingIndicesNearTheTopAreInvalid() {
    XCTAssertFalse(RingCursor(head: UInt64.max - 7, tail: UInt64.max - 7, capacity: 4096).isValid)
    XCTAssertFalse(RingCursor(head: 0, tail: 0, capacity: 0).isValid)
    XCTAssertFalse(RingCursor(head: 0, tail: 0, capacity: 24).isValid)
    XCTAssertTrue(RingCursor(head: UInt64.max - 4103, tail: UInt64.max - 4103, capacity: 4096).isValid)
    var cursor = RingCursor(head: UInt64.max - 4103, tail: UInt64.max - 4103, capacity: 4096)
    XCTAssertNotNil(cursor.reserve(payload: 100))
  }

  /// HB-1, HB-2: authentic heartbeats claiming huge gaps saturate the
  /// count, and the metrics take any count.
  func testHugeHeartbeatGapsSaturate() {
    var total = HeartbeatStatus()
    total.missed = .max - 1
    var more = HeartbeatStatus()
    more.missed = 10
    XCTAssertEqual(total.adding(more).missed, .max)
    let metrics = NodeMetrics()
    var status = NodeStatus(node: "a", role: "primary", generation: 1, protected: true, backup: "", serviceAddress: "")
    status.heartbeatsMissed = .max
    status.exits = .max
    metrics.follow { [status] in status }
    metrics.refresh()
    XCTAssertTrue(metrics.registry.emitToString().contains("lockstep_heartbeats_missed_total"))
  }
}
