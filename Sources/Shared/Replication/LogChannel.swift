import CLockstepLinux
import Logging
import Synchronization

/// The primary's end of the logging channel (paper §2.3): the recorder
/// appends log records here; a channel thread streams them to the backup
/// over TLS and reads the backup's cumulative acknowledgements, which
/// release held output (``OutputGate``) and tell the primary how far
/// behind the backup's execution is.
///
/// Records stay here until acknowledged, so a backup that reconnects
/// resumes from its last acknowledgement. The buffer is bounded: past
/// ``limit`` bytes, ``append(_:)`` blocks the vCPU (flow control); past
/// ``maximumLag`` of execution lag it slows the vCPU down.
public final class LogChannel: LogSink, Sendable {
  /// A record waiting for its acknowledgement: its frame and the position
  /// the backup holds once it has it.
  struct Pending {
    var position: UInt64
    var frame: [UInt8]
  }

  struct State: ~Copyable {
    var header: LogHeader?
    var pending: [Pending] = []
    var start = 0
    var sent = 0
    var pendingBytes = 0
    var announced: UInt64 = 0
    var acknowledged: UInt64 = 0
    /// The exit a clone's session started at: the log before it was never
    /// kept for this session, so no backup can resume from before it.
    var resumeFloor: UInt64 = 0
    var replayed: UInt64 = 0
    var connected = false
    var closed = false
    /// The primary went on alone: records are dropped, nothing waits.
    var alone = false
    /// The primary is handing over: its end record is not sent.
    var handingOver = false
    /// (position, monotonic ns) when positions were announced, for the lag.
    var timeline: [(UInt64, UInt64)] = []
    var lagNanoseconds: UInt64 = 0
    /// Lag samples (one per acknowledgement, the last 100 000).
    var lagSamples: [UInt64] = []
    var bytesLogged: UInt64 = 0
    var recordsLogged: UInt64 = 0

    /// Forgets every record kept for a backup (it is gone, or a clone
    /// replaces it), and the lag measured against it.
    mutating func dropPending() {
      pending.removeAll()
      start = 0
      sent = 0
      pendingBytes = 0
      lagNanoseconds = 0
    }
  }

  private let state = Mutex(State())
  /// Whether the channel thread is (about to be) asleep: only then does a
  /// new record cost a wakeup (an eventfd write).
  private let channelWaiting = Atomic<Bool>(false)
  /// Wakes the channel thread (new records) and a blocked vCPU (acks).
  private let recordsReady: Wakeup
  private let spaceReady: Wakeup
  /// Bytes of unacknowledged log before the vCPU blocks.
  public let limit: Int
  /// Execution lag above which the vCPU is slowed down.
  public let maximumLag: Duration
  /// How often an idle primary sends a progress record.
  public let heartbeatInterval: Duration
  let logger: Logger
  /// Receives every acknowledgement (the Output Rule's gate).
  let onAcknowledge: @Sendable (UInt64) -> Void

  /// A channel with nothing connected yet.
  public init(
    limit: Int = 64 << 20, maximumLag: Duration = .milliseconds(100), heartbeatInterval: Duration = .milliseconds(50),
    logger: Logger, onAcknowledge: @escaping @Sendable (UInt64) -> Void
  ) throws(SystemError) {
    recordsReady = try Wakeup()
    spaceReady = try Wakeup()
    self.limit = limit
    self.maximumLag = maximumLag
    self.heartbeatInterval = heartbeatInterval
    self.logger = logger
    self.onAcknowledge = onAcknowledge
  }

  /// What an operator wants to know.
  public struct Status: Sendable {
    public var acknowledged: UInt64
    public var replayed: UInt64
    public var announced: UInt64
    public var unacknowledgedBytes: Int
    public var lagNanoseconds: UInt64
    public var connected: Bool
    /// Framed log bytes and records appended since the start.
    public var bytesLogged: UInt64
    public var recordsLogged: UInt64
    /// Execution lag percentiles over the recent acknowledgements, ns.
    public var lagP50: UInt64
    public var lagP99: UInt64
    public var lagMaximum: UInt64
  }

  /// The channel's counters now. The lag percentiles are computed from a
  /// copy taken under the lock, so appends and acknowledgements never wait
  /// for the sort; cheap single counters have their own accessors.
  public var status: Status {
    var (status, samples) = state.withLock {
      (
        Status(
          acknowledged: $0.acknowledged, replayed: $0.replayed, announced: $0.announced,
          unacknowledgedBytes: $0.pendingBytes, lagNanoseconds: $0.lagNanoseconds, connected: $0.connected,
          bytesLogged: $0.bytesLogged, recordsLogged: $0.recordsLogged, lagP50: 0, lagP99: 0, lagMaximum: 0),
        $0.lagSamples
      )
    }
    samples.sort()
    let percentile = { (fraction: Double) -> UInt64 in
      samples.isEmpty ? 0 : samples[min(samples.count - 1, Int(Double(samples.count) * fraction))]
    }
    status.lagP50 = percentile(0.5)
    status.lagP99 = percentile(0.99)
    status.lagMaximum = samples.last ?? 0
    return status
  }

