import Lockstep

#if canImport(Glibc)
  import Glibc
#endif

/// The guest-controlled side of the devices, without KVM: a net device over
/// real guest memory (LS_OP_NET_ATTACH's checks, the tx ring the guest
/// fills and the VMM drains, the rx ring the VMM fills with planned or
/// logged events), ``RingCursor``'s arithmetic, and ``BlockDevice``'s
/// request validation with reads and writes of a real disk file.
///
/// Input: a program of operations (``RingProgram``).
public enum RingsTarget: FuzzTarget {
  public static let name = "rings"
  nonisolated(unsafe) static var bench: RingBench?

  public static func setUp() -> Bool {
    bench = RingBench.make()
    return bench != nil
  }

  public static func run(_ data: [UInt8]) {
    guard let bench else { return }
    bench.reset()
    var reader = FuzzReader(data)
    var program = RingProgram(bench: bench)
    program.run(&reader)
  }

  public static func seeds() -> [(name: String, bytes: [UInt8])] { RingProgram.seeds().map { ($0.name, $0.bytes) } }
}

/// A joining backup's net device: the ``MachineSnapshot`` a primary sends
/// (channel message 27, `cloneState`), decoded and restored into the
/// device, then the same operations as ``RingsTarget``: whatever a primary
/// sends must leave a device that stops the VM cleanly, never the VMM.
///
/// Input: a mode byte (bit 0 set: the next part is a message body, framed
/// here; clear: raw channel bytes), a u16-length-prefixed part with the
/// message, then a ``RingProgram``.
public enum CloneTarget: FuzzTarget {
  public static let name = "clone"

  public static func setUp() -> Bool { RingsTarget.setUp() }

  public static func run(_ data: [UInt8]) {
    guard let bench = RingsTarget.bench else { return }
    bench.reset()
    var reader = FuzzReader(data)
    let mode = reader.u8()
    var message = reader.blob()
    if mode & 1 == 1 {
      var framed: [UInt8] = []
      LogFrame.frame(type: 27, body: message, into: &framed)
      message = framed
    }
    guard case .control(.cloneState(let snapshot))? = try? WireMessage.decode(message[...], at: 0)?.message else {
      return
    }
    // CLONE-1: a restored device is not checked (rings anywhere, of any
    // capacity; counters near 2^64), and then traps.
    if KnownBugs.avoid && !plausible(snapshot.net, in: bench) { return }
    bench.rings.restore(snapshot.net)
    var program = RingProgram(bench: bench, clean: false)
    program.run(&reader)
  }

  /// A device state LS_OP_NET_ATTACH could have made, with counters far
  /// from overflowing.
  static func plausible(_ state: NetDevice.State, in bench: RingBench) -> Bool {
    guard state.rxMessages < 1 << 62, state.txMessages < 1 << 62 else { return false }
    guard let rings = state.attachment else { return true }
    for (address, capacity) in [(rings.rx, rings.rxCapacity), (rings.tx, rings.txCapacity)] {
      guard capacity >= 4096, capacity <= 64 << 20, capacity.nonzeroBitCount == 1, address % 8 == 0,
        (try? bench.memory.guestRange(address, count: RingABI.header + capacity)) != nil
      else { return false }
    }
    return rings.rx + RingABI.header + rings.rxCapacity <= rings.tx
      || rings.tx + RingABI.header + rings.txCapacity <= rings.rx
  }

  public static func seeds() -> [(name: String, bytes: [UInt8])] {
    var seeds: [(name: String, bytes: [UInt8])] = []
    for (name, attached) in [("attached", true), ("detached", false)] {
      guard let snapshot = WireTarget.snapshot(attached: attached) else { continue }
      var bytes: [UInt8] = []
      ChannelMessage.cloneState(snapshot).encode(into: &bytes)
      for program in RingProgram.seeds() where program.name.hasPrefix("traffic") {
        var writer = FuzzWriter()
        writer.u8(1)
        writer.blob(Array(bytes[8..<(bytes.count - 4)]))
        // The snapshot's rings: skip the program's attach.
        writer.raw(Array(program.bytes.dropFirst(program.attachSize)))
        seeds.append(("\(name)-\(program.name)", writer.bytes))
      }
    }
    return seeds
  }
}

