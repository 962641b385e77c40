import CLockstepKVM
import Logging

#if canImport(Glibc)
  import Glibc
#endif

/// Restoring redundancy (paper §3, FT VMotion): a new backup joins the
/// running VM by cloning it while the guest keeps running. Memory goes by
/// iterative pre-copy over KVM's dirty-page log, the disk likewise with
/// its written blocks tracked; then, between two exits, the guest pauses
/// for the last dirty pages and blocks and the machine's state; from that
/// exit on the clone replays the log like any backup.
extension ReplicatedPrimary {
  /// The refusal reason a joiner takes as "stand by and try again later".
  public static let standbyPrefix = "STANDBY: "
  /// Dirty pages left at which the pre-copy stops iterating and pauses.
  static let finalDirtyPages = 256
  /// The most pre-copy rounds after the first.
  static let maximumRounds = 20
  /// Pages copied per safepoint (4 MiB: about a millisecond of pause).
  static let pagesPerSafepoint: UInt64 = 1024

  /// A `join`: clone the running machine into the new backup, or, before
  /// the guest started, attach it like a `hello` from exit 0.
  func acceptJoin(_ stream: TLSStream, theirs: LogHeader, heartbeatPort: UInt16, heartbeatBootID: UInt64) throws {
    if let reason = Self.handshakeMismatch(ours: header, theirs: theirs) { return try refuse(stream, reason) }
    let connected = channel.isConnected
    let verdict = state.withLock { state -> String? in
      if let halted = state.halted { return "this primary halted: \(halted)" }
      if !state.attachedOnce { return nil }
      // A backup that is gone but not yet declared dead at the arbiter may
      // still go live (a partition): clone only once this node won the
      // arbiter and runs alone. Without an arbiter no backup goes live.
      let replaceable = state.alone || (arbiter == nil && !connected)
      if state.cloning || !replaceable {
        return Self.standbyPrefix + "the VM already has a backup (\(state.backupName)); stand by"
      }
      state.cloning = true
      return nil
    }
    if let verdict { return try refuse(stream, verdict) }
    if !state.withLock({ $0.attachedOnce }) {
      return try attachBackup(
        stream, theirs: theirs, resumeFrom: 0, heartbeatPort: heartbeatPort, heartbeatBootID: heartbeatBootID)
    }
    // A session that ended (its backup is gone) is finished with first.
    let previous = state.withLock { state in
      defer { state.session = nil }
      return state.session
    }
    previous?.stream.close()
    previous?.thread.join()
    let thread = try NamedThread(name: "clone") { [self] in
      cloneSession(stream, heartbeatPort: heartbeatPort, heartbeatBootID: heartbeatBootID)
      state.withLock { $0.cloning = false }
    }
    state.withLock { state in
      state.session = Session(stream: stream, thread: thread)
      state.backupName = stream.peerName
    }
  }

  /// What the final pause hands to the clone thread.
  struct FinalCopy: Sendable {
    var pages: [ClonePage]
    var blocks: [(offset: UInt64, bytes: [UInt8])]
    var snapshot: MachineSnapshot
    var pauseNanoseconds: UInt64
  }