  /// Framed log bytes appended since the start (cheap).
  public var bytesLogged: UInt64 { state.withLock { $0.bytesLogged } }
  /// Whether a backup is connected (cheap).
  public var isConnected: Bool { state.withLock { $0.connected } }
  /// Bytes appended and not yet acknowledged (cheap).
  public var unacknowledgedBytes: Int { state.withLock { $0.pendingBytes } }

  /// The header of the execution (after the recorder started).
  public var header: LogHeader? { state.withLock { $0.header } }

  // MARK: LogSink (the vCPU thread)

  public func append(_ record: LogRecord) throws {
    let position: UInt64
    switch record {
    case .header(let header):
      state.withLock { $0.header = header }
      return
    case .input(let point, _, _): position = point.sequence + 1
    case .progress(let exits): position = exits
    case .end(let exits, _, _, _): position = exits
    }
    var isEnd = false
    if case .end = record { isEnd = true }
    if state.withLock({ $0.alone || ($0.handingOver && isEnd) }) { return }
    var frame: [UInt8] = []
    LogFrame.encode(record, into: &frame)
    waitForRoom()
    state.withLock { state in
      state.pending.append(Pending(position: position, frame: frame))
      state.pendingBytes += frame.count
      state.bytesLogged += UInt64(frame.count)
      state.recordsLogged += 1
      if position > state.announced {
        state.announced = position
        // One sample per millisecond at most, and a bounded history.
        let now = ClockReading.monotonicNanoseconds()
        if state.timeline.last.map({ now - $0.1 >= 1_000_000 }) ?? true {
          if state.timeline.count >= 10_000 { state.timeline.removeFirst(1_000) }
          state.timeline.append((position, now))
        }
      }
    }
    if channelWaiting.load(ordering: .sequentiallyConsistent) { recordsReady.signal() }
  }

  public func finish() throws {
    recordsReady.signal()
  }

  /// The outputs of every exit before `position` are queued: tell the
  /// backup the log is complete up to there (called by the gate).
  public func announce(_ position: UInt64) {
    let needed = state.withLock { position > $0.announced }
    if needed { try? append(.progress(exits: position)) }
  }

  /// Blocks the vCPU while the buffer is full or the backup lags too far.
  private func waitForRoom() {
    let maximumLag = maximumLag.wholeNanoseconds
    while true {
      let (full, lagging, closed) = state.withLock {
        ($0.pendingBytes >= limit, $0.connected && $0.lagNanoseconds > maximumLag, $0.closed)
      }
      if closed || (!full && !lagging) { return }
      spaceReady.wait(untilMonotonic: ClockReading.monotonicNanoseconds() + (full ? 10_000_000 : 1_000_000))
      if lagging && !full { return }
    }
  }

  /// The primary goes on without a backup (it won the arbiter after losing
  /// its backup): held log records are dropped, new ones are not kept, and
  /// a vCPU blocked by flow control goes on.
  public func goAlone() {
    state.withLock { state in
      state.alone = true
      state.dropPending()
    }
    recordsReady.signal()
    spaceReady.signal()
  }

  /// A backup joined by cloning the machine between exits `position - 1`
  /// and `position`: the log is kept again, from `position` on (the clone
  /// holds everything before it once it has installed it).
  public func rejoin(at position: UInt64) {
    state.withLock { state in
      state.alone = false
      state.dropPending()
      state.announced = max(state.announced, position)
      state.acknowledged = 0
      state.resumeFloor = position
      state.replayed = 0
      state.timeline.removeAll()
    }
  }

  /// Whether the primary went on alone.
  public var isAlone: Bool { state.withLock { $0.alone } }

  /// The primary is about to stop its guest to hand over to the backup:
  /// the recorder's end record must not reach the backup, which will run
  /// on from where the log ends instead.
  public func prepareHandover() {
    state.withLock { $0.handingOver = true }
  }

  /// Queues the handover message after every record (the backup takes over
  /// once it has replayed them all).
  public func sendHandover(exits: UInt64) {
    var frame: [UInt8] = []
    ChannelMessage.handover(exits: exits).encode(into: &frame)
    state.withLock { state in
      state.pending.append(Pending(position: exits, frame: frame))
      state.pendingBytes += frame.count
    }
    recordsReady.signal()
  }

  /// Whether everything appended so far was acknowledged.
  public var isFullyAcknowledged: Bool {
    state.withLock { $0.start == $0.pending.count && $0.acknowledged >= $0.announced }
  }

  /// Stops the channel: nothing more is sent, a blocked vCPU is released.
  public func close() {
    state.withLock { $0.closed = true }
    recordsReady.signal()
    spaceReady.signal()
  }

  // MARK: The channel thread

  /// Whether a backup that holds the log of every exit before `position`
  /// can resume from there (the records it lacks are still held).
  public func canResume(from position: UInt64) -> Bool {
    state.withLock { position >= $0.acknowledged && position >= $0.resumeFloor }
  }

