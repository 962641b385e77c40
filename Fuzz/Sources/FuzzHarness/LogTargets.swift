import Lockstep

#if canImport(Glibc)
  import Glibc
#endif

/// The log decoder: ``LogFrame`` and ``LogRecord`` decoding of a log
/// stream (what a backup receives and `lockstep replay` reads), the input
/// values inside the input records, and the ``Replayer`` consuming them.
///
/// Input: a ``FrameStream``. Mode bits 1-3 choose where a frame is cut
/// short; bit 4 makes the replay ask for one input at the wrong exit
/// (bits 5-7: which one).
public enum LogTarget: FuzzTarget {
  public static let name = "log"

  public static func run(_ data: [UInt8]) {
    let (mode, bytes) = FrameStream.read(data)
    let decoded = LogStream.decode(bytes)
    LogStream.check(decoded, bytes: bytes, cut: Int(mode >> 1) & 7)
    let wrong = mode & 0x10 != 0 ? Int(mode >> 5) : nil
    LogStream.replay(BufferLogSource(bytes), decoded, wrongExit: wrong)
  }

  public static func seeds() -> [(name: String, bytes: [UInt8])] { LogStream.seeds() }
}

/// ``LogFileReader`` on a file holding the stream: the same records and
/// the same error as the in-memory decoder. (Slower than the others: the
/// reader allocates a 1 MiB buffer per read, which ASan maps afresh.)
///
/// Input: as ``LogTarget``.
public enum LogFileTarget: FuzzTarget {
  public static let name = "logfile"
  nonisolated(unsafe) static var path = ""

  public static func setUp() -> Bool {
    path = scratchPath("log")
    atexit { unlink(LogFileTarget.path) }
    return true
  }

  public static func run(_ data: [UInt8]) {
    let (_, bytes) = FrameStream.read(data)
    guard writeFile(path, bytes) else { fatalError("cannot write \(path)") }
    let expected = LogStream.decode(bytes)
    var records: [LogRecord] = []
    var failure: LogDecodingError?
    do {
      let reader = try LogFileReader(path: path)
      while let record = try reader.next() { records.append(record) }
    } catch let error as LogDecodingError {
      failure = error
    } catch {
      fatalError("LogFileReader threw something other than a LogDecodingError: \(error)")
    }
    expect(records == expected.records.map(\.record), "LogFileReader and LogFrame.decode disagree on the records")
    expect(
      failure == expected.failure,
      "LogFileReader failed with \(String(describing: failure)), LogFrame.decode with \(String(describing: expected.failure))"
    )
  }

  public static func seeds() -> [(name: String, bytes: [UInt8])] { LogStream.seeds() }
}

/// A ``LogSource`` over bytes in memory: ``LogFileReader``'s loop.
final class BufferLogSource: LogSource {
  let bytes: [UInt8]
  var start = 0

  init(_ bytes: [UInt8]) {
    self.bytes = bytes
  }

  func next() throws -> LogRecord? {
    guard let (record, size) = try LogFrame.decode(bytes[start...], at: UInt64(start)) else { return nil }
    start += size
    return record
  }
}

enum LogStream {
  struct Decoded {
    var records: [(record: LogRecord, size: Int)] = []
    var failure: LogDecodingError?
  }

  /// Every record at the start of `bytes`, until more bytes would be needed
  /// or a frame is malformed.
  static func decode(_ bytes: [UInt8]) -> Decoded {
    var decoded = Decoded()
    var start = 0
    do {
      while let (record, size) = try LogFrame.decode(bytes[start...], at: UInt64(start)) {
        expect(
          size >= LogFrame.overhead && size <= bytes.count - start, "frame size \(size) at \(start) of \(bytes.count)")
        decoded.records.append((record, size))
        start += size
      }
    } catch {
      expect(!error.reason.isEmpty, "an empty decoding error")
      decoded.failure = error
    }
    return decoded
  }

  static func check(_ decoded: Decoded, bytes: [UInt8], cut: Int) {
    for (record, _) in decoded.records {
      checkRoundTrip(record)
      if case .input(_, let kind, let payload) = record { _ = value(kind, payload) }
    }
    // A frame cut short means "more bytes needed", never an error.
    if let first = decoded.records.first {
      let length = first.size * cut / 8
      do {
        let partial = try LogFrame.decode(bytes[..<length])
        expect(partial == nil, "\(length) bytes of a \(first.size)-byte frame decoded")
      } catch {
        expect(false, "\(length) bytes of a valid \(first.size)-byte frame are an error: \(error)")
      }
    }
  }

  /// Encoding a decoded record and decoding it again gives it back.
  static func checkRoundTrip(_ record: LogRecord) {
    var bytes: [UInt8] = []
    LogFrame.encode(record, into: &bytes)
    // Strings longer than 64 KiB are truncated by design.
    guard bytes.count < 65536 else { return }
    do {
      let again = try LogFrame.decode(bytes[...])
      expect(again?.record == record, "\(record) re-encoded decodes as \(String(describing: again?.record))")
      expect(again?.size == bytes.count, "re-encoded size \(bytes.count), decoded \(String(describing: again?.size))")
    } catch {
      expect(false, "\(record) re-encoded does not decode: \(error)")
    }
  }

  /// The input value of an input record, decoded as the replayer does.
  static func value(_ kind: InputKind, _ payload: [UInt8]) -> (any InputValue)? {
    switch kind {
    case .clock: decodeValue(ClockReading.self, payload)
    case .entropy: decodeValue(EntropyBytes.self, payload)
    case .wait: decodeValue(WaitOutcome.self, payload)
    case .blockRead: decodeValue(BlockReadResult.self, payload)
    }
  }

