/// The control messages of the logging channel (docs/protocol.md), framed
/// like log records (types 16 and up) on the same TLS stream.
public enum ChannelMessage: Sendable, Equatable {
  /// Backup → primary, first: who I am, from where I need the log, the
  /// UDP port my heartbeats are received on (0: none) and the boot id they
  /// carry.
  case hello(header: LogHeader, resumeFrom: UInt64, heartbeatPort: UInt16, heartbeatBootID: UInt64)
  /// Primary → backup: accepted; the log follows from `startsAt`; the
  /// primary holds the VM at the arbiter's `generation` (0: no arbiter);
  /// its heartbeats carry `heartbeatBootID` (0: none).
  case welcome(header: LogHeader, startsAt: UInt64, generation: UInt64, heartbeatBootID: UInt64)
  /// Primary → backup: refused, and why; the connection closes.
  case refuse(reason: String)
  /// Backup → primary: I hold the log of every exit before `received`,
  /// and have replayed every exit before `replayed`.
  case ack(received: UInt64, replayed: UInt64)
  /// Primary → backup: the primary stopped before exit `exits` and the
  /// log up to there is complete; take over now (`lockstep failover`).
  case handover(exits: UInt64)
  /// Operator → primary, first: report your status.
  case statusRequest
  /// Primary → operator: the status.
  case status(NodeStatus)
  /// Operator → primary, first: do this (answered with a status or a
  /// refusal).
  case command(OperatorCommand)

  var type: UInt8 {
    switch self {
    case .hello: 16
    case .welcome: 17
    case .refuse: 18
    case .ack: 19
    case .handover: 20
    case .statusRequest: 21
    case .status: 22
    case .command: 23
    }
  }

  /// Appends the framed message.
  public func encode(into buffer: inout [UInt8]) {
    var body: [UInt8] = []
    switch self {
    case .hello(let header, let resumeFrom, let heartbeatPort, let bootID):
      LogFrame.encode(.header(header), into: &body)
      body.append(littleEndian: resumeFrom)
      body.append(littleEndian: heartbeatPort)
      body.append(littleEndian: bootID)
    case .welcome(let header, let startsAt, let generation, let bootID):
      LogFrame.encode(.header(header), into: &body)
      body.append(littleEndian: startsAt)
      body.append(littleEndian: generation)
      body.append(littleEndian: bootID)
    case .refuse(let reason):
      body.appendString(reason)
    case .ack(let received, let replayed):
      body.append(littleEndian: received)
      body.append(littleEndian: replayed)
    case .handover(let exits):
      body.append(littleEndian: exits)
    case .statusRequest:
      break
    case .status(let status):
      status.encode(into: &body)
    case .command(let command):
      body.append(command.rawValue)
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
      if type == 16 {
        let port = try tail.read(UInt16.self, "hello.heartbeatPort")
        let bootID = try tail.read(UInt64.self, "hello.heartbeatBootID")
        try tail.expectEnd("handshake at byte \(position)")
        return .hello(header: header, resumeFrom: position64, heartbeatPort: port, heartbeatBootID: bootID)
      }
      let generation = try tail.read(UInt64.self, "welcome.generation")
      let bootID = try tail.read(UInt64.self, "welcome.heartbeatBootID")
      try tail.expectEnd("handshake at byte \(position)")
      return .welcome(header: header, startsAt: position64, generation: generation, heartbeatBootID: bootID)
    case 18:
      message = .refuse(reason: try body.readString("refuse.reason"))
    case 19:
      message = .ack(
        received: try body.read(UInt64.self, "ack.received"), replayed: try body.read(UInt64.self, "ack.replayed"))
    case 20:
      message = .handover(exits: try body.read(UInt64.self, "handover.exits"))
    case 21:
      message = .statusRequest
    case 22:
      message = .status(try NodeStatus.decode(from: &body))
    case 23:
      let raw = try body.read(UInt8.self, "command")
      guard let command = OperatorCommand(rawValue: raw) else {
        throw LogDecodingError("message at byte \(position): unknown operator command \(raw)")
      }
      message = .command(command)
    default:
      throw LogDecodingError("message at byte \(position): unknown type \(type)")
    }
    try body.expectEnd("message at byte \(position)")
    return message
  }
}