/// Guest memory, a net device and a disk, reset for every input.
final class RingBench {
  static let memorySize: UInt64 = 4 << 20
  static let userBase: UInt64 = 0x1_0000
  static let diskSize: UInt64 = 1 << 20

  let memory: GuestMemory
  let rings: FuzzHooks.NetRings
  let disk: BlockDevice
  let diskPath: String
  /// Pages the harness wrote as the guest.
  var touched = Set<UInt64>()

  init(memory: GuestMemory, disk: BlockDevice, diskPath: String) {
    self.memory = memory
    self.disk = disk
    self.diskPath = diskPath
    rings = FuzzHooks.NetRings(memory: memory)
    memory.tracksHostWrites = true
  }

  static func make() -> RingBench? {
    let path = scratchPath("disk")
    unlink(path)
    do {
      let bench = RingBench(
        memory: try GuestMemory(size: memorySize, userBase: userBase),
        disk: try BlockDevice(path: path, createSize: diskSize), diskPath: path)
      atexit { RingsTarget.bench.map { unlink($0.diskPath) } }
      return bench
    } catch {
      print("rings: cannot set up guest memory and a disk: \(error)")
      return nil
    }
  }

  /// Zeroes every page written since the last reset and detaches the rings.
  func reset() {
    rings.reset()
    for page in touched.union(memory.takeHostWrittenPages()) {
      if let range = try? memory.systemRange(page * 4096, count: 4096) {
        range.initializeMemory(as: UInt8.self, repeating: 0)
      }
    }
    touched = []
  }

  /// The guest stores `bytes` at `address` (anywhere in its RAM).
  func guestWrite(_ bytes: [UInt8], at address: UInt64) {
    guard !bytes.isEmpty, let range = try? memory.systemRange(address, count: UInt64(bytes.count)) else { return }
    range.copyBytes(from: bytes)
    for page in (address / 4096)...((address + UInt64(bytes.count) - 1) / 4096) { touched.insert(page) }
  }

  func guestStore<T: FixedWidthInteger>(_ value: T, at address: UInt64) {
    withUnsafeBytes(of: value.littleEndian) { guestWrite(Array($0), at: address) }
  }

  func guestLoad<T: FixedWidthInteger>(_: T.Type, at address: UInt64) -> T? {
    guard let range = try? memory.systemRange(address, count: UInt64(MemoryLayout<T>.size)) else { return nil }
    return T(littleEndian: range.loadUnaligned(as: T.self))
  }

  func guestRead(_ address: UInt64, count: UInt64) -> [UInt8]? {
    (try? memory.systemRange(address, count: count)).map { Array($0) }
  }
}

/// What the guest ABI says about rings (lockstep_abi.h).
enum RingABI {
  static let header: UInt64 = 64
  static let messageHeader: UInt64 = 16
  static let maximumPayload = 1 << 20
  static let pad: UInt16 = 0
  static let open: UInt16 = 1
  static let data: UInt16 = 2
  static let closed: UInt16 = 3
  static let close: UInt16 = 4

  static func footprint(_ payload: Int) -> UInt64 { messageHeader + (UInt64(payload) + 7) & ~7 }

  /// Whether a ring is one the guest side of this harness can work with.
  static func usable(_ address: UInt64, _ capacity: UInt64, in bench: RingBench) -> Bool {
    capacity >= 4096 && capacity <= 1 << 26 && capacity.nonzeroBitCount == 1
      && (try? bench.memory.systemRange(address, count: header + capacity)) != nil
  }
}

/// An output sink that keeps what it was given and checks that each buffer
/// lies in guest memory.
final class RecordingSink: OutputSink {
  struct Output: Equatable {
    var connection: UInt32
    var bytes: [UInt8]?
  }

