/// The sequence of exits a run made: (sequence, RIP, kind) for each. Keeps
/// a running hash always and, when asked, the entries themselves (for
/// tests and for finding the first difference between two runs).
public struct ExitTrace: Sendable, Equatable {
  /// One exit.
  public struct Entry: Sendable, Equatable, CustomStringConvertible {
    public var point: ExitPoint
    /// The hypercall op (or a fault marker).
    public var kind: UInt32

    public var description: String { "\(point) kind \(kind)" }
  }

  /// Exits recorded.
  public private(set) var count: UInt64 = 0
  /// Entries, if ``keepsEntries``.
  public private(set) var entries: [Entry] = []
  /// Whether entries are kept (else only the hash).
  public let keepsEntries: Bool
  private var hasher = StableHasher()

  /// An empty trace.
  public init(keepsEntries: Bool) {
    self.keepsEntries = keepsEntries
  }

  /// A trace that continues another's hash after `count` exits (a machine
  /// cloned mid-run; earlier entries are not carried).
  public init(keepsEntries: Bool, resuming words: (state: UInt64, count: UInt64), count: UInt64) {
    self.keepsEntries = keepsEntries
    self.count = count
    hasher = StableHasher(words: words)
  }

  /// The running hash's state (see ``init(keepsEntries:resuming:count:)``).
  public var hashWords: (state: UInt64, count: UInt64) { hasher.words }

  /// Appends an exit.
  @inline(__always)
  mutating func record(_ point: ExitPoint, kind: UInt32) {
    hasher.combine(point.sequence)
    hasher.combine(point.instructionPointer)
    hasher.combine(UInt64(kind))
    count += 1
    if keepsEntries { entries.append(Entry(point: point, kind: kind)) }
  }

  /// The hash of every exit so far.
  public var digest: UInt64 { hasher.finalize() }

  /// The first entry where two kept traces differ, or nil.
  public func firstDifference(from other: ExitTrace) -> (index: Int, mine: Entry?, theirs: Entry?)? {
    let common = min(entries.count, other.entries.count)
    for index in 0..<common where entries[index] != other.entries[index] {
      return (index, entries[index], other.entries[index])
    }
    if entries.count != other.entries.count {
      return (
        common, entries.count > common ? entries[common] : nil,
        other.entries.count > common ? other.entries[common] : nil
      )
    }
    return nil
  }
}
