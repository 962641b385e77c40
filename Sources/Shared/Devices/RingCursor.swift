import CLockstepKVM

/// The indices of one net ring and the arithmetic of placing messages in
/// it (guest ABI: free-running byte counters, messages 8-byte aligned,
/// never wrapping; a PAD message or a skipped tail of < 16 bytes before
/// the wrap).
///
/// A value type, so the live network code can plan what fits in the rx
/// ring without touching guest memory, and the device can then write
/// exactly that.
public struct RingCursor: Sendable, Equatable {
  /// Producer counter.
  public var head: UInt64
  /// Consumer counter.
  public var tail: UInt64
  /// Bytes of data area (a power of two).
  public let capacity: UInt64

  /// A cursor over validated indices.
  public init(head: UInt64, tail: UInt64, capacity: UInt64) {
    self.head = head
    self.tail = tail
    self.capacity = capacity
  }

  /// Whether the indices obey the ABI: a power-of-two capacity, aligned,
  /// tail <= head, no more used than the capacity, and a head that a
  /// reservation cannot carry past 2^64 (a reserve adds at most the
  /// capacity; the guest owns the indices, so a hostile one could otherwise
  /// make the VMM's arithmetic overflow: found by fuzzing, RING-1).
  public var isValid: Bool {
    capacity.nonzeroBitCount == 1 && head % 8 == 0 && tail % 8 == 0 && tail <= head && head - tail <= capacity
      && head <= UInt64.max - capacity
  }

  /// Bytes in use.
  public var used: UInt64 { head &- tail }

  /// Bytes a message with `payload` bytes occupies.
  static func footprint(payload: Int) -> UInt64 {
    UInt64(LS_MSG_HEADER) + (UInt64(payload) + 7) & ~7
  }

  /// The largest payload a single message could carry if appended now.
  public var largestPayload: Int {
    let free = capacity - used
    let offset = head & (capacity - 1)
    let contiguous = capacity - offset
    // Either it fits before the wrap, or after skipping to the start.
    let before = min(contiguous, free)
    let after = free >= contiguous ? min(free - contiguous, capacity) : 0
    let room = max(before, after)
    guard room >= UInt64(LS_MSG_HEADER) else { return 0 }
    return Int(min((room - UInt64(LS_MSG_HEADER)) & ~7, UInt64(LS_MSG_MAX_PAYLOAD)))
  }

  /// Reserves room for a message with `payload` bytes. Returns where the
  /// wrap padding starts and how long it is (0 when none), and the offset
  /// of the message, or nil when it does not fit.
  public mutating func reserve(payload: Int) -> (padding: UInt64, paddingLength: UInt64, message: UInt64)? {
    let size = Self.footprint(payload: payload)
    let offset = head & (capacity - 1)
    let contiguous = capacity - offset
    if size <= contiguous {
      guard used + size <= capacity else { return nil }
      head += size
      return (offset, 0, offset)
    }
    guard used + contiguous + size <= capacity else { return nil }
    head += contiguous + size
    return (offset, contiguous, 0)
  }
}
