import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// The Output Rule: no output leaves the primary before the backup has
/// acknowledged the log up to the point that produced it.
///
/// Every output produced during exit S was computed from guest state
/// before that exit, so it depends only on inputs logged at exits < S: it
/// is tagged with position S and released when the backup's cumulative
/// acknowledgement says it holds the log of every exit < S. The guest never
/// waits for the backup; only output does. Held output is bounded: past
/// ``limit`` bytes the vCPU blocks in the sink (flow control) until acks
/// release some.
public final class OutputGate: OutputSink, Sendable {
  enum Output: Sendable {
    case console([UInt8])
    case send(UInt32, [UInt8])
    case close(UInt32)

    var size: Int {
      switch self {
      case .console(let bytes), .send(_, let bytes): bytes.count
      case .close: 0
      }
    }
  }

  struct State: ~Copyable {
    var held: [(position: UInt64, output: Output)] = []
    var start = 0
    var heldBytes = 0
    var acknowledged: UInt64 = 0
    var closed = false
  }

  private let state = Mutex(State())
  private let released: Wakeup
  let network: (any NetworkPort)?
  let consoleDescriptor: Int32
  /// Called on the vCPU thread with S once the outputs of exit S are all
  /// queued, so the log can say it is complete up to S.
  let announce: @Sendable (UInt64) -> Void
  /// Held bytes above which the guest is stopped until the backup catches up.
  public let limit: Int

  /// A gate in front of `network` and the console.
  public init(
    network: (any NetworkPort)?, consoleDescriptor: Int32 = STDOUT_FILENO, limit: Int = 64 << 20,
    announce: @escaping @Sendable (UInt64) -> Void
  ) throws(SystemError) {
    self.released = try Wakeup()
    self.network = network
    self.consoleDescriptor = consoleDescriptor
    self.limit = limit
    self.announce = announce
  }

  /// Outputs held now, and their bytes.
  public var held: (count: Int, bytes: Int) {
    state.withLock { ($0.held.count - $0.start, $0.heldBytes) }
  }

  /// The backup holds the log of every exit before `position`: release
  /// what that covers. Called by the channel when an ack arrives.
  public func acknowledge(upTo position: UInt64) {
    // Released under the lock, so output leaves in the order it was made
    // even when the vCPU emits covered output at the same time.
    let releasedAny = state.withLock { state -> Bool in
      guard position > state.acknowledged else { return false }
      state.acknowledged = position
      var ready: [Output] = []
      while state.start < state.held.count, state.held[state.start].position <= position {
        let output = state.held[state.start].output
        state.heldBytes -= output.size
        ready.append(output)
        state.start += 1
      }
      if state.start > 1024 && state.start * 2 > state.held.count {
        state.held.removeFirst(state.start)
        state.start = 0
      }
      if !ready.isEmpty && !state.closed { emit(ready) }
      return !ready.isEmpty
    }
    if releasedAny { released.signal() }
  }

  private func emit(_ ready: [Output]) {
    for output in ready {
      switch output {
      case .console(let bytes): writeConsole(bytes)
      case .send(let connection, let bytes): bytes.withUnsafeBytes { network?.send($0, connection: connection) }
      case .close(let connection): network?.close(connection: connection)
      }
    }
    network?.flush()
  }

  /// Holds output again (a backup joined a primary that ran alone): output
  /// of exits after `position` waits for acknowledgements; nothing is held
  /// now (alone, everything was released at once).
  public func resumeHolding(after position: UInt64) {
    state.withLock { $0.acknowledged = position }
  }

  /// Stops holding: the gate releases nothing more (the node lost its
  /// right to speak) and a blocked vCPU is let go.
  public func shut() {
    state.withLock { $0.closed = true }
    released.signal()
  }

  // MARK: OutputSink (the vCPU thread)

  public func console(_ bytes: UnsafeRawBufferPointer, at point: ExitPoint) {
    hold(.console(Array(bytes)), at: point)
  }

  public func send(_ bytes: UnsafeRawBufferPointer, connection: UInt32, at point: ExitPoint) {
    hold(.send(connection, Array(bytes)), at: point)
  }

  public func close(connection: UInt32, at point: ExitPoint) {
    hold(.close(connection), at: point)
  }

  public func flush(at point: ExitPoint) {
    announce(point.sequence)
  }

  private func hold(_ output: Output, at point: ExitPoint) {
    // Flow control: wait (bounded per round) while too much is held.
    while state.withLock({ !$0.closed && $0.heldBytes > limit }) {
      released.wait(untilMonotonic: ClockReading.monotonicNanoseconds() + 10_000_000)
    }
    state.withLock { state in
      guard !state.closed else { return }
      // Already covered by an acknowledgement, and nothing older is held.
      if point.sequence <= state.acknowledged && state.start == state.held.count {
        emit([output])
        return
      }
      state.held.append((point.sequence, output))
      state.heldBytes += output.size
    }
  }

  private func writeConsole(_ bytes: [UInt8]) {
    _ = bytes.withUnsafeBytes { writeFully(consoleDescriptor, $0) }
  }
}