  let memory: GuestMemory
  var outputs: [Output] = []

  init(memory: GuestMemory) {
    self.memory = memory
  }

  func check(_ bytes: UnsafeRawBufferPointer) {
    guard let start = bytes.baseAddress else { return }
    let base = UnsafeRawPointer(memory.base)
    expect(start >= base && start + bytes.count <= base + Int(memory.size), "an output buffer outside guest memory")
  }

  func console(_ bytes: UnsafeRawBufferPointer, at point: ExitPoint) {
    check(bytes)
    outputs.append(Output(connection: .max, bytes: Array(bytes)))
  }

  func send(_ bytes: UnsafeRawBufferPointer, connection: UInt32, at point: ExitPoint) {
    check(bytes)
    outputs.append(Output(connection: connection, bytes: Array(bytes)))
  }

  func close(connection: UInt32, at point: ExitPoint) {
    outputs.append(Output(connection: connection, bytes: nil))
  }

  func flush(at point: ExitPoint) {}
}

/// A sequence of operations on a ``RingBench``, each an opcode byte and its
/// operands:
///
/// | op | what |
/// |---|---|
/// | 0 | LS_OP_NET_ATTACH (rx, rx capacity, tx, tx capacity) |
/// | 1 | the guest stores bytes anywhere (ring indices, messages, ...) |
/// | 2 | the guest queues a DATA or CLOSE message in the tx ring, as its SDK does |
/// | 3 | the VMM drains the tx ring |
/// | 4 | the VMM delivers events into the rx ring, planned as the live network does |
/// | 5 | the VMM delivers events from a logged wait outcome (unplanned: a replay) |
/// | 6 | the guest consumes the rx ring |
/// | 7 | ``RingCursor`` arithmetic on arbitrary valid indices |
/// | 8 | a block request: validation, then a write and a read back |
///
/// Checks: attach accepts only what the ABI allows; while the guest only
/// queued well-formed messages, a drain returns exactly them and empties
/// the ring; planned events always fit; every delivery leaves an rx ring a
/// guest parses back into exactly the delivered events; the largest
/// payload a cursor reports fits and is the largest; a valid block request
/// reads back what it wrote.
struct RingProgram {
  let bench: RingBench
  /// What the guest queued in the tx ring and the VMM has not drained.
  var queued: [RecordingSink.Output] = []
  /// Whether the tx ring holds only what the guest queued well-formed.
  var clean = true
  var step: UInt64 = 0

  /// `clean`: the tx ring is known to be empty (false after a restore).
  init(bench: RingBench, clean: Bool = true) {
    self.bench = bench
    self.clean = clean
  }

  var attachment: NetDevice.Attachment? { bench.rings.device.attachment }

  /// `LOCKSTEP_FUZZ_TRACE=1`: print each operation (to read a reproducer).
  static let tracing = getenv("LOCKSTEP_FUZZ_TRACE") != nil

  mutating func run(_ reader: inout FuzzReader) {
    while !reader.isEmpty && step < 64 {
      step += 1
      let op = reader.u8() % 9
      if RingProgram.tracing {
        trace("step \(step): op \(op) at input byte \(reader.offset - 1); attachment \(String(describing: attachment))")
      }
      switch op {
      case 0: attach(&reader)
      case 1: poke(&reader)
      case 2: send(&reader)
      case 3: drain()
      case 4: deliverPlanned(&reader)
      case 5: deliverLogged(&reader)
      case 6: consume()
      case 7: cursor(&reader)
      default: block(&reader)
      }
    }
  }

  func address(_ reader: inout FuzzReader) -> UInt64 {
    let choice = reader.u8()
    if choice & 0x80 != 0 { return reader.u64() }
    return RingBench.userBase + UInt64(reader.u16()) * 8
  }

  func capacity(_ reader: inout FuzzReader) -> UInt64 {
    let choice = reader.u8()
    if choice & 0x80 != 0 { return reader.u64() }
    return 4096 << UInt64(choice & 3)
  }

