import CLockstepSSL

/// The cluster's certificate authority: an EC P-256 key and a self-signed
/// CA certificate. Every node certificate it issues names the node
/// (CN=NAME, subjectAltName DNS:NAME, DNS:localhost, IP:127.0.0.1) and its
/// role (OU=lockstep-ROLE), and is good for both ends of a connection
/// (extendedKeyUsage serverAuth, clientAuth).
///
/// On disk it is `DIR/ca/ca.pem` and `DIR/ca/ca-key.pem` (mode 0600); the
/// key never leaves that directory.
public struct CertificateAuthority: Sendable {
  /// The CA certificate's commonName by default.
  public static let defaultCommonName = "Lockstep cluster CA"
  /// The organizationName written into every certificate.
  public static let organization = "Lockstep"
  /// The CA certificate's file name.
  public static let certificateFileName = "ca.pem"
  /// The CA key's file name.
  public static let keyFileName = "ca-key.pem"

  /// The CA certificate (PEM).
  public let certificatePEM: String
  /// The CA's private key (PEM). Secret.
  let keyPEM: String

  /// PEM blocks are written into buffers this large.
  static let pemCapacity = 16 << 10

  init(certificatePEM: String, keyPEM: String) {
    self.certificatePEM = certificatePEM
    self.keyPEM = keyPEM
  }

  /// Makes a new CA: a fresh key and a self-signed certificate (CA:TRUE,
  /// pathlen 0) valid for `validity`.
  public static func create(
    commonName: String = defaultCommonName, validity: CertificateValidity
  ) throws(CertificateError) -> CertificateAuthority {
    try checkValidity(validity)
    let key = try generateKey()
    let certificate = try sign(
      subjectKey: key, commonName: commonName, unit: "", altNames: "", authority: true, validity: validity,
      issuerCertificate: "", issuerKey: "")
    return CertificateAuthority(certificatePEM: certificate, keyPEM: key)
  }

  /// Loads the CA kept in `directory` (normally `DIR/ca`).
  public init(loadingFrom directory: String) throws(CertificateError) {
    let certificate = try CredentialFiles.readText(CredentialFiles.join(directory, Self.certificateFileName))
    let key = try CredentialFiles.readText(CredentialFiles.join(directory, Self.keyFileName))
    guard certificate.contains("-----BEGIN CERTIFICATE-----") else {
      throw CertificateError(.invalidContent, "\(directory)/\(Self.certificateFileName) holds no PEM certificate")
    }
    guard key.contains("PRIVATE KEY-----") else {
      throw CertificateError(.invalidContent, "\(directory)/\(Self.keyFileName) holds no PEM private key")
    }
    self.init(certificatePEM: certificate, keyPEM: key)
  }

  /// Writes the CA into `directory` (created with mode 0700 if missing):
  /// `ca.pem` (0644) and `ca-key.pem` (0600).
  public func save(to directory: String) throws(CertificateError) {
    try CredentialFiles.makeDirectories(directory, mode: 0o700)
    try CredentialFiles.write(text: keyPEM, to: CredentialFiles.join(directory, Self.keyFileName), mode: 0o600)
    try CredentialFiles.write(
      text: certificatePEM, to: CredentialFiles.join(directory, Self.certificateFileName), mode: 0o644)
  }

  /// Issues a certificate, with a fresh EC P-256 key, for `identity`.
  public func issue(for identity: NodeIdentity, validity: CertificateValidity) throws(CertificateError)
    -> NodeCertificate
  {
    try Self.checkValidity(validity)
    let key = try Self.generateKey()
    let certificate = try Self.sign(
      subjectKey: key, commonName: identity.name, unit: identity.role.organizationalUnit,
      altNames: "DNS:\(identity.name),DNS:localhost,IP:127.0.0.1", authority: false, validity: validity,
      issuerCertificate: certificatePEM, issuerKey: keyPEM)
    return NodeCertificate(identity: identity, certificatePEM: certificate, keyPEM: key, validity: validity)
  }

  private static func checkValidity(_ validity: CertificateValidity) throws(CertificateError) {
    guard validity.notBefore <= validity.notAfter else {
      throw CertificateError(.invalidRequest, "a certificate cannot expire before it becomes valid")
    }
  }

  private static func generateKey() throws(CertificateError) -> String {
    var pem = CTextBuffer(capacity: pemCapacity)
    var error = CTextBuffer(capacity: 512)
    guard lsssl_generate_key(&pem.bytes, pem.capacity, &error.bytes, error.capacity) >= 0 else {
      throw CertificateError(.openSSL, error.text)
    }
    return pem.text
  }

  private static func sign(
    subjectKey: String, commonName: String, unit: String, altNames: String, authority: Bool,
    validity: CertificateValidity, issuerCertificate: String, issuerKey: String
  ) throws(CertificateError) -> String {
    var pem = CTextBuffer(capacity: pemCapacity)
    var error = CTextBuffer(capacity: 512)
    let length = lsssl_issue_certificate(
      subjectKey, commonName, organization, unit, altNames, authority ? 1 : 0, validity.notBefore,
      validity.notAfter, issuerCertificate, issuerKey, &pem.bytes, pem.capacity, &error.bytes, error.capacity)
    guard length >= 0 else {
      throw CertificateError(.openSSL, "cannot issue a certificate for '\(commonName)': \(error.text)")
    }
    return pem.text
  }
}
