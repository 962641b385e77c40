import Foundation
import XCTest

@testable import Lockstep

/// A cluster's certificates in a fresh temporary directory, removed by the
/// test's teardown.
struct CertificateTestCluster {
  let directory: String

  /// Makes a cluster: VMMs vmm1 and vmm2, arbiter arb, operator ops.
  static func make(
    _ test: XCTestCase, vmms: [String] = ["vmm1", "vmm2"], arbiter: String? = "arb", operators: [String] = ["ops"]
  ) throws -> CertificateTestCluster {
    let directory = FileManager.default.temporaryDirectory
      .appendingPathComponent("lockstep-certs-\(UUID().uuidString)").path
    test.addTeardownBlock { try? FileManager.default.removeItem(atPath: directory) }
    var nodes = try vmms.map { try NodeIdentity(name: $0, role: .vmm) }
    if let arbiter { nodes.append(try NodeIdentity(name: arbiter, role: .arbiter)) }
    nodes += try operators.map { try NodeIdentity(name: $0, role: .operator) }
    try ClusterCertificates.initialize(directory: directory, nodes: nodes, days: 30)
    return CertificateTestCluster(directory: directory)
  }

  /// `DIR/name`.
  func path(_ name: String) -> String { directory + "/" + name }

  /// The credentials of node `name`.
  func credentials(_ name: String) throws -> NodeCredentials {
    try NodeCredentials(loadingFrom: path(name))
  }

  /// The permission bits of `DIR/relative`.
  func mode(_ relative: String) throws -> Int {
    let attributes = try FileManager.default.attributesOfItem(atPath: path(relative))
    return (attributes[.posixPermissions] as? NSNumber)?.intValue ?? -1
  }
}

/// `lockstep certs`: the CA, the node certificates, their files and modes.
final class CertificateTests: XCTestCase {
  func testInitMakesEveryNodeDirectoryWithRolesAndModes() throws {
    let cluster = try CertificateTestCluster.make(self)
    for name in ["vmm1", "vmm2", "arb", "ops"] {
      for file in ["ca.pem", "cert.pem"] { XCTAssertEqual(try cluster.mode("\(name)/\(file)"), 0o644, name + file) }
      XCTAssertEqual(try cluster.mode("\(name)/key.pem"), 0o600, name)
      XCTAssertEqual(try cluster.mode(name), 0o700, name)
    }
    XCTAssertEqual(try cluster.mode("ca"), 0o700)
    XCTAssertEqual(try cluster.mode("ca/ca-key.pem"), 0o600)
    XCTAssertEqual(try cluster.mode("ca/ca.pem"), 0o644)
    XCTAssertEqual(try cluster.mode("ca/heartbeat.key"), 0o600)
    XCTAssertEqual(try cluster.mode("vmm1/heartbeat.key"), 0o600)

    let vmm1 = try cluster.credentials("vmm1")
    let vmm2 = try cluster.credentials("vmm2")
    let arbiter = try cluster.credentials("arb")
    let operatorNode = try cluster.credentials("ops")
    XCTAssertEqual(vmm1.identity, try NodeIdentity(name: "vmm1", role: .vmm))
    XCTAssertEqual(vmm2.role, .vmm)
    XCTAssertEqual(arbiter.identity, try NodeIdentity(name: "arb", role: .arbiter))
    XCTAssertEqual(operatorNode.identity, try NodeIdentity(name: "ops", role: .operator))
    XCTAssertEqual(vmm1.heartbeatKey?.count, 32)
    XCTAssertEqual(vmm1.heartbeatKey, vmm2.heartbeatKey, "every VMM of a cluster shares one heartbeat key")
    XCTAssertNil(arbiter.heartbeatKey)
    XCTAssertNil(operatorNode.heartbeatKey)
    XCTAssertFalse(FileManager.default.fileExists(atPath: cluster.path("ops/heartbeat.key")))
    XCTAssertEqual(vmm1.caCertificatePath, cluster.path("vmm1/ca.pem"))
    XCTAssertEqual(
      FileManager.default.contents(atPath: vmm1.caCertificatePath),
      FileManager.default.contents(atPath: cluster.path("ca/ca.pem")))

    // The role is in the certificate's subject as an OU, and the names in
    // its subjectAltName.
    let pem = try String(contentsOfFile: vmm1.certificatePath, encoding: .utf8)
    XCTAssertTrue(pem.hasPrefix("-----BEGIN CERTIFICATE-----"), pem)
    XCTAssertFalse(
      try String(contentsOfFile: cluster.path("vmm1/key.pem"), encoding: .utf8).isEmpty)
    let validity = vmm1.validity
    XCTAssertEqual(validity.notAfter - validity.notBefore, 30 * 86_400 + CertificateValidity.clockSkewAllowance)
  }

