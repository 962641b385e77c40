import Foundation
import Synchronization
import XCTest

@testable import Lockstep

/// Going live: a replay that runs out of log continues live at that exit,
/// with the guest's clock continuous; and the messages and status that
/// failover adds.
final class FailoverTests: XCTestCase {
  /// Replays the first `count` entries, then reports the log exhausted (a
  /// backup whose primary died there).
  final class TruncatedInputs: InputSource {
    private let replaying: ReplayingInputs
    private var remaining: Int

    init(_ entries: [RecordingInputs.Entry], count: Int) {
      replaying = ReplayingInputs(Array(entries.prefix(count)))
      remaining = count
    }

    func input<Value: InputValue>(_ kind: InputKind, at point: ExitPoint, live: () throws -> Value) throws -> Value {
      guard remaining > 0 else { throw LogExhausted(point: point) }
      remaining -= 1
      return try replaying.input(kind, at: point, live: live)
    }
  }

  /// The guest's monotonic clock, shifted far from the host's, continues
  /// from the replayed values after the takeover; waits with deadlines in
  /// guest time end on time; every check of the guest passes.
  func testReplayThatRunsOutGoesLiveWithAContinuousClock() throws {
    let diskA = GuestHarness.temporaryPath("takeover-a.img")
    let diskB = GuestHarness.temporaryPath("takeover-b.img")
    defer { for disk in [diskA, diskB] { unlink(disk) } }
    let recorder = RecordingInputs()
    let first = try GuestHarness.run(
      GuestHarness.configuration("callcheck", disk: diskA, diskSize: 1 << 20), inputs: { recorder })
    XCTAssertEqual(first.report.stop, .exited(code: 0), first.console)

    // The recorded host's monotonic clock was 1000 s ahead of this one.
    let shift: UInt64 = 1_000_000_000_000
    var entries = recorder.entries
    for index in entries.indices {
      var reader = ByteReader(entries[index].encoded)
      var encoded: [UInt8] = []
      switch entries[index].kind {
      case .clock:
        var reading = try ClockReading.decode(from: &reader)
        reading.monotonic += shift
        reading.encode(into: &encoded)
      case .wait:
        var outcome = try WaitOutcome.decode(from: &reader)
        outcome.now += shift
        outcome.encode(into: &encoded)
      default:
        continue
      }
      entries[index].encoded = encoded
    }
    // The primary died between two of the guest's clock readings.
    let clocks = entries.indices.filter { entries[$0].kind == .clock }
    guard clocks.count >= 3 else { return XCTFail("callcheck read the clock \(clocks.count) times") }
    let cut = clocks[1] + 1
    var lastReplayed: UInt64 = 0
    for entry in entries.prefix(cut) where entry.kind == .clock {
      var reader = ByteReader(entry.encoded)
      lastReplayed = max(lastReplayed, try ClockReading.decode(from: &reader).monotonic)
    }

    let live = RecordingInputs()
    let tookOver = LockedBox<ExitPoint?>(nil)
    let replayed = entries
    let result = LockedBox<(MachineReport, String)?>(nil)
    let thread = try NamedThread(name: "test-vcpu") {
      let outputs = CapturingOutputs(network: nil)
      do {
        let configuration = try GuestHarness.configuration("callcheck", disk: diskB, diskSize: 1 << 20)
        let outcome = StandaloneVMM.runOnThisThread(
          configuration, TruncatedInputs(replayed, count: cut), outputs, nil, try MachineControl(),
          takeover: { _, point in
            tookOver.value = point
            return Takeover(inputs: live, outputs: outputs, network: nil)
          })
        result.value = (try outcome.get(), outputs.consoleText)
      } catch {
        XCTFail("\(error)")
      }
    }
    thread.join()
    guard let (report, console) = result.value else { return XCTFail("no result") }
    XCTAssertEqual(report.stop, .exited(code: 0), console)
    XCTAssertTrue(console.contains("failed=0"), console)
    XCTAssertEqual(tookOver.value?.sequence, entries[cut].point.sequence, "went live at the first missing input")
    let liveClocks = try live.entries.filter { $0.kind == .clock }.map { entry in
      var reader = ByteReader(entry.encoded)
      return try ClockReading.decode(from: &reader).monotonic
    }
    XCTAssertFalse(liveClocks.isEmpty)
    XCTAssertGreaterThanOrEqual(liveClocks.first ?? 0, lastReplayed, "the guest's clock went back at the takeover")
    XCTAssertLessThan((liveClocks.first ?? 0) - lastReplayed, 10_000_000_000, "the clock jumped at the takeover")
  }

