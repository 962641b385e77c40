import Lockstep

#if canImport(Glibc)
  import Glibc
#endif

/// A fuzz target: what one input does, and the seed inputs that start its
/// corpus (built with the real encoders, so each seed is a valid message).
public protocol FuzzTarget {
  /// The target's name (the executable is `fuzz-<name>`, its corpus
  /// `Fuzz/corpus/<name>`).
  static var name: String { get }
  /// Once per process, before the first input (may print why the target
  /// cannot run here and return false: the run then only counts inputs).
  static func setUp() -> Bool
  /// Runs one input. Returns normally for any input; a property that does
  /// not hold is a crash (``expect(_:_:file:line:)``).
  static func run(_ data: [UInt8])
  /// Named seed inputs.
  static func seeds() -> [(name: String, bytes: [UInt8])]
}

extension FuzzTarget {
  public static func setUp() -> Bool { true }
}

/// What the `fuzz-*` executables call from libFuzzer's entry points.
public enum FuzzMain {
  nonisolated(unsafe) static var ready = true

  /// `LLVMFuzzerInitialize`. With `LOCKSTEP_FUZZ_WRITE_SEEDS=DIR` in the
  /// environment it writes the target's seeds into DIR and exits.
  public static func initialize<Target: FuzzTarget>(_: Target.Type) -> CInt {
    if let directory = getenv("LOCKSTEP_FUZZ_WRITE_SEEDS").map({ String(cString: $0) }) {
      exit(writeSeeds(Target.seeds(), into: directory) ? 0 : 1)
    }
    ready = Target.setUp()
    return 0
  }

  /// `LLVMFuzzerTestOneInput`.
  public static func run<Target: FuzzTarget>(_: Target.Type, _ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard ready else { return 0 }
    Target.run(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
  }

  static func writeSeeds(_ seeds: [(name: String, bytes: [UInt8])], into directory: String) -> Bool {
    mkdir(directory, 0o755)
    for seed in seeds {
      let path = directory + "/" + seed.name
      guard writeFile(path, seed.bytes) else {
        print("cannot write \(path)")
        return false
      }
    }
    print("wrote \(seeds.count) seeds to \(directory)")
    return true
  }
}

/// Crashes the fuzzers found in the library (Fuzz/crashes/README.md). Until
/// they are fixed the harnesses steer around them by default, so the rest
/// of each target keeps being fuzzed; `LOCKSTEP_FUZZ_KNOWN_BUGS=hit` turns
/// the guards off (`scripts/fuzz.sh repro` replays the reproducers so).
enum KnownBugs {
  static let avoid: Bool = getenv("LOCKSTEP_FUZZ_KNOWN_BUGS").map { String(cString: $0) != "hit" } ?? true