  func cloneSession(_ stream: TLSStream, heartbeatPort: UInt16, heartbeatBootID: UInt64) {
    let began = ClockReading.monotonicNanoseconds()
    var bytesSent: UInt64 = 0
    var tracking = false
    var installed = false
    let joiner = stream.peerDescription
    do {
      let generation = state.withLock { $0.generation }
      let heartbeat = try startHeartbeat(
        to: stream, port: heartbeatPort, bootID: heartbeatBootID, generation: generation)
      try send(
        .welcome(header: header, startsAt: .max, generation: generation, heartbeatBootID: heartbeat?.bootID ?? 0),
        to: stream, counting: &bytesSent)
      logger.info("cloning the running VM into a new backup", metadata: ["backup": "\(joiner)"])
      guard
        let started = control.atSafepoint({ machine in Result { try machine.trackWrites() }.map { machine.pageCount } })
      else { throw MachineSetupError("the VM stopped") }
      let total = try started.get()
      tracking = true
      state.withLock { $0.cloneProgress = CloneProgress(pages: total) }
      // Round 0: every page, in slices, while the guest runs between them.
      try sendPages(Array(0..<total), to: stream, counting: &bytesSent, firstCopy: true)
      logger.info(
        "clone: memory copied once",
        metadata: [
          "pages": "\(total)", "mib": "\(bytesSent >> 20)",
          "ms": "\((ClockReading.monotonicNanoseconds() - began) / 1_000_000)",
        ])
      try sendDisk(to: stream, counting: &bytesSent)
      // Rounds 1...: what the guest wrote meanwhile, until little is left.
      var dirty: [UInt64] = []
      for round in 1...Self.maximumRounds {
        guard let taken = control.atSafepoint({ machine in Result { try machine.takeDirtyPages() } }) else {
          throw MachineSetupError("the VM stopped")
        }
        dirty = try taken.get()
        state.withLock { $0.cloneProgress.round = UInt64(round) }
        let elapsedMilliseconds = max(1, (ClockReading.monotonicNanoseconds() - began) / 1_000_000)
        let bytesPerMillisecond = max(1, bytesSent / elapsedMilliseconds)
        let estimate = UInt64(dirty.count) * 4096 / bytesPerMillisecond
        logger.info(
          "clone: round \(round): \(dirty.count) pages dirty; \(bytesSent >> 20) MiB sent; about \(estimate) ms to go")
        if dirty.count <= Self.finalDirtyPages || round == Self.maximumRounds { break }
        try sendPages(dirty, to: stream, counting: &bytesSent)
        dirty = []
      }
      // The pause: the last pages and blocks and the state, between exits.
      let carried = dirty
      guard
        let final = control.atSafepoint({ [self] machine in
          Result { try finalCopy(machine, carrying: carried) }
        })
      else { throw MachineSetupError("the VM stopped") }
      let copy = try final.get()
      tracking = false
      installed = true
      for chunk in stride(from: 0, to: copy.pages.count, by: ChannelMessage.maximumClonePages) {
        let end = min(chunk + ChannelMessage.maximumClonePages, copy.pages.count)
        try send(.clonePages(Array(copy.pages[chunk..<end])), to: stream, counting: &bytesSent)
      }
      for block in copy.blocks {
        try send(.cloneDisk(offset: block.offset, bytes: block.bytes), to: stream, counting: &bytesSent)
      }
      try send(.cloneState(copy.snapshot), to: stream, counting: &bytesSent)
      let totalMilliseconds = (ClockReading.monotonicNanoseconds() - began) / 1_000_000
      logger.notice(
        "clone: the new backup holds the VM at exit \(copy.snapshot.exits): PROTECTED again",
        metadata: [
          "backup": "\(joiner)", "total_ms": "\(totalMilliseconds)",
          "pause_us": "\(copy.pauseNanoseconds / 1000)", "bytes": "\(bytesSent)",
          "final_pages": "\(copy.pages.count)", "final_blocks": "\(copy.blocks.count)",
        ])
      state.withLock { state in
        state.lastClone = CloneReport(
          totalMilliseconds: totalMilliseconds, pauseMicroseconds: copy.pauseNanoseconds / 1000, bytes: bytesSent)
        state.clones += 1
        // Installed: from here on this is an ordinary backup session (a
        // new joiner is refused because this node no longer runs alone).
        state.cloning = false
      }
      let reason = channel.serve(stream, from: copy.snapshot.exits, holdsStart: false)
      stream.close()
      backupSessionEnded(stream, reason: reason)
    } catch {
      stream.close()
      if tracking {
        _ = control.atSafepoint { machine in try? machine.stopTrackingWrites() }
      }
      if installed {
        logger.error(
          "the new backup \(joiner) was lost right after its clone: \(error); the failure detector takes over")
      } else {
        logger.error("clone into \(joiner) failed: \(error); this primary goes on alone")
      }
    }
  }

