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
  /// New backup → primary, first: clone the running machine into me (the
  /// same identity and heartbeat fields as `hello`).
  case join(header: LogHeader, heartbeatPort: UInt16, heartbeatBootID: UInt64)
  /// Primary → joining backup: guest RAM pages, each 4 KiB of data or
  /// known to be zero.
  case clonePages([ClonePage])
  /// Primary → joining backup: disk bytes at an offset.
  case cloneDisk(offset: UInt64, bytes: [UInt8])
  /// Primary → joining backup: the machine's state between two exits; the
  /// log follows from `snapshot.exits`.
  case cloneState(MachineSnapshot)
  /// Primary → joining backup: `count` zero bytes of disk at an offset.
  case cloneDiskZero(offset: UInt64, count: UInt32)

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
    case .join: 24
    case .clonePages: 25
    case .cloneDisk: 26
    case .cloneState: 27
    case .cloneDiskZero: 28
    }
  }

  /// The most pages one `clonePages` message carries (256 KiB of data).
  public static let maximumClonePages = 64
  /// The most disk bytes one `cloneDisk` message carries.
  public static let maximumCloneDiskBytes = 512 << 10

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
    case .join(let header, let port, let bootID):
      LogFrame.encode(.header(header), into: &body)
      body.append(littleEndian: port)
      body.append(littleEndian: bootID)
    case .clonePages(let pages):
      body.append(littleEndian: UInt32(pages.count))
      for page in pages {
        body.append(littleEndian: page.number)
        if let data = page.data {
          body.append(1)
          body.append(contentsOf: data)
        } else {
          body.append(0)
        }
      }
    case .cloneDisk(let offset, let bytes):
      body.append(littleEndian: offset)
      body.append(littleEndian: UInt32(bytes.count))
      body.append(contentsOf: bytes)
    case .cloneState(let snapshot):
      snapshot.encode(into: &body)
    case .cloneDiskZero(let offset, let count):
      body.append(littleEndian: offset)
      body.append(littleEndian: count)
    }
    LogFrame.frame(type: type, body: body, into: &buffer)
  }

  /// The log header frame a `hello`, `welcome` or `join` body starts
  /// with, and a reader of what follows it.
  static func embeddedHeader(_ body: ByteReader, at position: UInt64, in what: String) throws(LogDecodingError)
    -> (LogHeader, ByteReader)
  {
    let rest = Array(body.bytes[body.offset...])
    guard let (record, size) = try LogFrame.decode(rest[...], at: position), case .header(let header) = record else {
      throw LogDecodingError("message at byte \(position): no header inside the \(what)")
    }
    return (header, ByteReader(Array(rest[size...])))
  }

  /// Decodes a control message body of `type`.
  static func decode(type: UInt8, body: ByteReader, at position: UInt64) throws(LogDecodingError) -> ChannelMessage {
    var body = body
    let message: ChannelMessage
    switch type {
    case 16, 17:
      var (header, tail) = try embeddedHeader(body, at: position, in: "handshake")
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
    case 24:
      var (header, tail) = try embeddedHeader(body, at: position, in: "join")
      let port = try tail.read(UInt16.self, "join.heartbeatPort")
      let bootID = try tail.read(UInt64.self, "join.heartbeatBootID")
      try tail.expectEnd("join at byte \(position)")
      return .join(header: header, heartbeatPort: port, heartbeatBootID: bootID)
    case 25:
      let count = try body.read(UInt32.self, "clonePages.count")
      guard count <= maximumClonePages else {
        throw LogDecodingError("clonePages.count: \(count) is over \(maximumClonePages)")
      }
      var pages: [ClonePage] = []
      for _ in 0..<count {
        let number = try body.read(UInt64.self, "clonePages.page")
        switch try body.read(UInt8.self, "clonePages.kind") {
        case 0: pages.append(ClonePage(number: number, data: nil))
        case 1:
          pages.append(ClonePage(number: number, data: try body.read(count: 4096, limit: 4096, "clonePages.data")))
        case let kind: throw LogDecodingError("clonePages.kind: \(kind) is neither 0 nor 1")
        }
      }
      message = .clonePages(pages)
    case 26:
      let offset = try body.read(UInt64.self, "cloneDisk.offset")
      let count = try body.read(UInt32.self, "cloneDisk.count")
      message = .cloneDisk(
        offset: offset, bytes: try body.read(count: Int(count), limit: maximumCloneDiskBytes, "cloneDisk.bytes"))
    case 27:
      message = .cloneState(try MachineSnapshot.decode(from: &body))
    case 28:
      let offset = try body.read(UInt64.self, "cloneDiskZero.offset")
      let count = try body.read(UInt32.self, "cloneDiskZero.count")
      guard count <= maximumCloneDiskBytes else {
        throw LogDecodingError("cloneDiskZero.count: \(count) is over \(maximumCloneDiskBytes)")
      }
      message = .cloneDiskZero(offset: offset, count: count)
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