  mutating func attach(_ reader: inout FuzzReader) {
    let (rx, rxCapacity, tx, txCapacity) = (address(&reader), capacity(&reader), address(&reader), capacity(&reader))
    // The dispatcher refuses a second attach before the device sees it.
    guard attachment == nil else { return }
    guard let result = try? bench.rings.attach(rx: rx, rxCapacity: rxCapacity, tx: tx, txCapacity: txCapacity),
      result == 0
    else {
      expect(attachment == nil, "a refused attach attached")
      return
    }
    for (ring, capacity) in [(rx, rxCapacity), (tx, txCapacity)] {
      expect(
        capacity >= 4096 && capacity <= 64 << 20 && capacity.nonzeroBitCount == 1 && ring % 8 == 0,
        "attached a ring at \(ring) of \(capacity) bytes")
      expect(
        (try? bench.memory.guestRange(ring, count: RingABI.header + capacity)) != nil,
        "attached a ring at \(ring) outside guest memory")
    }
    expect(
      rx + RingABI.header + rxCapacity <= tx || tx + RingABI.header + txCapacity <= rx, "attached overlapping rings")
  }

  mutating func poke(_ reader: inout FuzzReader) {
    let choice = reader.u8()
    var target = address(&reader)
    if let attachment, choice & 1 != 0 {
      // Near a ring: its indices or its first messages.
      target = (choice & 2 != 0 ? attachment.tx : attachment.rx) &+ UInt64(reader.u8())
    }
    bench.guestWrite(reader.bytes(Int(reader.u8() % 32)), at: target)
    clean = false
  }

