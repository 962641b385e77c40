/// Anything on the logging channel: a log record or a control message.
public enum WireMessage: Sendable, Equatable {
  case record(LogRecord)
  case control(ChannelMessage)

  /// Decodes the message at the start of `bytes`; nil when more bytes are
  /// needed. Malformed input is an error that says what and where.
  public static func decode(_ bytes: ArraySlice<UInt8>, at position: UInt64) throws(LogDecodingError)
    -> (message: WireMessage, size: Int)?
  {
    guard let (type, body, size) = try LogFrame.unframe(bytes, at: position) else { return nil }
    if type < 16 {
      return (.record(try LogFrame.record(type: type, body: body, at: position)), size)
    }
    return (.control(try ChannelMessage.decode(type: type, body: body, at: position)), size)
  }
}
