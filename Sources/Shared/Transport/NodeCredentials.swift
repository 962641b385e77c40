import CLockstepSSL

/// What a node needs to take part in the cluster, loaded from its
/// credentials directory `DIR/NAME` (made by `lockstep certs init`; what
/// `--tls-dir` names):
///
/// - `ca.pem`: the cluster CA's certificate, the only issuer it trusts;
/// - `cert.pem`: its certificate (CN=NAME, OU=lockstep-ROLE);
/// - `key.pem`: its private key (mode 0600);
/// - `heartbeat.key`: VMMs only, the cluster's heartbeat HMAC key (32
///   bytes as 64 hex digits, mode 0600, the same on every VMM).
///
/// Loading checks everything a handshake would (the key belongs to the
/// certificate, the certificate was issued by the CA and is valid now),
/// so a misconfigured node fails at startup with a clear message rather
/// than at its first connection.
public struct NodeCredentials: Sendable, Equatable {
  /// The CA certificate's file name.
  public static let caFileName = "ca.pem"
  /// The node certificate's file name.
  public static let certificateFileName = "cert.pem"
  /// The node key's file name.
  public static let keyFileName = "key.pem"
  /// The heartbeat key's file name.
  public static let heartbeatKeyFileName = "heartbeat.key"
  /// The heartbeat key's length in bytes.
  public static let heartbeatKeyLength = 32

  /// The directory the credentials were loaded from.
  public let directory: String
  /// The node's name and role, as its certificate states them.
  public let identity: NodeIdentity
  /// When the node's certificate is valid.
  public let validity: CertificateValidity
  /// The cluster's heartbeat key (VMMs; nil for other roles).
  public let heartbeatKey: [UInt8]?

  /// The node's name (its certificate's commonName).
  public var name: String { identity.name }
  /// The node's role (its certificate's organizationalUnitName).
  public var role: NodeRole { identity.role }
  /// `DIR/NAME/ca.pem`.
  public var caCertificatePath: String { CredentialFiles.join(directory, Self.caFileName) }
  /// `DIR/NAME/cert.pem`.
  public var certificatePath: String { CredentialFiles.join(directory, Self.certificateFileName) }
  /// `DIR/NAME/key.pem`.
  public var keyPath: String { CredentialFiles.join(directory, Self.keyFileName) }

  /// Loads and checks the credentials in `directory`, as of the Unix time
  /// `now`.
  public init(loadingFrom directory: String, now: Int64 = CertificateValidity.now()) throws(CertificateError) {
    self.directory = directory
    guard CredentialFiles.isDirectory(directory) else {
      throw CertificateError(
        .missing, "\(directory) is not a credentials directory: it does not exist (make one with lockstep certs init)")
    }
    let ca = CredentialFiles.join(directory, Self.caFileName)
    let certificate = CredentialFiles.join(directory, Self.certificateFileName)
    let key = CredentialFiles.join(directory, Self.keyFileName)
    for path in [ca, certificate, key] where !CredentialFiles.exists(path) {
      throw CertificateError(.missing, "\(path) is missing (copy the whole directory made by lockstep certs init)")
    }

    var commonName = CTextBuffer(capacity: 256)
    var unit = CTextBuffer(capacity: 256)
    var error = CTextBuffer(capacity: 1024)
    var notBefore: Int64 = 0
    var notAfter: Int64 = 0
    guard
      lsssl_certificate_file_summary(
        certificate, &commonName.bytes, commonName.capacity, &unit.bytes, unit.capacity, &notBefore, &notAfter,
        &error.bytes, error.capacity) == 1
    else {
      throw CertificateError(.invalidContent, error.text)
    }
    guard let role = NodeRole(organizationalUnit: unit.text) else {
      throw CertificateError(
        .invalidContent,
        "\(certificate) names no Lockstep role (OU=lockstep-vmm, lockstep-arbiter or lockstep-operator): "
          + "it was not made by lockstep certs")
    }
    do {
      identity = try NodeIdentity(name: commonName.text, role: role)
    } catch {
      throw CertificateError(.invalidContent, "\(certificate): \(error.message)")
    }
    validity = CertificateValidity(notBefore: notBefore, notAfter: notAfter)
    if now > notAfter {
      throw CertificateError(
        .notValid,
        "the certificate \(certificate) of '\(commonName.text)' expired on \(CertificateValidity.utcText(notAfter)); "
          + "issue a new one with lockstep certs add --force")
    }
    if now < notBefore {
      throw CertificateError(
        .notValid,
        "the certificate \(certificate) is not valid until \(CertificateValidity.utcText(notBefore)) "
          + "(check this host's clock)")
    }
    guard lsssl_check_credentials(ca, certificate, key, now, &error.bytes, error.capacity) == 1 else {
      throw CertificateError(.notValid, error.text)
    }

    let heartbeatPath = CredentialFiles.join(directory, Self.heartbeatKeyFileName)
    if CredentialFiles.exists(heartbeatPath) {
      heartbeatKey = try Self.parseHeartbeatKey(CredentialFiles.readText(heartbeatPath), path: heartbeatPath)
    } else if role == .vmm {
      throw CertificateError(.missing, "\(heartbeatPath) is missing: a VMM needs the cluster's heartbeat key")
    } else {
      heartbeatKey = nil
    }
  }

  /// The text of a heartbeat key file: 64 lowercase hex digits and a
  /// newline.
  static func heartbeatKeyText(_ key: [UInt8]) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var text: [UInt8] = []
    for byte in key {
      text.append(digits[Int(byte >> 4)])
      text.append(digits[Int(byte & 0xF)])
    }
    return String(decoding: text, as: UTF8.self) + "\n"
  }

  /// Parses a heartbeat key file's text.
  static func parseHeartbeatKey(_ text: String, path: String) throws(CertificateError) -> [UInt8] {
    let digits = Array(text.utf8.filter { $0 != UInt8(ascii: "\n") && $0 != UInt8(ascii: " ") })
    func value(_ digit: UInt8) -> UInt8? {
      switch digit {
      case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
      case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
      case UInt8(ascii: "A")...UInt8(ascii: "F"): digit - UInt8(ascii: "A") + 10
      default: nil
      }
    }
    var key: [UInt8] = []
    var index = 0
    while index + 1 < digits.count, let high = value(digits[index]), let low = value(digits[index + 1]) {
      key.append(high << 4 | low)
      index += 2
    }
    guard index == digits.count, key.count == heartbeatKeyLength else {
      throw CertificateError(
        .invalidContent, "\(path) is not a heartbeat key (\(heartbeatKeyLength * 2) hex digits expected)")
    }
    return key
  }
}