  /// RING-1: ``RingCursor/reserve(payload:)`` overflows (a trap) on
  /// guest-written ring indices near 2^64.
  static func ringIndexNearWrap(_ head: UInt64) -> Bool {
    avoid && head > UInt64.max - (1 << 30)
  }
}

/// Crashes (so libFuzzer saves the input) when a property of the code under
/// test does not hold.
@inline(__always)
func expect(
  _ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String, file: StaticString = #fileID,
  line: UInt = #line
) {
  if !condition() {
    fatalError("fuzz property violated: \(message())", file: file, line: line)
  }
}

/// Writes a line to stderr, unbuffered (it must survive the crash that follows).
func trace(_ line: String) {
  let bytes = Array((line + "\n").utf8)
  _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

/// Writes `bytes` to `path` (created or truncated).
func writeFile(_ path: String, _ bytes: [UInt8]) -> Bool {
  let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
  guard fd >= 0 else { return false }
  defer { close(fd) }
  var done = 0
  while done < bytes.count {
    let wrote = bytes.withUnsafeBytes { write(fd, $0.baseAddress.map { $0 + done }, bytes.count - done) }
    guard wrote > 0 else { return false }
    done += wrote
  }
  return true
}

/// A scratch path for this process's files: in /dev/shm when it exists.
func scratchPath(_ name: String) -> String {
  let directory = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp"
  return "\(directory)/lockstep-fuzz-\(getpid())-\(name)"
}

/// Reads a fuzz input front to back; past the end it yields zeros and
/// empty byte strings, so every input means something.
struct FuzzReader {
  let bytes: [UInt8]
  private(set) var offset = 0

  init(_ bytes: [UInt8]) {
    self.bytes = bytes
  }

  var isEmpty: Bool { offset >= bytes.count }
  var remaining: Int { max(0, bytes.count - offset) }

  mutating func u8() -> UInt8 {
    guard offset < bytes.count else { return 0 }
    defer { offset += 1 }
    return bytes[offset]
  }

  mutating func u16() -> UInt16 { UInt16(u8()) | UInt16(u8()) << 8 }
  mutating func u32() -> UInt32 { UInt32(u16()) | UInt32(u16()) << 16 }
  mutating func u64() -> UInt64 { UInt64(u32()) | UInt64(u32()) << 32 }

  mutating func bytes(_ count: Int) -> [UInt8] {
    let taken = min(max(0, count), remaining)
    defer { offset += taken }
    return Array(bytes[offset..<(offset + taken)])
  }

  mutating func rest() -> [UInt8] { bytes(remaining) }

  /// A u16-length-prefixed byte string.
  mutating func blob() -> [UInt8] { bytes(Int(u16())) }
}

/// Builds inputs in ``FuzzReader``'s format (for seeds).
struct FuzzWriter {
  var bytes: [UInt8] = []

  mutating func u8(_ value: UInt8) { bytes.append(value) }
  mutating func u16(_ value: UInt16) { bytes.append(littleEndian: value) }
  mutating func u32(_ value: UInt32) { bytes.append(littleEndian: value) }
  mutating func u64(_ value: UInt64) { bytes.append(littleEndian: value) }
  mutating func raw(_ value: [UInt8]) { bytes.append(contentsOf: value) }

  mutating func blob(_ value: [UInt8]) {
    u16(UInt16(value.count))
    raw(value)
  }
}

/// The byte streams the frame-based targets read. An input is a mode byte
/// and then either
///
/// - (mode bit 0 clear) raw bytes: the stream as it comes off the wire or
///   the disk, so the fuzzer works on lengths and checksums too; or
/// - (mode bit 0 set) chunks `[type u8][length u16][body]`, each framed
///   here with ``LogFrame/frame(type:body:into:)``, so the checksum is
///   always right and the fuzzer works on the bodies.
///
/// The other mode bits are the target's to use.
enum FrameStream {
  /// The most chunks one input makes.
  static let chunkLimit = 64

  static func read(_ data: [UInt8]) -> (mode: UInt8, bytes: [UInt8]) {
    var reader = FuzzReader(data)
    let mode = reader.u8()
    guard mode & 1 == 1 else { return (mode, reader.rest()) }
    var stream: [UInt8] = []
    var chunks = 0
    while !reader.isEmpty && chunks < chunkLimit {
      let type = reader.u8()
      let body = reader.blob()
      LogFrame.frame(type: type, body: body, into: &stream)
      chunks += 1
    }
    return (mode, stream)
  }

  /// Seed inputs for a valid frame stream: its raw form and its chunk form.
  static func seeds(_ name: String, _ stream: [UInt8]) -> [(name: String, bytes: [UInt8])] {
    [(name + "-raw", [0] + stream), (name + "-chunks", [1] + chunks(of: stream))]
  }

  /// The chunk form of a stream of valid frames.
  static func chunks(of stream: [UInt8]) -> [UInt8] {
    var writer = FuzzWriter()
    var offset = 0
    while offset + LogFrame.overhead <= stream.count {
      let length =
        Int(stream[offset]) | Int(stream[offset + 1]) << 8 | Int(stream[offset + 2]) << 16 | Int(stream[offset + 3])
        << 24
      guard offset + length + LogFrame.overhead <= stream.count else { break }
      let type = stream[offset + 5]
      writer.u8(type)
      writer.blob(Array(stream[(offset + 8)..<(offset + 8 + length)]))
      offset += length + LogFrame.overhead
    }
    return writer.bytes
  }
}

/// A small deterministic generator (splitmix64) for choices derived from
/// an input, e.g. the sizes of simulated reads.
struct SplitMix {
  var state: UInt64

  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}
