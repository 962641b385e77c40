import Foundation
import Logging
import Synchronization
import XCTest

@testable import Lockstep

/// UDP heartbeats: the packet format and its authentication, two endpoints
/// on loopback, forged and replayed datagrams, and the failure detector.
final class HeartbeatTests: XCTestCase {
  let key = [UInt8](repeating: 0x5A, count: 32)
  let logger = Logger(label: "heartbeat-test")

  func packet(sequence: UInt64 = 7, bootID: UInt64 = 0x1234_5678_9ABC_DEF0) -> HeartbeatPacket {
    HeartbeatPacket(
      flags: [.primary], vm: "vm1", sender: "vmm1", generation: 3, bootID: bootID, sequence: sequence,
      sentMonotonicNanoseconds: 123_456_789)
  }

  func assertRejected(
    _ bytes: [UInt8], _ kind: HeartbeatPacketError.Kind, key: [UInt8]? = nil, file: StaticString = #filePath,
    line: UInt = #line
  ) {
    XCTAssertThrowsError(try HeartbeatPacket.decode(bytes, key: key ?? self.key), file: file, line: line) { error in
      XCTAssertEqual((error as? HeartbeatPacketError)?.kind, kind, "\(error)", file: file, line: line)
    }
  }

  /// Polls `condition` every 10 ms until it holds or `seconds` pass.
  func waitFor(seconds: Double = 5, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
      if condition() { return true }
      Wakeup.sleep(milliseconds: 10)
    }
    return condition()
  }

  // MARK: Packet

  func testPacketRoundTrip() throws {
    let original = packet()
    let bytes = original.encode(key: key)
    XCTAssertEqual(bytes.count, HeartbeatPacket.fixedLength + 3 + 4)
    XCTAssertEqual(Array(bytes[0..<4]), Array("LSHB".utf8))
    XCTAssertEqual(try HeartbeatPacket.decode(bytes, key: key), original)
    let longest = HeartbeatPacket(
      vm: String(repeating: "v", count: 64), sender: String(repeating: "n", count: 64), generation: .max,
      bootID: .max, sequence: .max, sentMonotonicNanoseconds: .max)
    let longBytes = longest.encode(key: key)
    XCTAssertEqual(longBytes.count, HeartbeatPacket.maximumLength)
    XCTAssertEqual(try HeartbeatPacket.decode(longBytes, key: key), longest)
  }

  func testMACIsHMACSHA256() {
    // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
    let mac = HeartbeatPacket.mac(key: Array("Jefe".utf8), over: Array("what do ya want for nothing?".utf8)[...])
    let hex = mac.map { String(format: "%02x", $0) }.joined()
    XCTAssertEqual(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
  }

  func testMalformedPacketsAreRejected() {
    let bytes = packet().encode(key: key)
    assertRejected([], .length)
    assertRejected(Array(bytes.dropLast()), .length)
    assertRejected(bytes + [0], .length)
    assertRejected(bytes + [UInt8](repeating: 0, count: 200), .length)
    var wrongMagic = bytes
    wrongMagic[0] = UInt8(ascii: "X")
    assertRejected(wrongMagic, .magic)
    var wrongVersion = bytes
    wrongVersion[4] = 2
    assertRejected(wrongVersion, .version)
    var wrongNameLength = bytes
    wrongNameLength[6] = 200
    assertRejected(wrongNameLength, .length)
    var shorterName = bytes
    shorterName[6] = 2
    assertRejected(shorterName, .length)
  }

  func testForgedPacketsAreRejected() {
    let bytes = packet().encode(key: key)
    // Another cluster's key.
    assertRejected(bytes, .badMAC, key: [UInt8](repeating: 0xA5, count: 32))
    // Any flipped bit, in the body or in the MAC.
    for index in [5, 7, 12, 20, 30, bytes.count - 40, bytes.count - 1] {
      var flipped = bytes
      flipped[index] ^= 0x01
      assertRejected(flipped, .badMAC)
    }
    // A changed sequence with the old MAC.
    var replayedBody = packet(sequence: 8).encode(key: key)
    replayedBody.replaceSubrange((replayedBody.count - 32)..., with: bytes.suffix(32))
    assertRejected(replayedBody, .badMAC)
  }

  func testAuthenticButInvalidFieldsAreRejected() {
    // Sequence 0 and a non-UTF-8 name, correctly MACed: still refused.
    assertRejected(packet(sequence: 0).encode(key: key), .field)
    var body = packet().encode(key: key).dropLast(32)
    body[7] = 0xFF
    let bad = Array(body) + HeartbeatPacket.mac(key: key, over: body)
    assertRejected(bad, .field)
  }

  func testRandomBytesNeverCrashTheDecoder() {
    var generator = HeartbeatSeededGenerator(seed: 0x4C53_4842)
    let valid = packet().encode(key: key)
    var accepted = 0
    for round in 0..<20_000 {
      var bytes: [UInt8]
      if round % 2 == 0 {
        let count = Int.random(in: 0...(HeartbeatPacket.maximumLength + 16), using: &generator)
        bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
        if round % 4 == 0 && bytes.count >= 5 {
          bytes.replaceSubrange(0..<5, with: HeartbeatPacket.magic + [HeartbeatPacket.version])
        }
      } else {
        // Mutations of a valid packet: flips, truncations, extensions.
        bytes = valid
        for _ in 0..<Int.random(in: 1...4, using: &generator) {
          switch Int.random(in: 0..<3, using: &generator) {
          case 0:
            let index = Int.random(in: 0..<bytes.count, using: &generator)
            bytes[index] ^= UInt8.random(in: 1...255, using: &generator)
          case 1: bytes = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &generator)))
          default: bytes += [UInt8.random(in: 0...255, using: &generator)]
          }
          if bytes.isEmpty { break }
        }
      }
      // (A truncation to the full length can leave the packet intact.)
      if bytes != valid, (try? HeartbeatPacket.decode(bytes, key: key)) != nil { accepted += 1 }
    }
    XCTAssertEqual(accepted, 0, "no random or mutated datagram may pass the MAC")
  }

  // MARK: Sequence and replay logic

  func testSequenceChecks() {
    var senders: [String: Heartbeat.SenderState] = [:]
    XCTAssertNil(Heartbeat.checkSequence(packet(sequence: 5, bootID: 1), senders: &senders))
    XCTAssertNil(Heartbeat.checkSequence(packet(sequence: 6, bootID: 1), senders: &senders))
    XCTAssertNotNil(Heartbeat.checkSequence(packet(sequence: 6, bootID: 1), senders: &senders))
    XCTAssertNotNil(Heartbeat.checkSequence(packet(sequence: 2, bootID: 1), senders: &senders))
    XCTAssertNil(Heartbeat.checkSequence(packet(sequence: 10, bootID: 1), senders: &senders))
    // The sender restarted: a new boot id starts again from 1.
    XCTAssertNil(Heartbeat.checkSequence(packet(sequence: 1, bootID: 2), senders: &senders))
    XCTAssertNil(Heartbeat.checkSequence(packet(sequence: 2, bootID: 2), senders: &senders))
    // A recorded packet of the previous run is a replay, whatever its sequence.
    XCTAssertNotNil(Heartbeat.checkSequence(packet(sequence: 11, bootID: 1), senders: &senders))
    XCTAssertNotNil(Heartbeat.checkSequence(packet(sequence: 1_000, bootID: 1), senders: &senders))
    XCTAssertNil(Heartbeat.checkSequence(packet(sequence: 3, bootID: 2), senders: &senders))
  }

  // MARK: Failure detector

  func testTimingDefaultsAndValidation() throws {
    XCTAssertEqual(HeartbeatTiming.default.interval, .milliseconds(50))
    XCTAssertEqual(HeartbeatTiming.default.failureTimeout, .milliseconds(1000))
    XCTAssertEqual(HeartbeatTiming.default.intervalNanoseconds, 50_000_000)
    XCTAssertEqual(HeartbeatTiming.default.failureTimeoutNanoseconds, 1_000_000_000)
    XCTAssertThrowsError(try HeartbeatTiming(interval: .zero, failureTimeout: .seconds(1)))
    XCTAssertThrowsError(try HeartbeatTiming(interval: .milliseconds(100), failureTimeout: .milliseconds(150)))
    let timing = try HeartbeatTiming(interval: .milliseconds(100), failureTimeout: .milliseconds(200))
    XCTAssertEqual(timing.failureTimeoutNanoseconds, 200_000_000)
  }

  func testDetectorWithExplicitTimes() {
    let ms: UInt64 = 1_000_000
    var detector = FailureDetector(failureTimeout: .milliseconds(500), start: 1_000 * ms)
    XCTAssertFalse(detector.hasHeard)
    // The start counts as heard: a grace period of one timeout.
    XCTAssertFalse(detector.isSuspected(now: 1_000 * ms))
    XCTAssertFalse(detector.isSuspected(now: 1_500 * ms))
    XCTAssertTrue(detector.isSuspected(now: 1_501 * ms))
    detector.heard(at: 1_600 * ms)
    XCTAssertTrue(detector.hasHeard)
    XCTAssertFalse(detector.isSuspected(now: 1_700 * ms))
    XCTAssertEqual(detector.silence(now: 1_700 * ms), 100 * ms)
    XCTAssertFalse(detector.isSuspected(now: 2_100 * ms))
    XCTAssertTrue(detector.isSuspected(now: 2_101 * ms))
    // An older sign of life (e.g. reported late by another thread) never
    // moves the last contact back.
    detector.heard(at: 1_200 * ms)
    XCTAssertEqual(detector.lastHeard, 1_600 * ms)
    // Heartbeats and other traffic interleave; any of them keeps the peer trusted.
    for tick in stride(from: 2_000, through: 5_000, by: 400) {
      detector.heard(at: UInt64(tick) * ms)
      XCTAssertFalse(detector.isSuspected(now: UInt64(tick + 450) * ms))
    }
    // A clock read before the last contact is no silence.
    XCTAssertEqual(detector.silence(now: 0), 0)
    XCTAssertFalse(detector.isSuspected(now: 0))
  }

  // MARK: Endpoints on loopback

  func endpoint(
    node: String, peer: HostPort, timeout: Duration = .milliseconds(300), key: [UInt8]? = nil
  ) throws -> Heartbeat {
    let timing = try HeartbeatTiming(interval: .milliseconds(20), failureTimeout: timeout)
    let heartbeat = try Heartbeat(
      .init(
        vm: "vm1", node: node, bind: HostPort(host: "127.0.0.1", port: 0), peer: peer, key: key ?? self.key,
        timing: timing, generation: 1),
      logger: logger)
    addTeardownBlock { heartbeat.stop() }
    return heartbeat
  }

  /// Two endpoints whose peers are each other (the first one's peer is
  /// found by binding a socket and closing it; the real pair is made by
  /// pointing the second at the first).
  func pair(key: [UInt8]? = nil) throws -> (Heartbeat, Heartbeat) {
    let relay = try UDPSocket(binding: HostPort(host: "127.0.0.1", port: 0))
    let first = try endpoint(node: "vmm1", peer: HostPort(host: "127.0.0.1", port: relay.port), key: key)
    let second = try endpoint(node: "vmm2", peer: HostPort(host: "127.0.0.1", port: first.port), key: key)
    // Forward what the first sends to the second, on a test thread.
    let forwarder = try HeartbeatForwarder(
      from: relay, to: relay.resolve(HostPort(host: "127.0.0.1", port: second.port)))
    addTeardownBlock { forwarder.stop() }
    return (first, second)
  }

  func testTwoEndpointsHearEachOtherWithTheClusterKey() throws {
    let cluster = try CertificateTestCluster.make(self, arbiter: nil, operators: [])
    let key = try XCTUnwrap(cluster.credentials("vmm1").heartbeatKey)
    XCTAssertEqual(try cluster.credentials("vmm2").heartbeatKey, key)
    let (first, second) = try pair(key: key)
    XCTAssertTrue(
      waitFor { first.status.received > 3 && second.status.received > 3 }, "\(first.status) \(second.status)")
    for (heartbeat, peer) in [(first, "vmm2"), (second, "vmm1")] {
      let status = heartbeat.status
      XCTAssertGreaterThan(status.sent, 3)
      XCTAssertEqual(status.rejectedForged, 0)
      XCTAssertEqual(status.rejectedReplayed, 0)
      XCTAssertEqual(status.rejectedMalformed, 0)
      XCTAssertEqual(status.lastPacket?.sender, peer)
      XCTAssertEqual(status.lastPacket?.generation, 1)
      XCTAssertNotNil(heartbeat.lastHeard)
      XCTAssertFalse(heartbeat.isPeerSuspected())
    }
    first.update(generation: 2, flags: [.primary])
    XCTAssertTrue(waitFor { second.status.lastPacket?.generation == 2 })
    XCTAssertEqual(second.status.lastPacket?.flags, [.primary])
  }

  func testForgedAndMalformedDatagramsAreRejectedAndCounted() throws {
    let target = try endpoint(node: "vmm2", peer: HostPort(host: "127.0.0.1", port: 9))
    let raw = try UDPSocket(binding: HostPort(host: "127.0.0.1", port: 0))
    let destination = try raw.resolve(HostPort(host: "127.0.0.1", port: target.port))
    let wrongKey = [UInt8](repeating: 0x11, count: 32)
    for sequence in 1...5 {
      try raw.send(packet(sequence: UInt64(sequence)).encode(key: wrongKey), to: destination)
    }
    try raw.send(Array("hello".utf8), to: destination)
    try raw.send([UInt8](repeating: 0, count: 80), to: destination)
    XCTAssertTrue(
      waitFor { target.status.rejectedForged == 5 && target.status.rejectedMalformed == 2 }, "\(target.status)")
    XCTAssertEqual(target.status.received, 0)
    XCTAssertNil(target.lastHeard)
    // Another VM's heartbeat, and this node's own reflected back: foreign.
    var other = packet(sequence: 1)
    other.vm = "vm2"
    try raw.send(other.encode(key: key), to: destination)
    var own = packet(sequence: 1)
    own.sender = "vmm2"
    try raw.send(own.encode(key: key), to: destination)
    XCTAssertTrue(waitFor { target.status.rejectedForeign == 2 }, "\(target.status)")
    XCTAssertEqual(target.status.received, 0)
  }

  /// Once pinned to the peer's name and boot id (learned over TLS), an
  /// endpoint refuses authentic heartbeats of any other sender or boot id
  /// as foreign: an old process's recorded heartbeat cannot displace the
  /// live peer's.
  func testPinnedEndpointAcceptsOnlyThePeersBootID() throws {
    let receiver = try endpoint(node: "vmm2", peer: HostPort(host: "127.0.0.1", port: 9))
    receiver.expect(peer: "vmm1", bootID: 5)
    func packet(_ sender: String, boot: UInt64, sequence: UInt64) -> [UInt8] {
      HeartbeatPacket(
        vm: "vm1", sender: sender, generation: 1, bootID: boot, sequence: sequence, sentMonotonicNanoseconds: 0
      ).encode(key: key)
    }
    receiver.accept(packet("vmm1", boot: 5, sequence: 1), at: 1)
    XCTAssertEqual(receiver.status.received, 1)
    receiver.accept(packet("vmm1", boot: 6, sequence: 1), at: 2)  // an earlier process, replayed
    receiver.accept(packet("intruder", boot: 5, sequence: 2), at: 3)
    XCTAssertEqual(receiver.status.rejectedForeign, 2)
    receiver.accept(packet("vmm1", boot: 5, sequence: 2), at: 4)  // the live peer still counts
    receiver.accept(packet("vmm1", boot: 5, sequence: 2), at: 5)
    XCTAssertEqual(receiver.status.received, 2)
    XCTAssertEqual(receiver.status.rejectedReplayed, 1)
    // Sequences 3 to 6 never arrive: four heartbeats missed.
    receiver.accept(packet("vmm1", boot: 5, sequence: 7), at: 6)
    XCTAssertEqual(receiver.status.received, 3)
    XCTAssertEqual(receiver.status.missed, 4)
  }

  func testCapturedPacketReplayedIsRejectedAndCounted() throws {
    // The sender's peer is a raw socket: the test captures its heartbeats.
    let capture = try UDPSocket(binding: HostPort(host: "127.0.0.1", port: 0))
    let sender = try endpoint(node: "vmm1", peer: HostPort(host: "127.0.0.1", port: capture.port))
    let receiver = try endpoint(node: "vmm2", peer: HostPort(host: "127.0.0.1", port: sender.port))
    var captured: [[UInt8]] = []
    let deadline = Date().addingTimeInterval(5)
    while captured.count < 3 && Date() < deadline {
      if capture.waitReadable(nanoseconds: 100_000_000), let datagram = try capture.receive() {
        captured.append(datagram)
      }
    }
    XCTAssertEqual(captured.count, 3)
    let destination = try capture.resolve(HostPort(host: "127.0.0.1", port: receiver.port))
    try capture.send(captured[1], to: destination)
    XCTAssertTrue(waitFor { receiver.status.received == 1 }, "\(receiver.status)")
    // The same packet again, then an older one: both replays.
    try capture.send(captured[1], to: destination)
    try capture.send(captured[0], to: destination)
    XCTAssertTrue(waitFor { receiver.status.rejectedReplayed == 2 }, "\(receiver.status)")
    // A newer one still passes.
    try capture.send(captured[2], to: destination)
    XCTAssertTrue(waitFor { receiver.status.received == 2 }, "\(receiver.status)")
    XCTAssertEqual(receiver.status.rejectedReplayed, 2)
    XCTAssertEqual(receiver.status.rejectedForged, 0)
    XCTAssertEqual(receiver.status.lastPacket?.sequence, try HeartbeatPacket.decode(captured[2], key: key).sequence)
  }

  func testStoppedPeerIsSuspected() throws {
    let (first, second) = try pair()
    XCTAssertTrue(waitFor { first.status.received > 3 && second.status.received > 3 })
    XCTAssertFalse(second.isPeerSuspected())
    let stoppedAt = ClockReading.monotonicNanoseconds()
    first.stop()
    first.stop()  // idempotent
    let sentAfterStop = first.status.sent
    XCTAssertTrue(waitFor { second.isPeerSuspected() }, "the stopped peer was never suspected")
    // Suspicion means a full timeout of silence since the last heartbeat.
    let now = ClockReading.monotonicNanoseconds()
    XCTAssertGreaterThan(now - second.detector.lastHeard, 300_000_000)
    XCTAssertLessThan(now - stoppedAt, 5_000_000_000)
    XCTAssertEqual(first.status.sent, sentAfterStop, "a stopped endpoint sends nothing more")
    XCTAssertFalse(first.isPeerSuspected(now: 0))
  }
}

