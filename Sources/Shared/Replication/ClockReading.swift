#if canImport(Glibc)
  import Glibc
#endif

/// The result of LS_OP_CLOCK: monotonic and wall-clock nanoseconds.
public struct ClockReading: InputValue {
  /// Nanoseconds of CLOCK_MONOTONIC.
  public var monotonic: UInt64
  /// Nanoseconds since the Unix epoch.
  public var wall: UInt64

  /// Creates a reading.
  public init(monotonic: UInt64, wall: UInt64) {
    self.monotonic = monotonic
    self.wall = wall
  }

  /// Reads the host clocks.
  public static func now() -> ClockReading {
    ClockReading(monotonic: monotonicNanoseconds(), wall: read(CLOCK_REALTIME))
  }

  /// The host's CLOCK_MONOTONIC in nanoseconds.
  public static func monotonicNanoseconds() -> UInt64 {
    read(CLOCK_MONOTONIC)
  }

  private static func read(_ clock: clockid_t) -> UInt64 {
    var time = timespec()
    clock_gettime(clock, &time)
    return UInt64(time.tv_sec) &* 1_000_000_000 &+ UInt64(time.tv_nsec)
  }

  public func encode(into buffer: inout [UInt8]) {
    buffer.append(littleEndian: monotonic)
    buffer.append(littleEndian: wall)
  }

  public static func decode(from reader: inout ByteReader) throws(LogDecodingError) -> ClockReading {
    ClockReading(
      monotonic: try reader.read(UInt64.self, "clock.monotonic"),
      wall: try reader.read(UInt64.self, "clock.wall"))
  }
}
