import Lockstep

#if canImport(Glibc)
  import Glibc
#endif

/// The hypercall dispatcher of a real ``Machine`` (KVM VM, guest RAM with
/// the callcheck guest loaded, a disk): descriptors the guest rings the
/// doorbell with, wherever it puts them and whatever they say, with the
/// nondeterministic inputs replayed from the fuzz input as a backup's
/// replayer would (or, for clock, entropy and block reads, obtained live).
/// The vCPU never runs: the harness plays the guest, storing descriptors,
/// buffers and ring contents in guest RAM between calls.
///
/// Needs /dev/kvm and Guest/build/callcheck.elf (`make -C Guest`; or
/// `LOCKSTEP_FUZZ_GUEST=path`); without them the target reports that it is
/// skipped and only counts inputs.
///
/// Input: a u16-length-prefixed stream of logged values (``FuzzInputs``),
/// then steps. A step whose first byte has both top bits set stores bytes
/// in guest RAM (`[u16 offset into the window, u8 length, bytes]`); any
/// other step is a call: `[op selector][placement][4 arguments]`.
///
/// Checks: a call returns only for an aligned descriptor inside guest RAM,
/// and then its result is one of the ABI's; a misplaced descriptor is a
/// guest error, never a VMM crash; the VMM never writes the system area
/// below the guest's base on the guest's behalf; every output buffer lies
/// in guest RAM.
public enum HypercallTarget: FuzzTarget {
  public static let name = "hypercall"
  static let memorySize: UInt64 = 8 << 20
  /// Where the harness keeps descriptors and buffers: above the image.
  static let window: UInt64 = 4 << 20
  static let windowSize: UInt64 = 512 << 10

  nonisolated(unsafe) static var machine: Machine?
  nonisolated(unsafe) static var inputs = FuzzInputs()
  nonisolated(unsafe) static var sink = HypercallSink()
  /// Guest RAM as the machine was built.
  nonisolated(unsafe) static var pristine: [UInt8] = []
  nonisolated(unsafe) static var touched = Set<UInt64>()
  nonisolated(unsafe) static var diskPath = ""

  static let ops: [UInt32] = [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 8, 0xFFFF_FFFF]

  public static func setUp() -> Bool {
    let candidates = [
      getenv("LOCKSTEP_FUZZ_GUEST").map { String(cString: $0) }, "Guest/build/callcheck.elf",
      "../Guest/build/callcheck.elf",
    ].compactMap { $0 }
    guard let guest = candidates.first(where: { access($0, R_OK) == 0 }) else {
      print("hypercall: skipped: no guest image (build it with make -C Guest, or set LOCKSTEP_FUZZ_GUEST)")
      return false
    }
    guard access("/dev/kvm", R_OK | W_OK) == 0 else {
      print("hypercall: skipped: /dev/kvm is not available")
      return false
    }
    diskPath = scratchPath("hypercall-disk")
    unlink(diskPath)
    atexit { unlink(HypercallTarget.diskPath) }
    do {
      let configuration = MachineConfiguration(
        name: "fuzz", image: try PrimaryLauncher.readFile(guest), imagePath: guest, memorySize: memorySize,
        diskPath: diskPath, diskCreateSize: 1 << 20)
      let built = try Machine(
        configuration: configuration, inputs: inputs, outputs: sink, network: nil, control: try MachineControl())
      sink.memory = built.memory
      pristine = Array(try built.memory.systemRange(0, count: memorySize))
      built.memory.tracksHostWrites = true
      machine = built
      return true
    } catch {
      print("hypercall: skipped: cannot build a machine: \(error)")
      return false
    }
  }

  public static func run(_ data: [UInt8]) {
    guard let machine else { return }
    reset(machine)
    var reader = FuzzReader(data)
    inputs.values = FuzzReader(reader.blob())
    var steps = 0
    while !reader.isEmpty && steps < 32 {
      steps += 1
      let selector = reader.u8()
      if selector & 0xC0 == 0xC0 {
        let address = window + UInt64(reader.u16()) % windowSize
        guestWrite(machine, reader.bytes(Int(reader.u8() % 64)), at: address)
      } else {
        call(machine, op: ops[Int(selector) % ops.count], &reader)
      }
    }
  }

