/// A node of the cluster as its certificate names it: a name (the
/// certificate's commonName and the name of its credentials directory)
/// and a role.
public struct NodeIdentity: Sendable, Hashable, CustomStringConvertible {
  /// The longest name accepted.
  public static let maximumNameLength = 64

  /// The node's name, e.g. `vmm1`.
  public let name: String
  /// The node's role.
  public let role: NodeRole

  /// Creates an identity; throws when `name` is not a valid node name
  /// (see ``validate(name:)``).
  public init(name: String, role: NodeRole) throws(CertificateError) {
    try Self.validate(name: name)
    self.name = name
    self.role = role
  }

  /// Checks that `name` is 1 to 64 characters from `A-Z a-z 0-9 . _ -`,
  /// is not `.` or `..`, and is not `ca` (the CA's own directory).
  public static func validate(name: String) throws(CertificateError) {
    let allowed = name.utf8.allSatisfy { byte in
      (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
        || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: ".")
        || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
    }
    guard allowed, (1...maximumNameLength).contains(name.utf8.count) else {
      throw CertificateError(
        .invalidName,
        "invalid node name '\(name)': use 1 to \(maximumNameLength) characters from A-Z a-z 0-9 . _ -")
    }
    guard name != ".", name != ".." else {
      throw CertificateError(.invalidName, "invalid node name '\(name)'")
    }
    guard name != ClusterCertificates.authorityDirectoryName else {
      throw CertificateError(
        .invalidName, "invalid node name '\(name)': it is reserved for the CA's own directory")
    }
  }

  public var description: String { "\(name) (\(role))" }
}
