/// A node's certificate and private key as the cluster CA issued them (PEM
/// text), before they are written into the node's directory.
public struct NodeCertificate: Sendable {
  /// Whom the certificate names.
  public let identity: NodeIdentity
  /// The certificate (PEM), signed by the cluster CA.
  public let certificatePEM: String
  /// The node's private key (PKCS#8 PEM, EC P-256). Secret.
  let keyPEM: String
  /// When the certificate is valid.
  public let validity: CertificateValidity

  init(identity: NodeIdentity, certificatePEM: String, keyPEM: String, validity: CertificateValidity) {
    self.identity = identity
    self.certificatePEM = certificatePEM
    self.keyPEM = keyPEM
    self.validity = validity
  }
}
