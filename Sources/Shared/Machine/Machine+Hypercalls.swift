import CLockstepKVM

/// The hypercall dispatcher: reads a descriptor the guest rang the doorbell
/// with, performs the call, writes the results back.
extension Machine {
  /// The outcome of one call: a result and outputs for the descriptor, or
  /// the end of the VM.
  enum CallOutcome {
    case result(Int32)
    /// A result and out[0], out[1].
    case values(Int32, UInt64, UInt64)
    case stop(MachineStop)
  }

  /// The four arguments of a descriptor (no allocation on the exit path).
  struct CallArguments {
    let values: (UInt64, UInt64, UInt64, UInt64)

    init(_ call: UnsafeMutableRawBufferPointer) {
      values = (
        UInt64(littleEndian: call.loadUnaligned(fromByteOffset: 8, as: UInt64.self)),
        UInt64(littleEndian: call.loadUnaligned(fromByteOffset: 16, as: UInt64.self)),
        UInt64(littleEndian: call.loadUnaligned(fromByteOffset: 24, as: UInt64.self)),
        UInt64(littleEndian: call.loadUnaligned(fromByteOffset: 32, as: UInt64.self))
      )
    }

    subscript(index: Int) -> UInt64 {
      switch index {
      case 0: values.0
      case 1: values.1
      case 2: values.2
      default: values.3
      }
    }
  }

  static let descriptorSize = UInt64(MemoryLayout<ls_call>.size)

  /// Handles one doorbell store. Returns a stop reason if the VM must end.
  func hypercall(descriptor address: UInt64) -> MachineStop? {
    // A requested stop takes effect here, at an exit, before the exit is
    // counted: the state a replay of the log reaches at this same exit.
    if control.stopRequested { return .stopped }
    var point = ExitPoint(sequence: exitCount, instructionPointer: vcpu.syncedInstructionPointer)
    if configuration.verifiesRegisters { point.registerHash = vcpu.syncedRegisterHash }
    let call: UnsafeMutableRawBufferPointer
    do {
      guard address % 8 == 0 else {
        throw GuestError("hypercall descriptor 0x\(String(address, radix: 16)) is not 8-byte aligned")
      }
      do {
        call = try memory.guestRange(address, count: Self.descriptorSize)
      } catch {
        throw GuestError("hypercall descriptor \(error)")
      }
    } catch {
      count(point, kind: UInt32.max)
      return .guestError(error as? GuestError ?? GuestError("\(error)"), at: point)
    }
    let op = UInt32(littleEndian: call.loadUnaligned(fromByteOffset: 0, as: UInt32.self))
    let arguments = CallArguments(call)

    var outcome: CallOutcome
    do {
      do {
        outcome = try perform(op: op, arguments, at: point)
      } catch let exhausted as LogExhausted {
        // A backup that won the arbiter replayed all it received: go live
        // at this exit and perform it again, live this time. (Everything
        // the exit did before it asked for the input is idempotent: a
        // drained tx ring is empty the second time.)
        guard let takeover, let live = takeover(self, point) else { throw exhausted }
        goLive(live)
        outcome = try perform(op: op, arguments, at: point)
      }
    } catch is RecordingEnded {
      // A replay reached the exit where the recorded VM was stopped: stop
      // here too, this exit uncounted, as the recording did.
      return .endOfRecording(at: point)
    } catch let error as GuestError {
      count(point, kind: op)
      return .guestError(error, at: point)
    } catch {
      count(point, kind: op)
      return .inputFailed("\(error)", at: point)
    }
    count(point, kind: op)
    switch outcome {
    case .stop(let stop):
      return stop
    case .result(let result):
      memory.noteHostWrite(address, count: Self.descriptorSize)
      call.storeBytes(of: result.littleEndian, toByteOffset: 4, as: Int32.self)
      return nil
    case .values(let result, let first, let second):
      memory.noteHostWrite(address, count: Self.descriptorSize)
      call.storeBytes(of: result.littleEndian, toByteOffset: 4, as: Int32.self)
      call.storeBytes(of: first.littleEndian, toByteOffset: 40, as: UInt64.self)
      call.storeBytes(of: second.littleEndian, toByteOffset: 48, as: UInt64.self)
      return nil
    }
  }

