/// A 64-bit hash whose value is the same in every process and on every host
/// (unlike Swift's `Hasher`, which is seeded per process). Used for exit
/// traces, memory digests and fingerprints that two nodes compare.
///
/// Not cryptographic: it detects divergence, it does not resist an attacker.
public struct StableHasher: Sendable, Equatable {
  private var state: UInt64 = 0x9E37_79B9_7F4A_7C15
  private var count: UInt64 = 0

  /// An empty hasher.
  public init() {}

  /// A hasher that continues from `words` (another's ``words``: a machine
  /// cloned mid-run keeps hashing where the original was).
  public init(words: (state: UInt64, count: UInt64)) {
    state = words.state
    count = words.count
  }

  /// The internal state, to continue elsewhere.
  public var words: (state: UInt64, count: UInt64) { (state, count) }

  /// Mixes in one 64-bit word.
  @inline(__always)
  public mutating func combine(_ word: UInt64) {
    state = Self.mix(state ^ Self.mix(word &+ count))
    count &+= 1
  }

  /// Mixes in bytes, eight at a time (the tail zero-padded, and the length
  /// mixed in, so different lengths differ).
  public mutating func combine(bytes: UnsafeRawBufferPointer) {
    let words = bytes.count / 8
    var index = 0
    while index < words {
      combine(UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: index * 8, as: UInt64.self)))
      index += 1
    }
    var tail: UInt64 = 0
    var shift: UInt64 = 0
    for byte in bytes[(words * 8)...] {
      tail |= UInt64(byte) << shift
      shift += 8
    }
    combine(tail)
    combine(UInt64(bytes.count))
  }

  /// The hash of everything combined so far.
  public func finalize() -> UInt64 {
    Self.mix(state ^ count)
  }

  /// The SplitMix64 finalizer: a fast, well-distributed bijection.
  @inline(__always)
  static func mix(_ value: UInt64) -> UInt64 {
    var z = value &+ 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}
