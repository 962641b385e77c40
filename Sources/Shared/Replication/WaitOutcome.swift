/// The result of LS_OP_WAIT: the network events delivered into the rx ring
/// during this exit, the time it returned, and whether the deadline passed.
public struct WaitOutcome: InputValue {
  /// Events appended to the rx ring, in order.
  public var events: [InboundEvent]
  /// CLOCK_MONOTONIC at return, in nanoseconds.
  public var now: UInt64
  /// The deadline passed.
  public var timedOut: Bool

  /// Creates an outcome.
  public init(events: [InboundEvent], now: UInt64, timedOut: Bool) {
    self.events = events
    self.now = now
    self.timedOut = timedOut
  }

  /// At most this many events in one outcome (a hostile log cannot make the
  /// decoder allocate without bound).
  static let maximumEvents = 1 << 20

  public func encode(into buffer: inout [UInt8]) {
    buffer.append(littleEndian: now)
    buffer.append(timedOut ? 1 : 0)
    buffer.append(littleEndian: UInt32(events.count))
    for event in events { event.encode(into: &buffer) }
  }

  public static func decode(from reader: inout ByteReader) throws(LogDecodingError) -> WaitOutcome {
    let now = try reader.read(UInt64.self, "wait.now")
    let flag = try reader.read(UInt8.self, "wait.timedOut")
    guard flag <= 1 else { throw LogDecodingError("wait.timedOut: \(flag) is not 0 or 1") }
    let count = try reader.read(UInt32.self, "wait.count")
    guard Int(count) <= min(maximumEvents, reader.remaining / 9) else {
      throw LogDecodingError("wait.count: \(count) events cannot fit in \(reader.remaining) bytes")
    }
    var events: [InboundEvent] = []
    events.reserveCapacity(Int(count))
    for _ in 0..<count { events.append(try InboundEvent.decode(from: &reader)) }
    return WaitOutcome(events: events, now: now, timedOut: flag == 1)
  }
}