  func testClockOffsetContinuesFromTheLastValueAndAddsWallTime() {
    let reading = ClockReading(monotonic: 5_000_000_000, wall: 1_700_000_000_000_000_000)
    // 300 ms of wall time passed; the new host's monotonic clock reads 42 s.
    let offset = Machine.clockOffset(
      lastMonotonic: 5_100_000_000, lastClock: reading, hostMonotonic: 42_000_000_000,
      hostWall: reading.wall + 300_000_000)
    XCTAssertEqual(Int64(42_000_000_000) + offset, 5_300_000_000)
    // Wall clocks out of sync (went back, or jumped an hour): continue from the last value.
    let back = Machine.clockOffset(
      lastMonotonic: 5_100_000_000, lastClock: reading, hostMonotonic: 1_000, hostWall: reading.wall - 1)
    XCTAssertEqual(Int64(1_000) + back, 5_100_000_000)
    let jump = Machine.clockOffset(
      lastMonotonic: 5_100_000_000, lastClock: reading, hostMonotonic: 1_000,
      hostWall: reading.wall + 3_600_000_000_000)
    XCTAssertEqual(Int64(1_000) + jump, 5_100_000_000)
  }

  func testFailoverMessagesRoundTrip() throws {
    let header = LogHeader(
      configuration: MachineConfiguration(name: "kv", image: [1, 2, 3], imagePath: "x", memorySize: 64 << 20),
      diskSize: 0)
    var status = NodeStatus(
      node: "node-a", role: "primary", generation: 7, protected: true, backup: "node-b",
      serviceAddress: "127.0.0.1:6379", lagNanoseconds: 1_500_000, heldOutputs: 3, heldBytes: 99, logBytes: 1000,
      logRecords: 10, logBytesPerSecond: 500, lastHeartbeatMilliseconds: 12, acknowledged: 44)
    status.heartbeatsForged = 2
    status.heartbeatsReplayed = 1
    status.cloning = true
    status.lastCloneMilliseconds = 900
    status.lastClonePauseMicroseconds = 150
    status.lastCloneBytes = 123_456
    let messages: [ChannelMessage] = [
      .hello(header: header, resumeFrom: 9, heartbeatPort: 40_000, heartbeatBootID: 77),
      .welcome(header: header, startsAt: 9, generation: 3, heartbeatBootID: 78),
      .handover(exits: 123),
      .statusRequest,
      .status(status),
      .command(.powerOff),
      .command(.failover),
      .join(header: header, heartbeatPort: 1, heartbeatBootID: 2),
      .clonePages([
        ClonePage(number: 7, data: nil), ClonePage(number: 9, data: [UInt8](repeating: 0xAB, count: 4096)),
      ]),
      .cloneDisk(offset: 4096, bytes: [1, 2, 3]),
      .cloneDiskZero(offset: 8192, count: 4096),
      .cloneState(
        MachineSnapshot(
          exits: 42, traceWords: (1, 2),
          net: NetDevice.State(
            attachment: NetDevice.Attachment(rx: 1, rxCapacity: 2, tx: 3, txCapacity: 4), rxMessages: 5,
            txMessages: 6, openConnections: [3, 9], highestConnection: 11),
          clockOffset: -5, lastMonotonic: 77, lastClock: ClockReading(monotonic: 1, wall: 2), registers: [1, 2],
          specialRegisters: [3], floatingPoint: [])),
    ]
    for message in messages {
      var bytes: [UInt8] = []
      message.encode(into: &bytes)
      let decoded = try WireMessage.decode(bytes[...], at: 0)
      XCTAssertEqual(decoded?.message, .control(message))
      XCTAssertEqual(decoded?.size, bytes.count)
    }
    // An unknown operator command is refused with a clear error.
    var bytes: [UInt8] = []
    LogFrame.frame(type: 23, body: [9], into: &bytes)
    XCTAssertThrowsError(try WireMessage.decode(bytes[...], at: 0)) { error in
      XCTAssertTrue("\(error)".contains("unknown operator command 9"), "\(error)")
    }
  }

