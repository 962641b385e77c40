/// What cloning a running machine needs from it, all on its vCPU thread
/// (at safepoints, ``MachineControl/atSafepoint(_:_:)``): write tracking of
/// memory and disk, page copies, the state between two exits; and on the
/// clone, installing them.
extension Machine {
  /// 4 KiB pages of guest RAM.
  public var pageCount: UInt64 { memory.size / 4096 }

  /// Starts tracking writes to guest memory (KVM's dirty log) and disk.
  public func trackWrites() throws(SystemError) {
    try vm.map(memory, logDirtyPages: true)
    _ = try vm.dirtyPages(pageCount: pageCount)
    memory.tracksHostWrites = true
    _ = memory.takeHostWrittenPages()
    block?.trackWrites()
  }

  /// Stops tracking writes to guest memory.
  public func stopTrackingWrites() throws(SystemError) {
    try vm.map(memory, logDirtyPages: false)
    memory.tracksHostWrites = false
    _ = memory.takeHostWrittenPages()
    _ = block?.takeWrittenBlocks()
  }

  /// The pages written since the last call (or since tracking started),
  /// as page numbers.
  public func takeDirtyPages() throws(SystemError) -> [UInt64] {
    let bitmap = try vm.dirtyPages(pageCount: pageCount)
    let host = memory.takeHostWrittenPages()
    var pages: [UInt64] = []
    for (index, word) in bitmap.enumerated() where word != 0 {
      var bits = word
      while bits != 0 {
        let bit = UInt64(bits.trailingZeroBitCount)
        pages.append(UInt64(index) * 64 + bit)
        bits &= bits - 1
      }
    }
    if host.isEmpty { return pages }
    return Set(pages).union(host).sorted()
  }

  /// A copy of guest RAM pages `pages` (4 KiB each), back to back.
  public func copyPages(_ pages: [UInt64]) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: pages.count * 4096)
    bytes.withUnsafeMutableBytes { target in
      guard let base = target.baseAddress else { return }
      for (index, page) in pages.enumerated() where page < pageCount {
        (base + index * 4096).copyMemory(from: memory.base + Int(page * 4096), byteCount: 4096)
      }
    }
    return bytes
  }

  /// A copy of guest RAM page `page` (4 KiB).
  public func copyPage(_ page: UInt64) -> [UInt8] {
    Array(UnsafeRawBufferPointer(start: memory.base + Int(page * 4096), count: 4096))
  }

  /// Overwrites guest RAM at `offset` with `bytes` (a clone's incoming
  /// pages); throws when the range is outside RAM.
  public func installMemory(_ bytes: [UInt8], at offset: UInt64) throws(MachineSetupError) {
    guard offset <= memory.size, UInt64(bytes.count) <= memory.size - offset else {
      throw MachineSetupError(
        "clone: \(bytes.count) bytes at 0x\(String(offset, radix: 16)) fall outside the \(memory.size)-byte RAM")
    }
    bytes.withUnsafeBytes { buffer in
      guard let source = buffer.baseAddress else { return }
      (memory.base + Int(offset)).copyMemory(from: source, byteCount: buffer.count)
    }
  }

  /// Zeroes `count` bytes of guest RAM at `offset`.
  public func zeroMemory(count: UInt64, at offset: UInt64) throws(MachineSetupError) {
    guard offset <= memory.size, count <= memory.size - offset else {
      throw MachineSetupError("clone: \(count) zero bytes at 0x\(String(offset, radix: 16)) fall outside RAM")
    }
    (memory.base + Int(offset)).initializeMemory(as: UInt8.self, repeating: 0, count: Int(count))
  }

  /// The machine's state between two exits. Completes what the last exit
  /// left pending in KVM first, so the registers are final.
  public func snapshot() throws(SystemError) -> MachineSnapshot {
    try vcpu.completePendingExit()
    return MachineSnapshot(
      exits: exitCount, traceWords: trace.hashWords, net: net.state, clockOffset: clockOffset,
      lastMonotonic: lastMonotonic, lastClock: lastClock,
      registers: MachineSnapshot.bytes(of: try vcpu.registers()),
      specialRegisters: MachineSnapshot.bytes(of: try vcpu.specialRegisters()),
      floatingPoint: MachineSnapshot.bytes(of: try vcpu.floatingPointState()))
  }

  /// Makes this (freshly built) machine the clone whose memory was
  /// installed: registers, exit count, trace hash, devices, clock.
  public func restore(_ snapshot: MachineSnapshot) throws {
    let (registers, special, floatingPoint) = try snapshot.kvmRegisters()
    try vcpu.setSpecialRegisters(special)
    try vcpu.setRegisters(registers)
    try vcpu.setFloatingPointState(floatingPoint)
    exitCount = snapshot.exits
    control.publishExits(exitCount)
    trace = ExitTrace(keepsEntries: trace.keepsEntries, resuming: snapshot.traceWords, count: snapshot.exits)
    net.restore(snapshot.net)
    clockOffset = snapshot.clockOffset
    lastMonotonic = snapshot.lastMonotonic
    lastClock = snapshot.lastClock
  }
}
