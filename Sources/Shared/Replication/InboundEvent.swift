import CLockstepKVM

/// Something that happened on a client connection, delivered to the guest
/// as one rx-ring message.
public enum InboundEvent: Sendable, Equatable {
  /// A client connected from `peer` ("ip:port").
  case opened(connection: UInt32, peer: String)
  /// The client sent bytes.
  case data(connection: UInt32, bytes: [UInt8])
  /// The client went away (or the VMM dropped it); the id is dead.
  case closed(connection: UInt32)

  /// The connection the event belongs to.
  public var connection: UInt32 {
    switch self {
    case .opened(let connection, _), .data(let connection, _), .closed(let connection): connection
    }
  }

  /// The payload bytes the rx message carries.
  var payloadCount: Int {
    switch self {
    case .opened(_, let peer): peer.utf8.count
    case .data(_, let bytes): bytes.count
    case .closed: 0
    }
  }

  func encode(into buffer: inout [UInt8]) {
    switch self {
    case .opened(let connection, let peer):
      buffer.append(UInt8(LS_MSG_OPEN))
      buffer.append(littleEndian: connection)
      buffer.append(littleEndian: UInt32(peer.utf8.count))
      buffer.append(contentsOf: peer.utf8)
    case .data(let connection, let bytes):
      buffer.append(UInt8(LS_MSG_DATA))
      buffer.append(littleEndian: connection)
      buffer.append(littleEndian: UInt32(bytes.count))
      buffer.append(contentsOf: bytes)
    case .closed(let connection):
      buffer.append(UInt8(LS_MSG_CLOSED))
      buffer.append(littleEndian: connection)
      buffer.append(littleEndian: UInt32(0))
    }
  }

  static func decode(from reader: inout ByteReader) throws(LogDecodingError) -> InboundEvent {
    let type = try reader.read(UInt8.self, "event.type")
    let connection = try reader.read(UInt32.self, "event.connection")
    let length = try reader.read(UInt32.self, "event.length")
    let payload = try reader.read(count: Int(length), limit: Int(LS_MSG_MAX_PAYLOAD), "event.payload")
    switch Int(type) {
    case Int(LS_MSG_OPEN):
      return .opened(connection: connection, peer: String(decoding: payload, as: UTF8.self))
    case Int(LS_MSG_DATA):
      return .data(connection: connection, bytes: payload)
    case Int(LS_MSG_CLOSED):
      guard payload.isEmpty else { throw LogDecodingError("event.closed: carries \(payload.count) bytes") }
      return .closed(connection: connection)
    default:
      throw LogDecodingError("event.type: unknown type \(type)")
    }
  }
}