  func testStatusJSONHasTheDocumentedFields() throws {
    let record = ArbiterRecord(
      vm: "kv", generation: 4, holder: "node-a", serviceAddress: "127.0.0.1:6379",
      replicationAddress: "127.0.0.1:7000")
    let node = NodeStatus(
      node: "node-a", role: "primary", generation: 4, protected: true, backup: "node-b",
      serviceAddress: "127.0.0.1:6379", lagNanoseconds: 2_340_000)
    let running = try XCTUnwrap(
      JSONSerialization.jsonObject(with: Data(ClusterStatus(record: record, node: node, nodeError: nil).json.utf8))
        as? [String: Any])
    XCTAssertEqual(running["vm"] as? String, "kv")
    XCTAssertEqual(running["generation"] as? Int, 4)
    XCTAssertEqual(running["primary"] as? String, "node-a")
    XCTAssertEqual(running["backup"] as? String, "node-b")
    XCTAssertEqual(running["protected"] as? Bool, true)
    XCTAssertEqual(running["lag_ms"] as? Double, 2.3)

    var off = record
    off.replicationAddress = ""
    let stopped = try XCTUnwrap(
      JSONSerialization.jsonObject(
        with: Data(ClusterStatus(record: off, node: nil, nodeError: "a \"quoted\"\nerror").json.utf8))
        as? [String: Any])
    XCTAssertTrue(stopped["primary"] is NSNull)
    XCTAssertTrue(stopped["backup"] is NSNull)
    XCTAssertEqual(stopped["protected"] as? Bool, false)
    XCTAssertEqual(stopped["error"] as? String, "a \"quoted\"\nerror")
  }

  /// A new primary tells the guest its old connections closed and numbers
  /// new ones above every id the guest saw.
  func testAdoptedNetworkClosesOldConnectionsAndNeverReusesIds() throws {
    let wakeup = try Wakeup()
    let network = try NetworkService(host: "127.0.0.1", port: 0, machineWakeup: wakeup)
    network.adopt(openConnections: [5, 3], highest: 9)
    try network.start()
    defer { network.stop() }
    var cursor = RingCursor(head: 0, tail: 0, capacity: 1 << 16)
    XCTAssertEqual(network.takeEvents(fitting: &cursor), [.closed(connection: 3), .closed(connection: 5)])
    let client = try TestClient(port: network.port)
    var opened: [InboundEvent] = []
    for _ in 0..<200 where opened.isEmpty {
      opened = network.takeEvents(fitting: &cursor)
      if opened.isEmpty { wakeup.wait(untilMonotonic: ClockReading.monotonicNanoseconds() + 10_000_000) }
    }
    guard case .opened(let connection, _)? = opened.first else { return XCTFail("no connection: \(opened)") }
    XCTAssertEqual(connection, 10)
    withExtendedLifetime(client) {}
  }
}

/// A value shared between a test and the thread it starts.
final class LockedBox<Value: Sendable>: Sendable {
  private let storage: Synchronization.Mutex<Value>
  init(_ value: Value) { storage = Synchronization.Mutex(value) }
  var value: Value {
    get { storage.withLock { $0 } }
    set { storage.withLock { $0 = newValue } }
  }
}
