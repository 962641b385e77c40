/// Reads whole wire messages from a TLS stream, keeping partial ones.
struct ChannelReader {
  let stream: TLSStream
  private var inbox: [UInt8] = []
  private var consumed: UInt64 = 0
  private var buffer = [UInt8](repeating: 0, count: 256 << 10)

  init(stream: TLSStream) {
    self.stream = stream
  }

  /// Every whole message now available after one read (blocking up to the
  /// stream's timeout). Empty when the read timed out; nil when the peer
  /// closed the stream.
  mutating func readMessages() throws -> [(message: WireMessage, size: Int)]? {
    var got = 0
    do {
      got = try stream.read(into: &buffer)
    } catch {
      if error.code == .timedOut { return [] }
      throw error
    }
    if got == 0 { return nil }
    inbox.append(contentsOf: buffer[..<got])
    var messages: [(WireMessage, Int)] = []
    var offset = 0
    while let (message, size) = try WireMessage.decode(inbox[offset...], at: consumed + UInt64(offset)) {
      messages.append((message, size))
      offset += size
    }
    inbox.removeFirst(offset)
    consumed += UInt64(offset)
    return messages
  }

  /// The next control message, reading until one arrives or `attempts`
  /// reads passed. Throws when a log record comes first.
  mutating func readControl(attempts: Int = 10) throws -> ChannelMessage? {
    for _ in 0..<attempts {
      guard let messages = try readMessages() else { return nil }
      for (message, _) in messages {
        guard case .control(let control) = message else {
          throw LogDecodingError("expected a handshake message, got a log record")
        }
        return control
      }
    }
    return nil
  }
}
