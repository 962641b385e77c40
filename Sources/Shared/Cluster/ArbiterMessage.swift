/// The arbiter's requests and answers (docs/arbiter.md), framed like log
/// records (LogFrame, types 32 and up) on a mutual TLS stream. A client
/// sends one request and reads one answer, as often as it likes on one
/// connection.
public enum ArbiterMessage: Sendable, Equatable {
  /// VMM → arbiter: if `vm`'s generation is `expectedGeneration`, make
  /// `node` its holder at generation `expectedGeneration + 1` with these
  /// addresses. `node` must be the caller's certificate name.
  case testAndSet(
    vm: String, expectedGeneration: UInt64, node: String, serviceAddress: String, replicationAddress: String)
  /// VMM or operator → arbiter: what is `vm`'s record?
  case query(vm: String)
  /// Arbiter → VMM: the test-and-set won; the record is durable.
  case granted(ArbiterRecord)
  /// Arbiter → caller: the current record (the answer to a query, or to a
  /// test-and-set that lost because the expected generation was stale).
  case current(ArbiterRecord)
  /// Arbiter → caller: the request was refused or failed, and why.
  case error(reason: String)

  /// The largest body an arbiter message may carry: far below
  /// ``LogFrame/maximumBody``, since no request needs more.
  public static let maximumBody = 4096

  /// The frame type of each message.
  public enum FrameType {
    /// ``ArbiterMessage/testAndSet(vm:expectedGeneration:node:serviceAddress:replicationAddress:)``.
    public static let testAndSet: UInt8 = 32
    /// ``ArbiterMessage/query(vm:)``.
    public static let query: UInt8 = 33
    /// ``ArbiterMessage/granted(_:)``.
    public static let granted: UInt8 = 34
    /// ``ArbiterMessage/current(_:)``.
    public static let current: UInt8 = 35
    /// ``ArbiterMessage/error(reason:)``.
    public static let error: UInt8 = 36
  }

  var type: UInt8 {
    switch self {
    case .testAndSet: FrameType.testAndSet
    case .query: FrameType.query
    case .granted: FrameType.granted
    case .current: FrameType.current
    case .error: FrameType.error
    }
  }

  /// Whether a client may send this message (the others are answers).
  public var isRequest: Bool {
    switch self {
    case .testAndSet, .query: true
    case .granted, .current, .error: false
    }
  }

  /// A short name for messages in logs.
  public var name: String {
    switch self {
    case .testAndSet: "test-and-set"
    case .query: "query"
    case .granted: "granted"
    case .current: "current"
    case .error: "error"
    }
  }

  /// Appends the framed message.
  public func encode(into buffer: inout [UInt8]) {
    var body: [UInt8] = []
    switch self {
    case .testAndSet(let vm, let expectedGeneration, let node, let serviceAddress, let replicationAddress):
      body.appendString(vm)
      body.append(littleEndian: expectedGeneration)
      body.appendString(node)
      body.appendString(serviceAddress)
      body.appendString(replicationAddress)
    case .query(let vm):
      body.appendString(vm)
    case .granted(let record), .current(let record):
      record.encode(into: &body)
    case .error(let reason):
      body.appendString(String(decoding: reason.utf8.prefix(ArbiterMessage.maximumBody - 2), as: UTF8.self))
    }
    LogFrame.frame(type: type, body: body, into: &buffer)
  }

  /// The framed message.
  public var encoded: [UInt8] {
    var buffer: [UInt8] = []
    encode(into: &buffer)
    return buffer
  }

  /// Decodes the message at the start of `bytes`: nil when more bytes are
  /// needed, else the message and the bytes it took. Refuses a frame
  /// longer than ``maximumBody`` as soon as its length is read.
  public static func decode(_ bytes: ArraySlice<UInt8>) throws(LogDecodingError) -> (
    message: ArbiterMessage, size: Int
  )? {
    if bytes.count >= 4 {
      let base = bytes.startIndex
      let length =
        Int(bytes[base]) | Int(bytes[base + 1]) << 8 | Int(bytes[base + 2]) << 16 | Int(bytes[base + 3]) << 24
      guard length <= maximumBody else {
        throw LogDecodingError("arbiter message: length \(length) exceeds the maximum \(maximumBody)")
      }
    }
    guard let (type, body, size) = try LogFrame.unframe(bytes) else { return nil }
    return (try decode(type: type, body: body), size)
  }

  /// Decodes a message body of `type`.
  static func decode(type: UInt8, body: ByteReader) throws(LogDecodingError) -> ArbiterMessage {
    var body = body
    let message: ArbiterMessage
    switch type {
    case FrameType.testAndSet:
      message = .testAndSet(
        vm: try body.readString("testAndSet.vm"),
        expectedGeneration: try body.read(UInt64.self, "testAndSet.expectedGeneration"),
        node: try body.readString("testAndSet.node"), serviceAddress: try body.readString("testAndSet.service"),
        replicationAddress: try body.readString("testAndSet.replication"))
    case FrameType.query:
      message = .query(vm: try body.readString("query.vm"))
    case FrameType.granted:
      message = .granted(try ArbiterRecord.decode(from: &body, "granted"))
    case FrameType.current:
      message = .current(try ArbiterRecord.decode(from: &body, "current"))
    case FrameType.error:
      message = .error(reason: try body.readString("error.reason"))
    default:
      throw LogDecodingError("arbiter message: unknown type \(type)")
    }
    try body.expectEnd("arbiter \(message.name) message")
    return message
  }
}