  func testTheCertificatesAreWhatOpenSSLExpects() throws {
    let cluster = try CertificateTestCluster.make(self)
    guard let openssl = ["/usr/bin/openssl", "/bin/openssl"].first(where: FileManager.default.isExecutableFile)
    else { throw XCTSkip("no openssl binary to cross-check with") }
    let text = try run(openssl, ["x509", "-in", cluster.path("vmm1/cert.pem"), "-noout", "-text"])
    XCTAssertTrue(text.contains("OU = lockstep-vmm, CN = vmm1"), text)
    XCTAssertTrue(text.contains("DNS:vmm1, DNS:localhost, IP Address:127.0.0.1"), text)
    XCTAssertTrue(text.contains("TLS Web Server Authentication, TLS Web Client Authentication"), text)
    XCTAssertTrue(text.contains("CA:FALSE"), text)
    XCTAssertTrue(text.contains("NIST CURVE: P-256"), text)
    let authority = try run(openssl, ["x509", "-in", cluster.path("ca/ca.pem"), "-noout", "-text"])
    XCTAssertTrue(authority.contains("CA:TRUE"), authority)
    let verified = try run(openssl, ["verify", "-CAfile", cluster.path("ca/ca.pem"), cluster.path("ops/cert.pem")])
    XCTAssertTrue(verified.contains(": OK"), verified)
  }

  func testInitRefusesAnExistingClusterUnlessForced() throws {
    let cluster = try CertificateTestCluster.make(self)
    let vmm = try NodeIdentity(name: "vmm1", role: .vmm)
    XCTAssertThrowsError(try ClusterCertificates.initialize(directory: cluster.directory, nodes: [vmm])) { error in
      XCTAssertEqual((error as? CertificateError)?.code, .alreadyExists)
      XCTAssertTrue("\(error)".contains("already exists"), "\(error)")
    }
    let before = FileManager.default.contents(atPath: cluster.path("ca/ca.pem"))
    try ClusterCertificates.initialize(directory: cluster.directory, nodes: [vmm], force: true)
    XCTAssertNotEqual(FileManager.default.contents(atPath: cluster.path("ca/ca.pem")), before, "a new CA")
    XCTAssertNoThrow(try cluster.credentials("vmm1"))
    // vmm2 was issued by the replaced CA: its directory no longer verifies
    // once it holds the new CA certificate.
    try FileManager.default.removeItem(atPath: cluster.path("vmm2/ca.pem"))
    try FileManager.default.copyItem(atPath: cluster.path("ca/ca.pem"), toPath: cluster.path("vmm2/ca.pem"))
    XCTAssertThrowsError(try cluster.credentials("vmm2")) { error in
      XCTAssertEqual((error as? CertificateError)?.code, .notValid, "\(error)")
    }
  }

  func testNamesAreChecked() throws {
    for bad in ["", "a/b", "..", ".", "ca", "bad name", "é", String(repeating: "x", count: 65)] {
      XCTAssertThrowsError(try NodeIdentity(name: bad, role: .vmm), bad) { error in
        XCTAssertEqual((error as? CertificateError)?.code, .invalidName, bad)
      }
    }
    XCTAssertNoThrow(try NodeIdentity(name: String(repeating: "x", count: 64), role: .vmm))
    XCTAssertNoThrow(try NodeIdentity(name: "Host-1.example_a", role: .arbiter))
    let directory = NSTemporaryDirectory() + "lockstep-dup-\(UUID().uuidString)"
    addTeardownBlock { try? FileManager.default.removeItem(atPath: directory) }
    let twice = [try NodeIdentity(name: "a", role: .vmm), try NodeIdentity(name: "a", role: .operator)]
    XCTAssertThrowsError(try ClusterCertificates.initialize(directory: directory, nodes: twice)) { error in
      XCTAssertEqual((error as? CertificateError)?.code, .invalidRequest)
      XCTAssertTrue("\(error)".contains("'a' is given twice"), "\(error)")
    }
    XCTAssertThrowsError(try ClusterCertificates.initialize(directory: directory, nodes: [])) { error in
      XCTAssertEqual((error as? CertificateError)?.code, .invalidRequest)
    }
    XCTAssertThrowsError(
      try ClusterCertificates.initialize(
        directory: directory, nodes: [try NodeIdentity(name: "a", role: .vmm)], days: 0)
    ) { error in
      XCTAssertEqual((error as? CertificateError)?.code, .invalidRequest)
    }
    XCTAssertFalse(FileManager.default.fileExists(atPath: directory), "nothing is written for a bad request")
  }

