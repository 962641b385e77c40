import CLockstepKVM

/// Everything about a running machine that is not guest memory or disk,
/// taken between two exits: the vCPU's registers, the exit count and trace
/// hash, the net device, the guest clock's continuation. With memory and
/// disk it is a clone of the machine (paper §3: FT VMotion); the clone then
/// replays the log from exit ``exits`` on.
///
/// The register blocks are KVM's structures as bytes: both hosts must be
/// x86-64 with the same KVM ABI (they are: the guest sees one fixed CPUID
/// table, checked in the handshake).
public struct MachineSnapshot: Sendable, Equatable {
  /// Exits handled: the next exit's sequence number.
  public var exits: UInt64
  /// The exit trace's running hash.
  public var traceWords: (state: UInt64, count: UInt64)
  /// The net device.
  public var net: NetDevice.State
  /// The guest clock (see ``Machine/clockOffset``).
  public var clockOffset: Int64
  public var lastMonotonic: UInt64
  public var lastClock: ClockReading?
  /// `kvm_regs`, `kvm_sregs`, `kvm_fpu` as bytes.
  public var registers: [UInt8]
  public var specialRegisters: [UInt8]
  public var floatingPoint: [UInt8]

  public static func == (left: MachineSnapshot, right: MachineSnapshot) -> Bool {
    left.exits == right.exits && left.traceWords == right.traceWords && left.net == right.net
      && left.clockOffset == right.clockOffset && left.lastMonotonic == right.lastMonotonic
      && left.lastClock == right.lastClock && left.registers == right.registers
      && left.specialRegisters == right.specialRegisters && left.floatingPoint == right.floatingPoint
  }

  /// The bytes of a C structure.
  static func bytes<T>(of value: T) -> [UInt8] {
    withUnsafeBytes(of: value) { Array($0) }
  }

  /// A C structure from `bytes`, which must be exactly its size.
  static func value<T>(_: T.Type, from bytes: [UInt8], zero: T, _ field: String) throws(LogDecodingError) -> T {
    guard bytes.count == MemoryLayout<T>.size else {
      throw LogDecodingError(
        "snapshot.\(field): \(bytes.count) bytes, this host's KVM structure has \(MemoryLayout<T>.size)")
    }
    var value = zero
    withUnsafeMutableBytes(of: &value) { target in
      bytes.withUnsafeBytes { target.copyMemory(from: $0) }
    }
    return value
  }

  /// The registers as KVM takes them.
  func kvmRegisters() throws(LogDecodingError) -> (kvm_regs, kvm_sregs, kvm_fpu) {
    (
      try Self.value(kvm_regs.self, from: registers, zero: kvm_regs(), "registers"),
      try Self.value(kvm_sregs.self, from: specialRegisters, zero: kvm_sregs(), "specialRegisters"),
      try Self.value(kvm_fpu.self, from: floatingPoint, zero: kvm_fpu(), "floatingPoint")
    )
  }

  /// Appends the encoding (little-endian; docs/protocol.md, `cloneState`).
  public func encode(into body: inout [UInt8]) {
    body.append(littleEndian: exits)
    body.append(littleEndian: traceWords.state)
    body.append(littleEndian: traceWords.count)
    if let attachment = net.attachment {
      body.append(1)
      for value in [attachment.rx, attachment.rxCapacity, attachment.tx, attachment.txCapacity] {
        body.append(littleEndian: value)
      }
    } else {
      body.append(0)
    }
    body.append(littleEndian: net.rxMessages)
    body.append(littleEndian: net.txMessages)
    body.append(littleEndian: net.highestConnection)
    body.append(littleEndian: UInt32(net.openConnections.count))
    for connection in net.openConnections.sorted() { body.append(littleEndian: connection) }
    body.append(littleEndian: UInt64(bitPattern: clockOffset))
    body.append(littleEndian: lastMonotonic)
    if let lastClock {
      body.append(1)
      lastClock.encode(into: &body)
    } else {
      body.append(0)
    }
    for block in [registers, specialRegisters, floatingPoint] {
      body.append(littleEndian: UInt32(block.count))
      body.append(contentsOf: block)
    }
  }

  /// Reads a snapshot encoded by ``encode(into:)``.
  public static func decode(from body: inout ByteReader) throws(LogDecodingError) -> MachineSnapshot {
    let exits = try body.read(UInt64.self, "snapshot.exits")
    let words = (try body.read(UInt64.self, "snapshot.trace"), try body.read(UInt64.self, "snapshot.traceCount"))
    var attachment: NetDevice.Attachment?
    switch try body.read(UInt8.self, "snapshot.net.attached") {
    case 0: break
    case 1:
      attachment = NetDevice.Attachment(
        rx: try body.read(UInt64.self, "snapshot.net.rx"), rxCapacity: try body.read(UInt64.self, "snapshot.net.rxc"),
        tx: try body.read(UInt64.self, "snapshot.net.tx"), txCapacity: try body.read(UInt64.self, "snapshot.net.txc"))
    case let flag: throw LogDecodingError("snapshot.net.attached: \(flag) is neither 0 nor 1")
    }
    let rxMessages = try body.read(UInt64.self, "snapshot.net.rxMessages")
    let txMessages = try body.read(UInt64.self, "snapshot.net.txMessages")
    let highest = try body.read(UInt32.self, "snapshot.net.highest")
    let count = try body.read(UInt32.self, "snapshot.net.open")
    guard Int(count) <= body.remaining / 4 else {
      throw LogDecodingError("snapshot.net.open: \(count) connections cannot fit in \(body.remaining) bytes")
    }
    var open: Set<UInt32> = []
    for _ in 0..<count { open.insert(try body.read(UInt32.self, "snapshot.net.connection")) }
    let offset = Int64(bitPattern: try body.read(UInt64.self, "snapshot.clockOffset"))
    let lastMonotonic = try body.read(UInt64.self, "snapshot.lastMonotonic")
    var lastClock: ClockReading?
    switch try body.read(UInt8.self, "snapshot.lastClock.flag") {
    case 0: break
    case 1: lastClock = try ClockReading.decode(from: &body)
    case let flag: throw LogDecodingError("snapshot.lastClock.flag: \(flag) is neither 0 nor 1")
    }
    var blocks: [[UInt8]] = []
    for name in ["registers", "specialRegisters", "floatingPoint"] {
      let size = try body.read(UInt32.self, "snapshot.\(name).size")
      blocks.append(try body.read(count: Int(size), limit: 4096, "snapshot.\(name)"))
    }
    return MachineSnapshot(
      exits: exits, traceWords: words,
      net: NetDevice.State(
        attachment: attachment, rxMessages: rxMessages, txMessages: txMessages, openConnections: open,
        highestConnection: highest),
      clockOffset: offset, lastMonotonic: lastMonotonic, lastClock: lastClock, registers: blocks[0],
      specialRegisters: blocks[1], floatingPoint: blocks[2])
  }
}