  /// The guest SDK's producer: a message never wraps; a PAD message (or, with
  /// under 16 bytes left, nothing) fills the end of the data area.
  mutating func send(_ reader: inout FuzzReader) {
    let choice = reader.u8()
    let connection = UInt32(reader.u8())
    let length = choice & 1 == 0 ? Int(reader.u16() % 6000) : 0
    guard let attachment, RingABI.usable(attachment.tx, attachment.txCapacity, in: bench),
      let head = bench.guestLoad(UInt64.self, at: attachment.tx),
      let tail = bench.guestLoad(UInt64.self, at: attachment.tx + 8), tail <= head,
      head - tail <= attachment.txCapacity, head % 8 == 0
    else { return }
    let capacity = attachment.txCapacity
    let size = RingABI.footprint(length)
    var offset = head & (capacity - 1)
    var contiguous = capacity - offset
    var newHead = head
    let data = attachment.tx + RingABI.header
    if size > contiguous {
      guard head - tail + contiguous + size <= capacity else { return }
      if contiguous >= RingABI.messageHeader {
        writeHeader(at: data + offset, connection: 0, type: RingABI.pad, length: UInt32(contiguous - 16))
      }
      newHead += contiguous
      offset = 0
      contiguous = capacity
    }
    guard newHead - tail + size <= capacity else { return }
    let payload = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(connection)) }
    writeHeader(
      at: data + offset, connection: connection, type: length == 0 && choice & 2 == 0 ? RingABI.close : RingABI.data,
      length: UInt32(length))
    bench.guestWrite(payload, at: data + offset + 16)
    bench.guestStore(newHead + size, at: attachment.tx)
    queued.append(
      RecordingSink.Output(connection: connection, bytes: length == 0 && choice & 2 == 0 ? nil : payload))
  }

  func writeHeader(at address: UInt64, connection: UInt32, type: UInt16, length: UInt32) {
    bench.guestStore(connection, at: address)
    bench.guestStore(type, at: address + 4)
    bench.guestStore(UInt16(0), at: address + 6)
    bench.guestStore(length, at: address + 8)
    bench.guestStore(UInt32(0), at: address + 12)
  }

  mutating func drain() {
    let sink = RecordingSink(memory: bench.memory)
    let sent = bench.rings.device.txMessages
    do {
      try bench.rings.drain(to: sink, at: ExitPoint(sequence: step, instructionPointer: 0))
      if clean {
        expect(sink.outputs == queued, "drained \(sink.outputs.count) messages, the guest queued \(queued.count)")
        if let attachment {
          expect(
            bench.guestLoad(UInt64.self, at: attachment.tx + 8) == bench.guestLoad(UInt64.self, at: attachment.tx),
            "a drain left messages in the tx ring")
        }
      }
      expect(bench.rings.device.txMessages - sent == UInt64(sink.outputs.count), "tx messages miscounted")
    } catch {
      expect(!clean, "a tx ring of well-formed messages refused: \(error)")
    }
    queued = []
  }

  /// Events for the rx ring: `[count u8]` then per event `[kind u8]
  /// [connection u8]` and for data a u16 length (payload generated).
  func events(_ reader: inout FuzzReader) -> [InboundEvent] {
    (0..<(1 + reader.u8() % 4)).map { _ in
      let kind = reader.u8() % 3
      let connection = UInt32(reader.u8())
      switch kind {
      case 0: return .opened(connection: connection, peer: "10.0.0.\(reader.u8()):\(reader.u16())")
      case 1:
        let length = Int(reader.u16()) % 40_000
        return .data(connection: connection, bytes: (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 7) })
      default: return .closed(connection: connection)
      }
    }
  }

  /// The live network's planning (NetworkService.takeEvents): whole events
  /// while they fit, then the part of a data event that does.
  mutating func deliverPlanned(_ reader: inout FuzzReader) {
    let offered = events(&reader)
    guard let attachment, var cursor = try? bench.rings.rxCursor(), !KnownBugs.ringIndexNearWrap(cursor.head)
    else { return }
    let start = cursor.head
    var taken: [InboundEvent] = []
    for event in offered {
      if cursor.reserve(payload: payloadCount(event)) != nil {
        taken.append(event)
        continue
      }
      if case .data(let connection, let bytes) = event {
        let part = cursor.largestPayload
        if part > 0, part < bytes.count, cursor.reserve(payload: part) != nil {
          taken.append(.data(connection: connection, bytes: Array(bytes[..<part])))
        }
      }
      break
    }
    do {
      try bench.rings.deliver(taken)
    } catch {
      // (A restored ring may lie outside guest memory: that is refused.)
      expect(!error.reason.contains("does not fit"), "planned events did not fit: \(error)")
      return
    }
    if !taken.isEmpty {
      expect(bench.guestLoad(UInt64.self, at: attachment.rx) == cursor.head, "the rx head is not where planned")
    }
    verify(taken, from: start)
  }

  /// A replay's delivery: whatever the log says, which may not fit.
  mutating func deliverLogged(_ reader: inout FuzzReader) {
    let logged: [InboundEvent]
    if reader.u8() & 1 == 0 {
      logged = events(&reader)
    } else {
      var bytes = ByteReader(reader.blob())
      guard let outcome = try? WaitOutcome.decode(from: &bytes) else { return }
      logged = outcome.events
    }
    guard let attachment, let start = bench.guestLoad(UInt64.self, at: attachment.rx) else {
      _ = try? bench.rings.deliver(logged)
      return
    }
    guard !KnownBugs.ringIndexNearWrap(start) else { return }
    guard (try? bench.rings.deliver(logged)) != nil else { return }
    verify(logged, from: start)
  }

  func payloadCount(_ event: InboundEvent) -> Int {
    switch event {
    case .opened(_, let peer): peer.utf8.count
    case .data(_, let bytes): bytes.count
    case .closed: 0
    }
  }

  /// Parses the rx ring from `start` as the guest does and checks that it
  /// holds exactly `events`.
  func verify(_ events: [InboundEvent], from start: UInt64) {
    guard !events.isEmpty, let attachment, RingABI.usable(attachment.rx, attachment.rxCapacity, in: bench),
      let head = bench.guestLoad(UInt64.self, at: attachment.rx)
    else { return }
    let capacity = attachment.rxCapacity
    let data = attachment.rx + RingABI.header
    var position = start
    var index = 0
    while position < head {
      let offset = position & (capacity - 1)
      let contiguous = capacity - offset
      if contiguous < RingABI.messageHeader {
        position += contiguous
        continue
      }
      guard let connection = bench.guestLoad(UInt32.self, at: data + offset),
        let type = bench.guestLoad(UInt16.self, at: data + offset + 4),
        let length = bench.guestLoad(UInt32.self, at: data + offset + 8)
      else { return expect(false, "an rx message header outside memory") }
      if type == RingABI.pad {
        expect(UInt64(length) + 16 == contiguous, "an rx PAD of \(length) bytes with \(contiguous) left")
        position += contiguous
        continue
      }
      expect(index < events.count, "the rx ring holds more messages than were delivered")
      let size = RingABI.footprint(Int(length))
      expect(size <= contiguous, "an rx message wraps")
      let payload = bench.guestRead(data + offset + 16, count: UInt64(length)) ?? []
      let event: InboundEvent
      switch type {
      case RingABI.open: event = .opened(connection: connection, peer: String(decoding: payload, as: UTF8.self))
      case RingABI.data: event = .data(connection: connection, bytes: payload)
      case RingABI.closed: event = .closed(connection: connection)
      default: return expect(false, "an rx message of type \(type)")
      }
      expect(event == events[index], "rx message \(index) is \(event), delivered \(events[index])")
      index += 1
      position += size
    }
    expect(position == head && index == events.count, "the rx ring holds \(index) of \(events.count) events")
  }

  func consume() {
    guard let attachment, let head = bench.guestLoad(UInt64.self, at: attachment.rx) else { return }
    bench.guestStore(head, at: attachment.rx + 8)
  }

  func cursor(_ reader: inout FuzzReader) {
    let capacity: UInt64 = 4096 << UInt64(reader.u8() & 7)
    let tail = reader.u64() & ~7
    let used = UInt64(reader.u32()) % (capacity + 1) & ~7
    let payload = Int(reader.u16())
    let (head, overflow) = tail.addingReportingOverflow(used)
    // Indices a reservation could carry past 2^64 are invalid by the ABI
    // (RING-1's fix): such a cursor is refused, not reserved in.
    guard !overflow, head <= UInt64.max - capacity else { return }
    let cursor = RingCursor(head: head, tail: tail, capacity: capacity)
    expect(cursor.isValid, "\(cursor) is not valid")
    let largest = cursor.largestPayload
    if largest > 0 {
      var fitted = cursor
      guard let place = fitted.reserve(payload: largest) else {
        return expect(false, "\(cursor): the largest payload \(largest) does not fit")
      }
      // Valid, unless it came within one capacity of 2^64 (then the next
      // exit refuses it, deterministically).
      expect(fitted.isValid || fitted.head > UInt64.max - capacity, "\(fitted) invalid after reserving \(largest)")
      expect(place.message + RingABI.footprint(largest) <= capacity, "a message wraps")
      expect(
        place.paddingLength == 0 || place.padding + place.paddingLength == capacity, "padding does not reach the end")
    }
    if largest + 8 <= RingABI.maximumPayload {
      var bigger = cursor
      expect(
        bigger.reserve(payload: largest + 8) == nil, "\(cursor): \(largest + 8) fits, above the largest \(largest)")
    }
    var any = cursor
    if any.reserve(payload: payload) != nil {
      expect(payload <= largest, "\(cursor): \(payload) fits, above the largest \(largest)")
      expect(any.isValid, "\(any) invalid after reserving \(payload)")
    }
  }

  mutating func block(_ reader: inout FuzzReader) {
    func amount(_ reader: inout FuzzReader) -> UInt64 {
      let choice = reader.u8()
      if choice & 0x80 != 0 { return reader.u64() }
      let value = UInt64(reader.u16())
      return choice & 0x40 != 0 ? value : value * 512
    }
    let offset = amount(&reader)
    let count = amount(&reader)
    let disk = bench.disk
    let valid = disk.isValid(offset: offset, count: count)
    let (end, overflow) = offset.addingReportingOverflow(count)
    expect(
      valid
        == (!overflow && offset % 512 == 0 && count % 512 == 0 && count <= 1 << 20 && end <= RingBench.diskSize),
      "block request at \(offset) of \(count) bytes judged \(valid ? "valid" : "invalid")")
    guard valid, count <= 64 << 10 else { return }
    let buffer = address(&reader)
    guard let target = try? bench.memory.guestRange(buffer, count: count) else { return }
    let pattern = (0..<Int(count)).map { UInt8(truncatingIfNeeded: $0 &+ Int(offset / 512)) }
    bench.guestWrite(pattern, at: buffer)
    clean = false
    expect(disk.write(UnsafeRawBufferPointer(target), offset: offset) == 0, "a valid block write failed")
    let read = disk.read(offset: offset, count: Int(count))
    expect(read.status == 0 && read.bytes == pattern, "a block read does not return what was written")
  }

  // MARK: Seeds

  /// Programs, and how many bytes their leading attach takes.
  static func seeds() -> [(name: String, bytes: [UInt8], attachSize: Int)] {
    var attach = FuzzWriter()
    attach.u8(0)
    // rx at userBase, 4 KiB; tx at userBase + 8 KiB, 8 KiB.
    attach.u8(0)
    attach.u16(0)
    attach.u8(0)
    attach.u8(0)
    attach.u16(1024)
    attach.u8(1)
    let attachSize = attach.bytes.count
    var seeds: [(name: String, bytes: [UInt8], attachSize: Int)] = []
    func program(_ name: String, _ build: (inout FuzzWriter) -> Void) {
      var writer = FuzzWriter()
      writer.raw(attach.bytes)
      build(&writer)
      seeds.append((name, writer.bytes, attachSize))
    }
    program("traffic") { writer in
      for round in 0..<6 {
        // send 1000 bytes on connection round, a close, drain.
        writer.u8(2)
        writer.u8(0)
        writer.u8(UInt8(round))
        writer.u16(1000)
        writer.u8(2)
        writer.u8(1)
        writer.u8(UInt8(round))
        writer.u8(3)
        // deliver open, 3000 bytes of data, close; consume.
        writer.u8(4)
        writer.u8(2)
        writer.u8(0)
        writer.u8(UInt8(round))
        writer.u8(10)
        writer.u16(40000)
        writer.u8(1)
        writer.u8(UInt8(round))
        writer.u16(3000)
        writer.u8(2)
        writer.u8(UInt8(round))
        writer.u8(6)
      }
    }
    program("traffic-logged") { writer in
      var outcome: [UInt8] = []
      WaitOutcome(
        events: [.opened(connection: 9, peer: "[::1]:5000"), .data(connection: 9, bytes: Array("PING\r\n".utf8))],
        now: 1, timedOut: false
      ).encode(into: &outcome)
      for _ in 0..<3 {
        writer.u8(5)
        writer.u8(1)
        writer.blob(outcome)
        writer.u8(6)
      }
    }
    program("poke-indices") { writer in
      writer.u8(1)
      writer.u8(3)
      writer.u8(0)
      writer.u16(0)
      writer.u8(0)
      writer.u8(16)
      writer.u64(64)
      writer.u64(0)
      writer.u8(3)
    }
    program("cursor-and-block") { writer in
      for shift: UInt8 in [0, 3, 7] {
        writer.u8(7)
        writer.u8(shift)
        writer.u64(4096 * 3 + 72)
        writer.u32(4000)
        writer.u16(100)
      }
      writer.u8(8)
      writer.u8(0)
      writer.u16(3)
      writer.u8(0)
      writer.u16(8)
      writer.u8(0)
      writer.u16(4096)
      writer.u8(8)
      writer.u8(0x80)
      writer.u64(UInt64.max - 511)
      writer.u8(0)
      writer.u16(1)
    }
    return seeds
  }
}