  func testAddIssuesWithTheExistingCAAndHeartbeatKey() throws {
    let cluster = try CertificateTestCluster.make(self)
    let before = try cluster.credentials("vmm1")
    let added = try ClusterCertificates.add(
      directory: cluster.directory,
      nodes: [try NodeIdentity(name: "vmm3", role: .vmm), try NodeIdentity(name: "ops2", role: .operator)])
    XCTAssertEqual(added.map(\.name), ["vmm3", "ops2"])
    XCTAssertEqual(added[0].heartbeatKey, before.heartbeatKey)
    XCTAssertEqual(
      FileManager.default.contents(atPath: cluster.path("vmm3/ca.pem")),
      FileManager.default.contents(atPath: cluster.path("vmm1/ca.pem")))
    XCTAssertThrowsError(
      try ClusterCertificates.add(directory: cluster.directory, nodes: [try NodeIdentity(name: "vmm1", role: .vmm)])
    ) { error in
      XCTAssertEqual((error as? CertificateError)?.code, .alreadyExists)
    }
    // Renewing with force replaces the certificate, role included.
    try ClusterCertificates.add(
      directory: cluster.directory, nodes: [try NodeIdentity(name: "vmm1", role: .operator)], force: true)
    let renewed = try cluster.credentials("vmm1")
    XCTAssertEqual(renewed.role, .operator)
    XCTAssertNil(renewed.heartbeatKey)
    XCTAssertFalse(FileManager.default.fileExists(atPath: cluster.path("vmm1/heartbeat.key")))

    let empty = NSTemporaryDirectory() + "lockstep-empty-\(UUID().uuidString)"
    XCTAssertThrowsError(
      try ClusterCertificates.add(directory: empty, nodes: [try NodeIdentity(name: "x", role: .vmm)])
    ) { error in
      XCTAssertEqual((error as? CertificateError)?.code, .missing)
      XCTAssertTrue("\(error)".contains("lockstep certs init"), "\(error)")
    }
  }

  func testBrokenCredentialsAreExplained() throws {
    let cluster = try CertificateTestCluster.make(self)
    let other = try CertificateTestCluster.make(self)

    XCTAssertThrowsError(try NodeCredentials(loadingFrom: cluster.path("nobody"))) { error in
      XCTAssertEqual((error as? CertificateError)?.code, .missing)
    }
    // A key that belongs to another node.
    try FileManager.default.removeItem(atPath: cluster.path("vmm2/key.pem"))
    try FileManager.default.copyItem(atPath: cluster.path("vmm1/key.pem"), toPath: cluster.path("vmm2/key.pem"))
    XCTAssertThrowsError(try cluster.credentials("vmm2")) { error in
      XCTAssertEqual((error as? CertificateError)?.code, .notValid)
      XCTAssertTrue("\(error)".contains("does not belong"), "\(error)")
    }
    // A certificate from another cluster's CA.
    try FileManager.default.removeItem(atPath: cluster.path("ops/ca.pem"))
    try FileManager.default.copyItem(atPath: other.path("ops/ca.pem"), toPath: cluster.path("ops/ca.pem"))
    XCTAssertThrowsError(try cluster.credentials("ops")) { error in
      XCTAssertEqual((error as? CertificateError)?.code, .notValid)
      XCTAssertTrue("\(error)".contains("is not valid for the CA"), "\(error)")
    }
    // A VMM without its heartbeat key, and a damaged one.
    try FileManager.default.removeItem(atPath: other.path("vmm1/heartbeat.key"))
    XCTAssertThrowsError(try other.credentials("vmm1")) { error in
      XCTAssertEqual((error as? CertificateError)?.code, .missing)
      XCTAssertTrue("\(error)".contains("heartbeat key"), "\(error)")
    }
    try "not hex\n".write(toFile: other.path("vmm1/heartbeat.key"), atomically: true, encoding: .utf8)
    XCTAssertThrowsError(try other.credentials("vmm1")) { error in
      XCTAssertEqual((error as? CertificateError)?.code, .invalidContent)
    }
  }