  /// Streams the log to `stream` from `position` until the stream fails or
  /// the channel closes. Returns why it ended. A backup that resumes holds
  /// everything before `position` (`holdsStart`); a clone acknowledges it
  /// once it has installed the machine.
  public func serve(_ stream: TLSStream, from position: UInt64, holdsStart: Bool = true) -> String {
    state.withLock { state in
      // Everything the backup says it holds is acknowledged.
      state.connected = true
      state.sent = state.start
      while state.sent < state.pending.count, state.pending[state.sent].position <= position {
        state.sent += 1
      }
    }
    defer { state.withLock { $0.connected = false } }
    if holdsStart { acknowledge(received: position, replayed: position) }
    let heartbeat = heartbeatInterval.wholeNanoseconds
    var lastWrite = ClockReading.monotonicNanoseconds()
    var inbox: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 64 << 10)
    do {
      try stream.setTimeout(.seconds(30))
      while true {
        if state.withLock({ $0.closed }) { return "the channel closed" }
        let batch = state.withLock { state -> [UInt8] in
          var batch: [UInt8] = []
          while state.sent < state.pending.count, batch.count < 256 << 10 {
            batch.append(contentsOf: state.pending[state.sent].frame)
            state.sent += 1
          }
          return batch
        }
        if !batch.isEmpty {
          try stream.write(batch)
          lastWrite = ClockReading.monotonicNanoseconds()
          continue
        }
        let now = ClockReading.monotonicNanoseconds()
        if now - lastWrite >= heartbeat {
          let position = state.withLock { $0.announced }
          var frame: [UInt8] = []
          LogFrame.encode(.progress(exits: position), into: &frame)
          try stream.write(frame)
          state.withLock {
            $0.bytesLogged += UInt64(frame.count)
            $0.recordsLogged += 1
          }
          lastWrite = now
        }
        // Sleep until an ack, a record or the heartbeat, unless decrypted
        // input is already waiting or a record came in meanwhile.
        var ready: Int32 = stream.hasBufferedInput ? 1 : 0
        if ready == 0 {
          channelWaiting.store(true, ordering: .sequentiallyConsistent)
          if state.withLock({ $0.sent < $0.pending.count }) {
            channelWaiting.store(false, ordering: .sequentiallyConsistent)
            continue
          }
          ready = lslinux_wait_either(
            stream.socketDescriptor, recordsReady.descriptor.rawValue, heartbeat - min(heartbeat, now - lastWrite) + 1)
          channelWaiting.store(false, ordering: .sequentiallyConsistent)
        }
        if ready & 2 != 0 { recordsReady.wait(untilMonotonic: 0) }
        if ready & 1 != 0 {
          try stream.setTimeout(.milliseconds(20))
          var got = -1
          do {
            got = try stream.read(into: &buffer)
          } catch {
            if error.code != .timedOut { throw error }
          }
          try stream.setTimeout(.seconds(30))
          if got == 0 { return "the backup closed the channel" }
          if got > 0 {
            inbox.append(contentsOf: buffer[..<got])
            try handleAcknowledgements(&inbox)
          }
        }
      }
    } catch {
      return "\(error)"
    }
  }

  private func handleAcknowledgements(_ inbox: inout [UInt8]) throws {
    var offset = 0
    while let (message, size) = try WireMessage.decode(inbox[offset...], at: UInt64(offset)) {
      offset += size
      guard case .control(.ack(let received, let replayed)) = message else {
        throw LogDecodingError("the backup sent \(message), expected acknowledgements")
      }
      acknowledge(received: received, replayed: replayed)
    }
    inbox.removeFirst(offset)
  }

  private func acknowledge(received: UInt64, replayed: UInt64) {
    state.withLock { state in
      if received > state.acknowledged { state.acknowledged = received }
      if replayed > state.replayed { state.replayed = replayed }
      while state.start < state.pending.count, state.pending[state.start].position <= state.acknowledged,
        state.start < state.sent
      {
        state.pendingBytes -= state.pending[state.start].frame.count
        state.start += 1
      }
      if state.start > 4096 && state.start * 2 > state.pending.count {
        state.pending.removeFirst(state.start)
        state.sent -= state.start
        state.start = 0
      }
      // Lag: how long ago the primary executed what the backup has replayed.
      let now = ClockReading.monotonicNanoseconds()
      var index = 0
      while index < state.timeline.count, state.timeline[index].0 <= state.replayed { index += 1 }
      if index > 0 { state.timeline.removeFirst(index - 1) }
      if let oldest = state.timeline.first(where: { $0.0 > state.replayed }) {
        state.lagNanoseconds = now - min(now, oldest.1)
      } else {
        state.lagNanoseconds = 0
      }
      if state.lagSamples.count >= 100_000 { state.lagSamples.removeFirst(10_000) }
      state.lagSamples.append(state.lagNanoseconds)
    }
    onAcknowledge(received)
    spaceReady.signal()
  }
}