  /// Guest RAM back as built, the net device detached.
  static func reset(_ machine: Machine) {
    FuzzHooks.resetNetDevice(of: machine)
    for page in touched.union(machine.memory.takeHostWrittenPages()) {
      let start = Int(page * 4096)
      guard let range = try? machine.memory.systemRange(UInt64(start), count: 4096) else { continue }
      pristine[start..<(start + 4096)].withUnsafeBytes { range.copyMemory(from: $0) }
    }
    touched = []
  }

  static func guestWrite(_ machine: Machine, _ bytes: [UInt8], at address: UInt64) {
    guard !bytes.isEmpty, let range = try? machine.memory.systemRange(address, count: UInt64(bytes.count)) else {
      return
    }
    range.copyBytes(from: bytes)
    for page in (address / 4096)...((address + UInt64(bytes.count) - 1) / 4096) { touched.insert(page) }
  }

  static func argument(_ reader: inout FuzzReader) -> UInt64 {
    switch reader.u8() % 6 {
    case 0: window + UInt64(reader.u16()) * 8 % windowSize
    case 1: UInt64(reader.u16())
    case 2: reader.u64()
    case 3: UInt64(reader.u8()) * 512
    case 4: 4096 << UInt64(reader.u8() & 3)
    default: 0
    }
  }

  static func call(_ machine: Machine, op: UInt32, _ reader: inout FuzzReader) {
    let placement = reader.u8()
    let slot = window + UInt64(reader.u8()) * 64
    let descriptor: UInt64 =
      switch placement & 3 {
      case 0: slot
      case 1: reader.u64()
      case 2: slot + 4
      default: 0x1000
      }
    let arguments = (0..<4).map { _ in argument(&reader) }
    // RING-1 through LS_OP_WAIT's delivery.
    if op == 18, let rings = machine.net.attachment, let head = try? machine.memory.load(UInt64.self, at: rings.rx),
      KnownBugs.ringIndexNearWrap(head)
    {
      return
    }
    let sentinel: Int32 = 0x5EED
    var bytes: [UInt8] = []
    bytes.append(littleEndian: op)
    bytes.append(littleEndian: sentinel)
    for value in arguments { bytes.append(littleEndian: value) }
    bytes += [UInt8](repeating: 0, count: 24)
    guestWrite(machine, bytes, at: descriptor)

    let stop = FuzzHooks.hypercall(machine, descriptor: descriptor)
    let hostPages = machine.memory.takeHostWrittenPages()
    expect(
      hostPages.allSatisfy { $0 >= BootLayout.userBase / 4096 }, "the VMM wrote below the guest's base for op \(op)")
    touched.formUnion(hostPages)
    let inRAM = (try? machine.memory.guestRange(descriptor, count: 64)) != nil
    if descriptor % 8 != 0 || !inRAM {
      guard case .guestError = stop else {
        return expect(false, "a descriptor at 0x\(String(descriptor, radix: 16)) gave \(String(describing: stop))")
      }
      return
    }
    guard stop == nil else { return }
    guard let range = try? machine.memory.guestRange(descriptor, count: 8) else { return }
    let result = Int32(littleEndian: range.loadUnaligned(fromByteOffset: 4, as: Int32.self))
    // A block read's status is the logged one (the primary's), passed on.
    expect(op == 19 || (-4...0).contains(result), "op \(op) returned \(result)")
  }

  // MARK: Seeds

  /// A call step: the op's index in ``ops``, descriptor slot 0..255 in the
  /// window, arguments as `(tag, value)`.
  static func step(_ op: UInt32, slot: UInt8 = 0, _ arguments: [(UInt8, UInt64)] = []) -> [UInt8] {
    var writer = FuzzWriter()
    writer.u8(UInt8(ops.firstIndex(of: op) ?? 0))
    writer.u8(0)
    writer.u8(slot)
    for index in 0..<4 {
      let (tag, value) = index < arguments.count ? arguments[index] : (5, 0)
      writer.u8(tag)
      switch tag {
      case 0: writer.u16(UInt16(value / 8))
      case 1: writer.u16(UInt16(value))
      case 2: writer.u64(value)
      case 3: writer.u8(UInt8(value / 512))
      case 4: writer.u8(UInt8(value))
      default: break
      }
    }
    return writer.bytes
  }

