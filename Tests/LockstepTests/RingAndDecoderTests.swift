import XCTest

@testable import Lockstep

/// Ring arithmetic and the decoders of logged inputs.
final class RingAndDecoderTests: XCTestCase {
  func testRingReservesWrapsAndPads() {
    var cursor = RingCursor(head: 0, tail: 0, capacity: 4096)
    XCTAssertTrue(cursor.isValid)
    XCTAssertEqual(cursor.largestPayload, 4096 - 16)
    guard let first = cursor.reserve(payload: 4000) else { return XCTFail("no room") }
    XCTAssertEqual(first.message, 0)
    XCTAssertEqual(cursor.head, 4016)
    XCTAssertNil(cursor.reserve(payload: 100), "only 80 bytes are free")
    cursor.tail = 4016
    // 80 bytes left before the wrap: a 100-byte message pads them and goes to 0.
    guard let second = cursor.reserve(payload: 100) else { return XCTFail("no room after wrap") }
    XCTAssertEqual(second.padding, 4016)
    XCTAssertEqual(second.paddingLength, 80)
    XCTAssertEqual(second.message, 0)
    XCTAssertEqual(cursor.head, 4096 + 16 + 104)
    XCTAssertTrue(cursor.isValid)
    XCTAssertFalse(RingCursor(head: 8, tail: 16, capacity: 4096).isValid)
    XCTAssertFalse(RingCursor(head: 8192, tail: 0, capacity: 4096).isValid)
    XCTAssertFalse(RingCursor(head: 3, tail: 0, capacity: 4096).isValid)
  }

  func testRingNeverOverfillsUnderRandomUse() {
    var generator = SystemRandomNumberGenerator()
    var cursor = RingCursor(head: 0, tail: 0, capacity: 8192)
    var queued: [UInt64] = []
    for _ in 0..<20_000 {
      if Bool.random(using: &generator), !queued.isEmpty {
        cursor.tail += queued.removeFirst()
      } else {
        let payload = Int.random(in: 0...3000, using: &generator)
        let before = cursor.head
        if cursor.reserve(payload: payload) != nil { queued.append(cursor.head - before) }
      }
      XCTAssertTrue(cursor.isValid)
      XCTAssertLessThanOrEqual(cursor.used, cursor.capacity)
    }
  }

  func roundTrip<Value: InputValue>(_ value: Value) throws {
    var bytes: [UInt8] = []
    value.encode(into: &bytes)
    var reader = ByteReader(bytes)
    XCTAssertEqual(try Value.decode(from: &reader), value)
    XCTAssertNoThrow(try reader.expectEnd("value"))
    // Every truncation is refused, never a crash.
    for length in 0..<bytes.count {
      var short = ByteReader(Array(bytes[..<length]))
      XCTAssertThrowsError(try Value.decode(from: &short))
    }
  }

  func testInputValuesRoundTrip() throws {
    try roundTrip(ClockReading(monotonic: 123_456_789, wall: 1_790_000_000_000_000_000))
    try roundTrip(EntropyBytes([1, 2, 3, 250]))
    try roundTrip(BlockReadResult(status: 0, bytes: [UInt8](repeating: 7, count: 1024)))
    try roundTrip(
      WaitOutcome(
        events: [
          .opened(connection: 1, peer: "127.0.0.1:5000"), .data(connection: 1, bytes: Array("PING\r\n".utf8)),
          .closed(connection: 1),
        ], now: 99, timedOut: true))
  }

  func testMalformedInputValuesAreRefused() {
    var hugeEntropy = ByteReader([0xFF, 0xFF, 0xFF, 0x7F])
    XCTAssertThrowsError(try EntropyBytes.decode(from: &hugeEntropy)) { error in
      XCTAssertTrue("\(error)".contains("exceeds the limit"), "\(error)")
    }
    var manyEvents: [UInt8] = []
    manyEvents.append(littleEndian: UInt64(0))
    manyEvents.append(0)
    manyEvents.append(littleEndian: UInt32.max)
    var reader = ByteReader(manyEvents)
    XCTAssertThrowsError(try WaitOutcome.decode(from: &reader)) { error in
      XCTAssertTrue("\(error)".contains("cannot fit"), "\(error)")
    }
    var badFlag: [UInt8] = []
    badFlag.append(littleEndian: UInt64(0))
    badFlag.append(7)
    badFlag.append(littleEndian: UInt32(0))
    var flagReader = ByteReader(badFlag)
    XCTAssertThrowsError(try WaitOutcome.decode(from: &flagReader))
    var badType: [UInt8] = []
    badType.append(littleEndian: UInt64(0))
    badType.append(0)
    badType.append(littleEndian: UInt32(1))
    badType.append(9)
    badType.append(contentsOf: [UInt8](repeating: 0, count: 8))
    var typeReader = ByteReader(badType)
    XCTAssertThrowsError(try WaitOutcome.decode(from: &typeReader)) { error in
      XCTAssertTrue("\(error)".contains("unknown type 9"), "\(error)")
    }
  }

  func testRandomBytesNeverCrashTheDecoders() {
    var state: UInt64 = 0x1234_5678
    func next() -> UInt64 {
      state = StableHasher.mix(state)
      return state
    }
    for _ in 0..<5000 {
      let bytes = (0..<Int(next() % 64)).map { _ in UInt8(truncatingIfNeeded: next()) }
      var a = ByteReader(bytes)
      _ = try? WaitOutcome.decode(from: &a)
      var b = ByteReader(bytes)
      _ = try? EntropyBytes.decode(from: &b)
      var c = ByteReader(bytes)
      _ = try? BlockReadResult.decode(from: &c)
      var d = ByteReader(bytes)
      _ = try? ClockReading.decode(from: &d)
    }
  }
}