  /// Counts a handled exit.
  @inline(__always)
  private func count(_ point: ExitPoint, kind: UInt32) {
    trace.record(point, kind: kind)
    exitCount += 1
    control.publishExits(exitCount)
  }

  /// Performs call `op`. Throws ``GuestError`` when the guest broke the ABI,
  /// anything else when the input source failed.
  private func perform(op: UInt32, _ argument: CallArguments, at point: ExitPoint) throws -> CallOutcome {
    switch Int(op) {
    case Int(LS_OP_NOP):
      return .result(LS_OK)

    case Int(LS_OP_CONSOLE_WRITE):
      guard argument[1] <= LS_CONSOLE_MAX else { return .result(LS_EINVAL) }
      let text = try guestBuffer(argument[0], argument[1], "console.write buffer")
      outputs.console(UnsafeRawBufferPointer(text), at: point)
      outputs.flush(at: point)
      return .result(LS_OK)

    case Int(LS_OP_EXIT):
      try drainNetwork(at: point)
      return .stop(.exited(code: Int32(truncatingIfNeeded: argument[0])))

    case Int(LS_OP_ABORT):
      let text = try guestBuffer(argument[0], min(argument[1], 4096), "abort message")
      return .stop(.aborted(message: String(decoding: text, as: UTF8.self), at: point))

    case Int(LS_OP_NET_ATTACH):
      guard net.attachment == nil else { return .result(LS_EINVAL) }
      return .result(
        try net.attach(rx: argument[0], rxCapacity: argument[1], tx: argument[2], txCapacity: argument[3]))

    case Int(LS_OP_NET_FLUSH):
      guard net.attachment != nil else { return .result(LS_ENODEV) }
      try drainNetwork(at: point)
      return .result(LS_OK)

    case Int(LS_OP_BLOCK_WRITE):
      guard let block else { return .result(LS_ENODEV) }
      guard block.isValid(offset: argument[0], count: argument[2]) else { return .result(LS_EINVAL) }
      let data = try guestBuffer(argument[1], argument[2], "block.write buffer")
      return .result(block.write(UnsafeRawBufferPointer(data), offset: argument[0]))

    case Int(LS_OP_BLOCK_FLUSH):
      guard let block else { return .result(LS_ENODEV) }
      return .result(block.flush())

    case Int(LS_OP_CLOCK):
      let reading = try inputs.input(.clock, at: point) { guestClock() }
      lastClock = reading
      lastMonotonic = max(lastMonotonic, reading.monotonic)
      return .values(LS_OK, reading.monotonic, reading.wall)

    case Int(LS_OP_ENTROPY):
      guard argument[1] <= LS_ENTROPY_MAX else { return .result(LS_EINVAL) }
      let target = try guestBuffer(argument[0], argument[1], "entropy buffer")
      let value = try inputs.input(.entropy, at: point) { try EntropyBytes.random(count: target.count) }
      guard value.bytes.count == target.count else {
        throw InputMismatch("entropy: \(value.bytes.count) bytes for a request of \(target.count)")
      }
      target.copyBytes(from: value.bytes)
      memory.noteHostWrite(argument[0], count: argument[1])
      return .result(LS_OK)

    case Int(LS_OP_WAIT):
      try drainNetwork(at: point)
      let cursor = try net.rxCursor()
      let outcome = try inputs.input(.wait, at: point) { liveWait(deadline: argument[0], cursor: cursor) }
      lastMonotonic = max(lastMonotonic, outcome.now)
      try net.deliver(outcome.events)
      let pending = try net.rxCursor().map { $0.used > 0 } ?? false
      let mask = (pending ? LS_READY_NET : 0) | (outcome.timedOut ? LS_READY_TIMEOUT : 0)
      return .values(LS_OK, mask, outcome.now)

    case Int(LS_OP_BLOCK_READ):
      guard let block else { return .result(LS_ENODEV) }
      guard block.isValid(offset: argument[0], count: argument[2]) else { return .result(LS_EINVAL) }
      let target = try guestBuffer(argument[1], argument[2], "block.read buffer")
      let value = try inputs.input(.blockRead, at: point) { block.read(offset: argument[0], count: target.count) }
      guard value.status != LS_OK || value.bytes.count == target.count else {
        throw InputMismatch("block.read: \(value.bytes.count) bytes for a request of \(target.count)")
      }
      if value.status == LS_OK {
        target.copyBytes(from: value.bytes)
        memory.noteHostWrite(argument[1], count: argument[2])
      }
      return .result(value.status)

    default:
      return .result(LS_ENOSYS)
    }
  }