  static func store(_ bytes: [UInt8], at offset: UInt16) -> [UInt8] {
    var writer = FuzzWriter()
    writer.u8(0xC0)
    writer.u16(offset)
    writer.u8(UInt8(bytes.count))
    writer.raw(bytes)
    return writer.bytes
  }

  public static func seeds() -> [(name: String, bytes: [UInt8])] {
    func seed(_ name: String, values: [UInt8] = [], _ steps: [[UInt8]]) -> (name: String, bytes: [UInt8]) {
      var writer = FuzzWriter()
      writer.blob(values)
      for step in steps { writer.raw(step) }
      return (name, writer.bytes)
    }
    func logged<Value: InputValue>(_ value: Value) -> [UInt8] {
      var payload: [UInt8] = []
      value.encode(into: &payload)
      var writer = FuzzWriter()
      writer.u8(0)
      writer.blob(payload)
      return writer.bytes
    }
    // Window offsets (bytes): descriptors at 0.., buffers at 0x8000, rings at 0x10000 / 0x12000.
    let buffer: UInt64 = 0x8000
    let wait = WaitOutcome(
      events: [.opened(connection: 1, peer: "10.1.1.1:999"), .data(connection: 1, bytes: Array("GET k\r\n".utf8))],
      now: 123, timedOut: false)
    return [
      seed(
        "nop-console", [step(0), store(Array("hello\n".utf8), at: UInt16(buffer)), step(1, [(0, buffer), (1, 6)])]),
      seed(
        "exit-abort",
        [step(2, [(1, 3)]), store(Array("boom".utf8), at: UInt16(buffer)), step(3, [(0, buffer), (1, 4)])]),
      seed(
        "clock-entropy", values: logged(ClockReading(monotonic: 5, wall: 6)) + logged(EntropyBytes([1, 2, 3, 4])),
        [step(16), step(17, slot: 1, [(0, buffer), (1, 4)])]),
      seed(
        "net", values: logged(wait),
        [
          step(4, [(0, 0x10000), (4, 0), (0, 0x12000), (4, 0)]), step(5, slot: 1), step(18, slot: 2, [(1, 0)]),
          step(4, slot: 3, [(0, 0x10000), (4, 0), (0, 0x12000), (4, 0)]),
        ]),
      seed(
        "block", values: logged(BlockReadResult(status: 0, bytes: [UInt8](repeating: 9, count: 512))),
        [
          step(6, [(3, 512), (0, buffer), (3, 512)]), step(7, slot: 1),
          step(19, slot: 2, [(3, 512), (0, buffer), (3, 512)]),
          step(19, slot: 3, [(3, 0), (0, buffer), (1, 100)]),
        ]),
      seed("unknown-op", [step(0xFFFF_FFFF), step(8)]),
    ]
  }
}

/// Inputs replayed from the fuzz input: per request a choice byte (top bit
/// set: obtain the value live, except a wait, which could block) and a
/// u16-length-prefixed encoding of the value, decoded as the replayer
/// decodes a logged one.
final class FuzzInputs: InputSource {
  var values = FuzzReader([])

  struct Exhausted: Error {}

  func input<Value: InputValue>(_ kind: InputKind, at point: ExitPoint, live: () throws -> Value) throws -> Value {
    if values.isEmpty { throw Exhausted() }
    if values.u8() & 0x80 != 0, kind != .wait { return try live() }
    var reader = ByteReader(values.blob())
    let value = try Value.decode(from: &reader)
    try reader.expectEnd("\(kind) value")
    return value
  }
}

/// The machine's outputs: checked to lie in guest RAM, then dropped.
final class HypercallSink: OutputSink {
  var memory: GuestMemory?

  func check(_ bytes: UnsafeRawBufferPointer) {
    guard let memory, let start = bytes.baseAddress else { return }
    let base = UnsafeRawPointer(memory.base)
    expect(start >= base && start + bytes.count <= base + Int(memory.size), "an output buffer outside guest memory")
    var sum: UInt8 = 0
    for byte in bytes { sum &+= byte }
    _ = sum
  }

  func console(_ bytes: UnsafeRawBufferPointer, at point: ExitPoint) { check(bytes) }
  func send(_ bytes: UnsafeRawBufferPointer, connection: UInt32, at point: ExitPoint) { check(bytes) }
  func close(connection: UInt32, at point: ExitPoint) {}
  func flush(at point: ExitPoint) {}
}
