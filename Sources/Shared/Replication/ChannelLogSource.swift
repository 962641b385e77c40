import Synchronization

/// The backup's end of the logging channel as the replayer sees it: records
/// pushed by the receiving thread, taken by the vCPU thread, which blocks
/// while none is there. Bounded: the receiver stops reading the network
/// while ``limit`` bytes wait here (back-pressure to the primary).
public final class ChannelLogSource: LogSource, Sendable {
  struct State: ~Copyable {
    var records: [(record: LogRecord, size: Int)] = []
    var start = 0
    var bytes = 0
    var ended = false
    var replayed: UInt64 = 0
    var received: (bytes: UInt64, records: UInt64) = (0, 0)
  }

  private let state = Mutex(State())
  private let available: Wakeup
  private let room: Wakeup
  /// Bytes of records waiting before the receiver pauses.
  public let limit: Int
  let header: LogHeader

  /// A source whose log describes the execution `header` names.
  public init(header: LogHeader, limit: Int = 64 << 20) throws(SystemError) {
    self.header = header
    self.limit = limit
    available = try Wakeup()
    room = try Wakeup()
    state.withLock { $0.records.append((.header(header), 0)) }
  }

  /// Adds records received from the primary (the receiving thread); blocks
  /// while the queue is over its limit. Returns false, adding nothing, once
  /// the source has ended: then the records will never be replayed, and
  /// must not be acknowledged.
  @discardableResult
  public func push(_ records: [(record: LogRecord, size: Int)]) -> Bool {
    while state.withLock({ $0.bytes >= limit && !$0.ended }) {
      room.wait(untilMonotonic: ClockReading.monotonicNanoseconds() + 10_000_000)
    }
    let accepted = state.withLock { state -> Bool in
      guard !state.ended else { return false }
      state.records.append(contentsOf: records)
      let size = records.reduce(0) { $0 + $1.size }
      state.bytes += size
      state.received.bytes += UInt64(size)
      state.received.records += UInt64(records.count)
      return true
    }
    available.signal()
    return accepted
  }

  /// Whether ``end()`` was called.
  public var hasEnded: Bool { state.withLock { $0.ended } }

  /// The primary is gone (or the channel closed): once the queue is empty,
  /// the replayer sees the end of the log.
  public func end() {
    state.withLock { $0.ended = true }
    available.signal()
    room.signal()
  }

  /// Log bytes and records received from the primary so far.
  public var received: (bytes: UInt64, records: UInt64) { state.withLock { $0.received } }

  /// The position the replay has reached: every exit before it is replayed.
  public var replayed: UInt64 { state.withLock { $0.replayed } }

  public func next() throws -> LogRecord? {
    while true {
      let taken = state.withLock { state -> LogRecord?? in
        guard state.start < state.records.count else { return state.ended ? .some(nil) : nil }
        let (record, size) = state.records[state.start]
        state.start += 1
        state.bytes -= size
        // An exit whose input is taken is as good as replayed (the rest of
        // it is deterministic); a progress record taken while looking for
        // the next input means every exit before it is replayed.
        switch record {
        case .input(let point, _, _): state.replayed = max(state.replayed, point.sequence + 1)
        case .progress(let exits): state.replayed = max(state.replayed, exits)
        default: break
        }
        if state.start > 4096 && state.start * 2 > state.records.count {
          state.records.removeFirst(state.start)
          state.start = 0
        }
        return .some(record)
      }
      if let taken {
        room.signal()
        return taken
      }
      available.wait(untilMonotonic: ClockReading.monotonicNanoseconds() + 100_000_000)
    }
  }
}