  /// At the pause (vCPU thread): the pages still dirty, the disk blocks
  /// written, the state; then output is held and the log kept again, from
  /// this exit on, for the new backup.
  func finalCopy(_ machine: Machine, carrying carried: [UInt64]) throws -> FinalCopy {
    let pauseStart = ClockReading.monotonicNanoseconds()
    let pages = Set(carried).union(try machine.takeDirtyPages()).sorted().map { page in
      ClonePage.copying(page, machine.copyPage(page))
    }
    var blocks: [(offset: UInt64, bytes: [UInt8])] = []
    if let block = machine.block {
      for number in block.takeWrittenBlocks() {
        let offset = number * BlockDevice.trackingBlockSize
        let count = Int(min(BlockDevice.trackingBlockSize, block.size - offset))
        let read = block.read(offset: offset, count: count)
        guard read.status == LS_OK else { throw MachineSetupError("clone: cannot read disk block \(number)") }
        blocks.append((offset, read.bytes))
      }
    }
    let snapshot = try machine.snapshot()
    // Dropping the dirty log changes the memory slot (KVM then rebuilds its
    // mappings): after the pause, at the next safepoint, not inside it.
    control.requestSafepoint { machine in try? machine.stopTrackingWrites() }
    // From this exit on, a backup holds the VM.
    channel.rejoin(at: snapshot.exits)
    gate.resumeHolding(after: snapshot.exits == 0 ? 0 : snapshot.exits - 1)
    state.withLock { state in
      state.alone = false
      state.attachedOnce = true
    }
    return FinalCopy(
      pages: pages, blocks: blocks, snapshot: snapshot,
      pauseNanoseconds: ClockReading.monotonicNanoseconds() - pauseStart)
  }

  /// Copies `pages` at safepoints (a slice each) and sends them.
  func sendPages(
    _ pages: [UInt64], to stream: TLSStream, counting bytes: inout UInt64, firstCopy: Bool = false
  ) throws {
    var index = 0
    while index < pages.count {
      let slice = Array(pages[index..<min(index + Int(Self.pagesPerSafepoint), pages.count)])
      // Only the copy pauses the guest; the zero test runs here.
      guard let raw = control.atSafepoint({ machine in machine.copyPages(slice) }) else {
        throw MachineSetupError("the VM stopped")
      }
      let copied = raw.withUnsafeBytes { buffer in
        slice.enumerated().map { index, page in
          let bytes = UnsafeRawBufferPointer(rebasing: buffer[(index * 4096)..<((index + 1) * 4096)])
          return ClonePage(number: page, data: ClonePage.isZero(bytes) ? nil : Array(bytes))
        }
      }
      for chunk in stride(from: 0, to: copied.count, by: ChannelMessage.maximumClonePages) {
        let end = min(chunk + ChannelMessage.maximumClonePages, copied.count)
        try send(.clonePages(Array(copied[chunk..<end])), to: stream, counting: &bytes)
      }
      index += slice.count
      if firstCopy { state.withLock { $0.cloneProgress.firstCopyPages = UInt64(index) } }
    }
  }

  /// Sends the whole disk, read through a descriptor of its own while the
  /// guest keeps writing (the blocks it writes are sent again at the pause).
  func sendDisk(to stream: TLSStream, counting bytes: inout UInt64) throws {
    guard let path = configuration.diskPath, header.diskSize > 0 else { return }
    let file = try FileDescriptorOwner(opening: path, flags: O_RDONLY)
    var offset: UInt64 = 0
    var chunk = [UInt8](repeating: 0, count: ChannelMessage.maximumCloneDiskBytes)
    while offset < header.diskSize {
      let want = Int(min(UInt64(chunk.count), header.diskSize - offset))
      let fd = file.rawValue
      let got = try chunk.withUnsafeMutableBytes { buffer in
        try systemCall("pread(\(path))") { pread(fd, buffer.baseAddress, want, off_t(offset)) }
      }
      guard got > 0 else { throw MachineSetupError("clone: \(path) ends at \(offset), before its size") }
      let zero = chunk.withUnsafeBytes { ClonePage.isZero(UnsafeRawBufferPointer(rebasing: $0[..<got])) }
      let message: ChannelMessage =
        zero
        ? .cloneDiskZero(offset: offset, count: UInt32(got)) : .cloneDisk(offset: offset, bytes: Array(chunk[..<got]))
      try send(message, to: stream, counting: &bytes)
      offset += UInt64(got)
    }
  }

  func send(_ message: ChannelMessage, to stream: TLSStream, counting bytes: inout UInt64) throws {
    var frame: [UInt8] = []
    message.encode(into: &frame)
    try stream.write(frame)
    bytes += UInt64(frame.count)
    state.withLock { $0.cloneProgress.bytes = bytes }
  }
}
