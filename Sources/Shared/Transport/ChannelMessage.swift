/// The control messages of the logging channel (docs/protocol.md), framed
/// like log records (types 16 and up) on the same TLS stream.
public enum ChannelMessage: Sendable, Equatable {
  /// Backup → primary, first: who I am and from where I need the log.
  case hello(header: LogHeader, resumeFrom: UInt64)
  /// Primary → backup: accepted; the log follows from `startsAt`.
  case welcome(header: LogHeader, startsAt: UInt64)
  /// Primary → backup: refused, and why; the connection closes.
  case refuse(reason: String)
  /// Backup → primary: I hold the log of every exit before `received`,
  /// and have replayed every exit before `replayed`.
  case ack(received: UInt64, replayed: UInt64)

  var type: UInt8 {
    switch self {
    case .hello: 16
    case .welcome: 17
    case .refuse: 18
    case .ack: 19
    }
  }

  /// Appends the framed message.
  public func encode(into buffer: inout [UInt8]) {
    var body: [UInt8] = []
    switch self {
    case .hello(let header, let resumeFrom):
      LogFrame.encode(.header(header), into: &body)
      body.append(littleEndian: resumeFrom)
    case .welcome(let header, let startsAt):
      LogFrame.encode(.header(header), into: &body)
      body.append(littleEndian: startsAt)
    case .refuse(let reason):
      body.appendString(reason)
    case .ack(let received, let replayed):
      body.append(littleEndian: received)
      body.append(littleEndian: replayed)
    }
    LogFrame.frame(type: type, body: body, into: &buffer)
  }

  /// Decodes a control message body of `type`.
  static func decode(type: UInt8, body: ByteReader, at position: UInt64) throws(LogDecodingError) -> ChannelMessage {
    var body = body
    let message: ChannelMessage
    switch type {
    case 16, 17:
      let rest = Array(body.bytes[body.offset...])
      guard let (record, size) = try LogFrame.decode(rest[...], at: position), case .header(let header) = record
      else {
        throw LogDecodingError("message at byte \(position): no header inside the handshake")
      }
      var tail = ByteReader(Array(rest[size...]))
      let position64 = try tail.read(UInt64.self, "handshake.position")
      try tail.expectEnd("handshake at byte \(position)")
      return type == 16
        ? .hello(header: header, resumeFrom: position64) : .welcome(header: header, startsAt: position64)
    case 18:
      message = .refuse(reason: try body.readString("refuse.reason"))
    case 19:
      message = .ack(
        received: try body.read(UInt64.self, "ack.received"), replayed: try body.read(UInt64.self, "ack.replayed"))
    default:
      throw LogDecodingError("message at byte \(position): unknown type \(type)")
    }
    try body.expectEnd("message at byte \(position)")
    return message
  }
}