  /// A guest-supplied buffer, or a ``GuestError`` naming `what`.
  private func guestBuffer(_ address: UInt64, _ count: UInt64, _ what: String) throws(GuestError)
    -> UnsafeMutableRawBufferPointer
  {
    do {
      return try memory.guestRange(address, count: count)
    } catch {
      throw GuestError("\(what) \(error)")
    }
  }

  /// Sends what the guest queued in its tx ring.
  private func drainNetwork(at point: ExitPoint) throws(GuestError) {
    if try net.drain(to: outputs, at: point) {
      outputs.flush(at: point)
    }
  }

  /// LS_OP_WAIT, live: deliver pending network events that fit, or block
  /// until some arrive, the deadline passes or a stop is requested. Never
  /// blocks when the rx ring still holds messages.
  func liveWait(deadline: UInt64, cursor: RingCursor?) -> WaitOutcome {
    let mayBlock = (cursor?.used ?? 0) == 0
    while true {
      var events: [InboundEvent] = []
      if var planned = cursor, let network {
        events = network.takeEvents(fitting: &planned)
      }
      let now = guestMonotonic()
      // A safepoint waits for this exit to end: return (an early wakeup the
      // guest sees as nothing ready, logged like any other).
      if !events.isEmpty || !mayBlock || now >= deadline || control.stopRequested || control.hasSafepoint {
        return WaitOutcome(events: events, now: now, timedOut: now >= deadline)
      }
      // The guest's deadline on the host's clock.
      let hostDeadline = UInt64(bitPattern: max(0, Int64(bitPattern: min(deadline, UInt64(Int64.max))) &- clockOffset))
      control.wakeup.wait(untilMonotonic: hostDeadline)
    }
  }

  /// The guest's clocks now: the host's, the monotonic one shifted by
  /// ``clockOffset``.
  func guestClock() -> ClockReading {
    var reading = ClockReading.now()
    reading.monotonic = UInt64(bitPattern: Int64(bitPattern: reading.monotonic) &+ clockOffset)
    return reading
  }

  /// The guest's monotonic clock now.
  func guestMonotonic() -> UInt64 {
    UInt64(bitPattern: Int64(bitPattern: ClockReading.monotonicNanoseconds()) &+ clockOffset)
  }

  /// Switches a replaying machine to live execution (a backup going live):
  /// new input source, outputs and network, and a clock offset that makes
  /// the guest's monotonic clock continue from the last value it was given.
  func goLive(_ live: Takeover) {
    inputs = live.inputs
    outputs = live.outputs
    network = live.network
    let host = ClockReading.now()
    clockOffset = Self.clockOffset(
      lastMonotonic: lastMonotonic, lastClock: lastClock, hostMonotonic: host.monotonic, hostWall: host.wall)
  }

  /// The offset that continues the guest's monotonic clock on a new host:
  /// from the last value the guest saw, plus the wall-clock time that passed
  /// since its last clock reading (hosts keep their wall clocks in sync,
  /// their monotonic clocks are unrelated). An elapsed time over a minute
  /// or a wall clock that went back is not trusted (clocks out of sync):
  /// the clock then continues from its last value.
  static func clockOffset(lastMonotonic: UInt64, lastClock: ClockReading?, hostMonotonic: UInt64, hostWall: UInt64)
    -> Int64
  {
    var continued = lastMonotonic
    if let lastClock, hostWall > lastClock.wall, hostWall - lastClock.wall < 60_000_000_000 {
      continued = max(continued, lastClock.monotonic + (hostWall - lastClock.wall))
    }
    return Int64(bitPattern: continued &- hostMonotonic)
  }
}