  func testExpiredCertificatesAreRefusedWhenLoading() throws {
    let cluster = try CertificateTestCluster.make(self)
    let authority = try CertificateAuthority(loadingFrom: cluster.path("ca"))
    let now = CertificateValidity.now()
    let expired = try authority.issue(
      for: try NodeIdentity(name: "old", role: .vmm),
      validity: CertificateValidity(notBefore: now - 200, notAfter: now - 100))
    let key = try XCTUnwrap(try cluster.credentials("vmm1").heartbeatKey)
    try ClusterCertificates.install(expired, authority: authority, heartbeatKey: key, directory: cluster.directory)
    XCTAssertThrowsError(try cluster.credentials("old")) { error in
      XCTAssertEqual((error as? CertificateError)?.code, .notValid)
      XCTAssertTrue("\(error)".contains("expired on"), "\(error)")
    }
    // The same credentials were fine while they were valid (and the CA too:
    // its validity starts CertificateValidity.clockSkewAllowance before now).
    XCTAssertNoThrow(try NodeCredentials(loadingFrom: cluster.path("old"), now: now - 150))
  }

  func testHeartbeatKeyText() throws {
    let key = (0..<32).map { UInt8($0 * 7 & 0xFF) }
    let text = NodeCredentials.heartbeatKeyText(key)
    XCTAssertEqual(text.count, 65)
    XCTAssertEqual(try NodeCredentials.parseHeartbeatKey(text, path: "k"), key)
    XCTAssertEqual(try NodeCredentials.parseHeartbeatKey(text.uppercased(), path: "k"), key)
    for bad in ["", "abc", String(text.dropLast(3)), text + "00", "zz" + text.dropFirst(2)] {
      XCTAssertThrowsError(try NodeCredentials.parseHeartbeatKey(bad, path: "k"), bad)
    }
  }

  func testCommandLine() throws {
    let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
      .appendingPathComponent("lockstep")
    guard FileManager.default.isExecutableFile(atPath: binary.path) else {
      throw XCTSkip("lockstep is not built next to the tests (\(binary.path))")
    }
    let directory = NSTemporaryDirectory() + "lockstep-cli-\(UUID().uuidString)"
    addTeardownBlock { try? FileManager.default.removeItem(atPath: directory) }
    let made = try lockstep(
      binary, ["certs", "init", "--dir", directory, "--vmms", "a,b", "--arbiter", "arb", "--operators", "me"])
    XCTAssertEqual(made.status, 0, made.stderr)
    XCTAssertTrue(made.stdout.contains("CN=a OU=lockstep-vmm"), made.stdout)
    XCTAssertTrue(made.stdout.contains("CN=me OU=lockstep-operator"), made.stdout)
    XCTAssertEqual(try NodeCredentials(loadingFrom: directory + "/arb").role, .arbiter)

    let again = try lockstep(binary, ["certs", "init", "--dir", directory, "--vmms", "a"])
    XCTAssertEqual(again.status, 1)
    XCTAssertTrue(again.stderr.contains("already exists"), again.stderr)
    XCTAssertTrue(again.stderr.contains("--force"), again.stderr)

    let badName = try lockstep(binary, ["certs", "init", "--dir", directory + "x", "--vmms", "a b"])
    XCTAssertEqual(badName.status, 1)
    XCTAssertTrue(badName.stderr.contains("invalid node name 'a b'"), badName.stderr)
    let noVMMs = try lockstep(binary, ["certs", "init", "--dir", directory + "x", "--operators", "me"])
    XCTAssertNotEqual(noVMMs.status, 0)
    XCTAssertTrue(noVMMs.stderr.contains("--vmms"), noVMMs.stderr)

    let shown = try lockstep(binary, ["certs", "show", "--tls-dir", directory + "/b"])
    XCTAssertEqual(shown.status, 0, shown.stderr)
    XCTAssertTrue(shown.stdout.contains("b, role vmm"), shown.stdout)
  }

  private func lockstep(_ binary: URL, _ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String)
  {
    let process = Process()
    process.executableURL = binary
    process.arguments = arguments
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    let stderr = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
  }

  private func run(_ executable: String, _ arguments: [String]) throws -> String {
    let result = try lockstep(URL(fileURLWithPath: executable), arguments)
    return result.stdout + result.stderr
  }
}
