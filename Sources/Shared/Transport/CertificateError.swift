/// Why certificates or credentials could not be made or loaded: a code to
/// act on and a sentence for people.
public struct CertificateError: Error, CustomStringConvertible, Sendable, Equatable {
  /// What kind of failure; new codes may be added.
  public struct Code: Hashable, Sendable, CustomStringConvertible {
    private let name: String
    private init(_ name: String) { self.name = name }

    /// A node name is not acceptable.
    public static let invalidName = Code("invalid name")
    /// The request itself is wrong (no nodes, a name twice, bad validity).
    public static let invalidRequest = Code("invalid request")
    /// Something already exists and `force` was not given.
    public static let alreadyExists = Code("already exists")
    /// A file or directory that should be there is not.
    public static let missing = Code("missing")
    /// A file exists but its content is not what it should be.
    public static let invalidContent = Code("invalid content")
    /// The certificate does not verify (wrong CA, wrong key, expired).
    public static let notValid = Code("not valid")
    /// Reading or writing a file failed.
    public static let io = Code("I/O error")
    /// OpenSSL failed to generate, sign or encode.
    public static let openSSL = Code("OpenSSL error")

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