  static func decodeValue<Value: InputValue>(_: Value.Type, _ payload: [UInt8]) -> Value? {
    var reader = ByteReader(payload)
    do {
      let value = try Value.decode(from: &reader)
      try reader.expectEnd("value")
      var bytes: [UInt8] = []
      value.encode(into: &bytes)
      if bytes.count < 65536 {
        var again = ByteReader(bytes)
        let second = try? Value.decode(from: &again)
        expect(second == value && again.remaining == 0, "\(value) does not survive re-encoding")
      }
      return value
    } catch {
      return nil
    }
  }

  /// Replays the records of `source` (which holds `decoded`'s stream), asking
  /// for each input at its own exit, except input `wrongExit`.
  static func replay(_ source: any LogSource, _ decoded: Decoded, wrongExit: Int?) {
    let replayer: Replayer
    do {
      replayer = try Replayer(reader: source)
    } catch {
      if case .header = decoded.records.first?.record {
        expect(false, "a log starting with a header record refused: \(error)")
      }
      return
    }
    var index = 0
    for (record, _) in decoded.records.dropFirst() {
      guard case .input(var point, let kind, let payload) = record else { continue }
      if index == wrongExit { point.sequence &+= 1 }
      let expected = value(kind, payload)
      do {
        let got: any InputValue
        switch kind {
        case .clock: got = try ask(ClockReading.self, kind, point, replayer)
        case .entropy: got = try ask(EntropyBytes.self, kind, point, replayer)
        case .wait: got = try ask(WaitOutcome.self, kind, point, replayer)
        case .blockRead: got = try ask(BlockReadResult.self, kind, point, replayer)
        }
        expect(index != wrongExit, "the replayer returned an input at the wrong exit")
        expect(
          expected.map { same(got, $0) } == true,
          "the replayer returned \(got), the payload is \(String(describing: expected))")
      } catch {
        break
      }
      index += 1
    }
    _ = try? replayer.remainingInput()
    expect(replayer.replayed <= UInt64(decoded.records.count), "replayed more inputs than the log holds")
  }

  static func ask<Value: InputValue>(_: Value.Type, _ kind: InputKind, _ point: ExitPoint, _ replayer: Replayer)
    throws -> Value
  {
    try replayer.input(kind, at: point) { () throws -> Value in fatalError("the replayer obtained an input live") }
  }

  static func same<Value: InputValue>(_ value: Value, _ other: any InputValue) -> Bool {
    (other as? Value) == value
  }

  // MARK: Seeds

  static let header = LogHeader(
    vm: "kv", imageDigest: 0x1234_5678_9ABC_DEF0, memorySize: 64 << 20, cpuidFingerprint: 0xC0FF_EE00,
    arguments: "port=6379", diskSize: 1 << 20)

  static func input<Value: InputValue>(_ sequence: UInt64, _ kind: InputKind, _ value: Value, registers: UInt64? = nil)
    -> LogRecord
  {
    var payload: [UInt8] = []
    value.encode(into: &payload)
    return .input(
      point: ExitPoint(sequence: sequence, instructionPointer: 0x10_0000 + sequence * 16, registerHash: registers),
      kind: kind, payload: payload)
  }

  static func encode(_ records: [LogRecord]) -> [UInt8] {
    var bytes: [UInt8] = []
    for record in records { LogFrame.encode(record, into: &bytes) }
    return bytes
  }

  static func seeds() -> [(name: String, bytes: [UInt8])] {
    let wait = WaitOutcome(
      events: [
        .opened(connection: 1, peer: "10.0.0.7:40000"), .data(connection: 1, bytes: Array("SET k v\r\n".utf8)),
        .closed(connection: 1),
      ], now: 5_000_000, timedOut: false)
    let session: [LogRecord] = [
      .header(header),
      input(0, .clock, ClockReading(monotonic: 1_000, wall: 1_790_000_000_000_000_000)),
      input(1, .entropy, EntropyBytes([1, 2, 3, 4, 5, 6, 7, 8])),
      .progress(exits: 2),
      input(3, .wait, wait),
      input(4, .blockRead, BlockReadResult(status: 0, bytes: [UInt8](repeating: 0xAB, count: 512))),
      input(5, .blockRead, BlockReadResult(status: -4, bytes: [])),
      input(6, .wait, WaitOutcome(events: [], now: 9_000_000, timedOut: true)),
      .end(exits: 7, traceDigest: 0xAAAA, memoryDigest: 0xBBBB, reason: "guest exited with code 0"),
    ]
    var verifying = header
    verifying.verifiesRegisters = true
    let verified: [LogRecord] = [
      .header(verifying),
      input(0, .clock, ClockReading(monotonic: 7, wall: 8), registers: 0xFEED),
      input(1, .entropy, EntropyBytes([9]), registers: 0xBEEF),
    ]
    var seeds = FrameStream.seeds("session", encode(session))
    seeds += FrameStream.seeds("verify-registers", encode(verified))
    seeds += FrameStream.seeds("header-only", encode([.header(header)]))
    seeds += FrameStream.seeds("cut-short", Array(encode(session).dropLast(5)))
    seeds += FrameStream.seeds("progress", encode([.header(header), .progress(exits: 1), .progress(exits: 99)]))
    return seeds
  }
}
