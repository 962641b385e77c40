import CLockstepLinux

#if canImport(Glibc)
  import Glibc
#endif

/// A cluster's certificates on disk, as `lockstep certs init` and
/// `lockstep certs add` make them:
///
///     DIR/ca/ca.pem            the CA certificate
///     DIR/ca/ca-key.pem        the CA key (0600): keep it here, off the nodes
///     DIR/ca/heartbeat.key     the cluster heartbeat key (0600)
///     DIR/NAME/ca.pem          the CA certificate
///     DIR/NAME/cert.pem        NAME's certificate (CN=NAME, OU=lockstep-ROLE)
///     DIR/NAME/key.pem         NAME's key (0600)
///     DIR/NAME/heartbeat.key   VMMs only: the cluster heartbeat key (0600)
///
/// `DIR/ca` and every `DIR/NAME` have mode 0700. `DIR/NAME` is what node
/// NAME's host needs (see ``NodeCredentials``).
public enum ClusterCertificates {
  /// The CA's directory inside the cluster directory.
  public static let authorityDirectoryName = "ca"
  /// Node certificates' validity by default, in days.
  public static let defaultDays = 365
  /// The longest validity accepted, in days.
  public static let maximumDays = 36_500
  /// The CA certificate's shortest validity, in days (it is valid for at
  /// least this long, or as long as the node certificates if longer).
  public static let authorityMinimumDays = 3_650

  /// Makes a new cluster in `directory` (created if missing): a CA, a
  /// heartbeat key, and a credentials directory per node whose
  /// certificate is valid for `days` days.
  ///
  /// Refuses to replace an existing `DIR/ca` or `DIR/NAME` unless `force`
  /// (replacing the CA invalidates every certificate it issued before).
  /// Returns the new nodes' credentials, loaded back and checked.
  @discardableResult
  public static func initialize(
    directory: String, nodes: [NodeIdentity], days: Int = defaultDays, force: Bool = false,
    now: Int64 = CertificateValidity.now()
  ) throws(CertificateError) -> [NodeCredentials] {
    try check(nodes: nodes, days: days)
    let authorityDirectory = CredentialFiles.join(directory, authorityDirectoryName)
    if !force && CredentialFiles.exists(authorityDirectory) {
      throw CertificateError(
        .alreadyExists,
        "\(authorityDirectory) already exists: \(directory) holds a cluster already (use --force to replace it; "
          + "every certificate its CA issued stops working)")
    }
    try checkNodeDirectories(directory: directory, nodes: nodes, force: force)
    try CredentialFiles.makeDirectories(directory, mode: 0o755)

    let authority = try CertificateAuthority.create(
      validity: .days(max(days, authorityMinimumDays), from: now))
    try authority.save(to: authorityDirectory)
    let heartbeatKey = try randomKey()
    try CredentialFiles.write(
      text: NodeCredentials.heartbeatKeyText(heartbeatKey),
      to: CredentialFiles.join(authorityDirectory, NodeCredentials.heartbeatKeyFileName), mode: 0o600)
    return try issue(
      nodes, directory: directory, authority: authority, heartbeatKey: heartbeatKey, days: days, now: now)
  }

  /// Adds nodes to the cluster in `directory` with its existing CA and
  /// heartbeat key (for a new host, or to renew a certificate with
  /// `force`). Refuses to replace an existing `DIR/NAME` unless `force`.
  @discardableResult
  public static func add(
    directory: String, nodes: [NodeIdentity], days: Int = defaultDays, force: Bool = false,
    now: Int64 = CertificateValidity.now()
  ) throws(CertificateError) -> [NodeCredentials] {
    try check(nodes: nodes, days: days)
    let authorityDirectory = CredentialFiles.join(directory, authorityDirectoryName)
    guard CredentialFiles.isDirectory(authorityDirectory) else {
      throw CertificateError(
        .missing, "\(directory) holds no cluster CA (\(authorityDirectory) is missing): run lockstep certs init first")
    }
    try checkNodeDirectories(directory: directory, nodes: nodes, force: force)
    let authority = try CertificateAuthority(loadingFrom: authorityDirectory)
    let heartbeatPath = CredentialFiles.join(authorityDirectory, NodeCredentials.heartbeatKeyFileName)
    let heartbeatKey = try NodeCredentials.parseHeartbeatKey(
      CredentialFiles.readText(heartbeatPath), path: heartbeatPath)
    return try issue(
      nodes, directory: directory, authority: authority, heartbeatKey: heartbeatKey, days: days, now: now)
  }