/// Forwards datagrams from one socket to a destination on its own thread
/// (a stand-in for the network between two endpoints).
final class HeartbeatForwarder: Sendable {
  final class Flag: Sendable {
    let raised = Synchronization.Mutex<Bool>(false)
  }
  private let stopping = Flag()
  private let thread: NamedThread

  init(from socket: UDPSocket, to destination: UDPSocket.Destination) throws {
    let stopping = self.stopping
    thread = try NamedThread(name: "hb-forward") {
      while !stopping.raised.withLock({ $0 }) {
        guard socket.waitReadable(nanoseconds: 20_000_000) else { continue }
        while let datagram = try? socket.receive() { try? socket.send(datagram, to: destination) }
      }
    }
  }

  func stop() {
    stopping.raised.withLock { $0 = true }
    thread.join()
  }
}

/// A deterministic generator (SplitMix64), so the fuzz test is repeatable.
struct HeartbeatSeededGenerator: RandomNumberGenerator {
  var state: UInt64
  init(seed: UInt64) { state = seed }
  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var value = state
    value = (value ^ (value >> 30)) &* 0xBF58_476D_1CE4_E5B9
    value = (value ^ (value >> 27)) &* 0x94D0_49BB_1331_11EB
    return value ^ (value >> 31)
  }
}
