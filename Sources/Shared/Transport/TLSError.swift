/// A failed TLS operation: a code to act on and a sentence that says what
/// failed with whom and why, e.g. "TLS handshake with 127.0.0.1:7000
/// failed: certificate verify failed (peer certificate not signed by the
/// cluster CA: unable to get local issuer certificate)".
public struct TLSError: Error, CustomStringConvertible, Sendable, Equatable {
  /// What kind of failure; new codes may be added.
  public struct Code: Hashable, Sendable, CustomStringConvertible {
    private let name: String
    private init(_ name: String) { self.name = name }

    /// The context could not be made (certificate, key or CA unusable).
    public static let configuration = Code("configuration")
    /// The TCP connection could not be made.
    public static let connect = Code("connect")
    /// The TCP connection was refused: the host answered that nothing
    /// listens on that port (the peer process is gone).
    public static let refused = Code("connection refused")
    /// The listener could not be made or has failed.
    public static let listen = Code("listen")
    /// The handshake failed: a certificate was refused, or the peer does
    /// not speak TLS 1.3.
    public static let handshake = Code("handshake")
    /// The peer's certificate is valid but its role is not allowed here.
    public static let peerNotAllowed = Code("peer not allowed")
    /// A deadline or socket timeout passed. After a read timeout the
    /// stream is still usable; after any other, it is closed.
    public static let timedOut = Code("timed out")
    /// The stream (or listener) is closed, or the peer closed it.
    public static let closed = Code("closed")
    /// Reading or writing failed; the stream is closed.
    public static let io = Code("I/O")

    public var description: String { name }
  }

  /// The kind of failure.
  public var code: Code
  /// What failed and why, in one sentence.
  public var message: String

  /// Creates an error.
  public init(_ code: Code, _ message: String) {
    self.code = code
    self.message = message
  }

  public var description: String { message }
}