  /// Writes `certificate` (issued by `authority`) into
  /// `directory/NAME`, with the heartbeat key if the node is a VMM, and
  /// returns that directory.
  @discardableResult
  public static func install(
    _ certificate: NodeCertificate, authority: CertificateAuthority, heartbeatKey: [UInt8], directory: String
  ) throws(CertificateError) -> String {
    let nodeDirectory = CredentialFiles.join(directory, certificate.identity.name)
    try CredentialFiles.makeDirectory(nodeDirectory, mode: 0o700)
    try CredentialFiles.write(
      text: certificate.keyPEM, to: CredentialFiles.join(nodeDirectory, NodeCredentials.keyFileName), mode: 0o600)
    try CredentialFiles.write(
      text: certificate.certificatePEM, to: CredentialFiles.join(nodeDirectory, NodeCredentials.certificateFileName),
      mode: 0o644)
    try CredentialFiles.write(
      text: authority.certificatePEM, to: CredentialFiles.join(nodeDirectory, NodeCredentials.caFileName), mode: 0o644)
    let heartbeatPath = CredentialFiles.join(nodeDirectory, NodeCredentials.heartbeatKeyFileName)
    if certificate.identity.role == .vmm {
      try CredentialFiles.write(text: NodeCredentials.heartbeatKeyText(heartbeatKey), to: heartbeatPath, mode: 0o600)
    } else {
      try CredentialFiles.removeFile(heartbeatPath)
    }
    return nodeDirectory
  }

  private static func issue(
    _ nodes: [NodeIdentity], directory: String, authority: CertificateAuthority, heartbeatKey: [UInt8], days: Int,
    now: Int64
  ) throws(CertificateError) -> [NodeCredentials] {
    var installed: [NodeCredentials] = []
    for node in nodes {
      let certificate = try authority.issue(for: node, validity: .days(days, from: now))
      let nodeDirectory = try install(
        certificate, authority: authority, heartbeatKey: heartbeatKey, directory: directory)
      installed.append(try NodeCredentials(loadingFrom: nodeDirectory, now: now))
    }
    return installed
  }

  private static func check(nodes: [NodeIdentity], days: Int) throws(CertificateError) {
    guard !nodes.isEmpty else {
      throw CertificateError(.invalidRequest, "no nodes named: name at least one VMM, arbiter or operator")
    }
    guard (1...maximumDays).contains(days) else {
      throw CertificateError(.invalidRequest, "a certificate must be valid for 1 to \(maximumDays) days, not \(days)")
    }
    var seen: Set<String> = []
    for node in nodes where !seen.insert(node.name).inserted {
      throw CertificateError(.invalidRequest, "the name '\(node.name)' is given twice: every node needs its own name")
    }
  }

  private static func checkNodeDirectories(
    directory: String, nodes: [NodeIdentity], force: Bool
  ) throws(CertificateError) {
    guard !force else { return }
    for node in nodes {
      let nodeDirectory = CredentialFiles.join(directory, node.name)
      if CredentialFiles.exists(nodeDirectory) {
        throw CertificateError(.alreadyExists, "\(nodeDirectory) already exists (use --force to replace it)")
      }
    }
  }

  private static func randomKey() throws(CertificateError) -> [UInt8] {
    var key = [UInt8](repeating: 0, count: NodeCredentials.heartbeatKeyLength)
    var filled = 0
    var attempts = 0
    while filled < key.count {
      attempts += 1
      let got = key.withUnsafeMutableBytes { raw in
        lslinux_getrandom(raw.baseAddress.map { $0 + filled }, raw.count - filled)
      }
      if got > 0 {
        filled += got
      } else if got < 0 && errno != EINTR || attempts > 100 {
        throw CertificateError(.io, "cannot get random bytes for the heartbeat key: \(CredentialFiles.reason(errno))")
      }
    }
    return key
  }
}
