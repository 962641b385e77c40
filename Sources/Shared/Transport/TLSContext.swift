import CLockstepSSL

/// An OpenSSL context for one side of Lockstep's mutual TLS: TLS 1.3 only,
/// presents the node's certificate, trusts only the cluster CA, and
/// requires and verifies the peer's certificate (a server refuses a client
/// that presents none). No session resumption: every connection proves
/// its certificate.
///
/// Sendable: the context is configured once in `init` and never changed;
/// OpenSSL allows connections to be made from one context on many threads
/// at once.
public final class TLSContext: @unchecked Sendable {
  /// Which end of connections a context makes.
  public enum Side: Sendable, Equatable {
    /// Connects (``TLSStream/connect(host:port:context:timeout:expecting:)``).
    case client
    /// Accepts (``TLSListener``).
    case server
  }

  /// Which end of connections this context makes.
  public let side: Side
  /// The name of this node (for messages).
  public let localName: String
  /// The `SSL_CTX`.
  let handle: UnsafeMutableRawPointer

  /// A context for `side` with `credentials`.
  public convenience init(credentials: NodeCredentials, side: Side) throws(TLSError) {
    try self.init(
      side: side, caCertificatePath: credentials.caCertificatePath, certificatePath: credentials.certificatePath,
      keyPath: credentials.keyPath, localName: credentials.name)
  }

  /// A context from PEM files; `certificatePath` and `keyPath` both empty
  /// make one that presents no certificate (tests of refusal).
  init(side: Side, caCertificatePath: String, certificatePath: String, keyPath: String, localName: String)
    throws(TLSError)
  {
    var error = CTextBuffer(capacity: 1024)
    guard
      let handle = lsssl_context_new(
        side == .server ? 1 : 0, caCertificatePath, certificatePath, keyPath, &error.bytes, error.capacity)
    else {
      throw TLSError(.configuration, "cannot set up TLS: \(error.text)")
    }
    self.side = side
    self.localName = localName
    self.handle = handle
  }

  deinit {
    lsssl_context_free(handle)
  }
}
