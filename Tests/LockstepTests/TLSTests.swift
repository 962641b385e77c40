import Foundation
import Synchronization
import XCTest

@testable import Lockstep

/// Runs a body on its own thread; ``finish()`` joins it and returns what
/// it returned or threw.
final class TLSTestThread<Value: Sendable>: Sendable {
  private let result = Synchronization.Mutex<Result<Value, any Error>?>(nil)
  private let thread = Synchronization.Mutex<NamedThread?>(nil)

  init(_ body: @escaping @Sendable () throws -> Value) throws {
    let started = try NamedThread(name: "tls-test") { [self] in
      let outcome = Result { try body() }
      result.withLock { $0 = outcome }
    }
    thread.withLock { $0 = started }
  }

  /// Waits for the body (every body here is bounded by socket timeouts).
  func finish() throws -> Value {
    thread.withLock { $0 }?.join()
    guard let outcome = result.withLock({ $0 }) else { throw TLSError(.io, "the test thread returned nothing") }
    return try outcome.get()
  }
}

/// Mutual TLS 1.3 between nodes of a cluster, and refusal of everyone else.
final class TLSTests: XCTestCase {
  /// A server for one connection from `credentials` (or a context) that
  /// reads `expecting` bytes, answers `reply`, and reports the peer.
  struct Served: Sendable {
    var peerName: String
    var peerRole: NodeRole?
    var received: [UInt8]
  }

  func serveOne(
    _ listener: TLSListener, expecting count: Int, reply: [UInt8]
  ) throws -> TLSTestThread<Served> {
    try TLSTestThread {
      guard let stream = try listener.accept(timeout: .seconds(10)) else {
        throw TLSError(.timedOut, "no connection came")
      }
      defer { stream.close() }
      let received = try stream.read(exactly: count)
      try stream.write(reply)
      return Served(peerName: stream.peerName, peerRole: stream.peerRole, received: received)
    }
  }

  func listener(_ credentials: NodeCredentials, handshakeTimeout: Duration = .seconds(5)) throws -> TLSListener {
    try TLSListener(
      host: "127.0.0.1", port: 0, context: TLSContext(credentials: credentials, side: .server),
      handshakeTimeout: handshakeTimeout)
  }

  func client(_ credentials: NodeCredentials) throws -> TLSContext {
    try TLSContext(credentials: credentials, side: .client)
  }

  /// Asserts that `connect` either fails or yields a stream that gives no
  /// application data (TLS 1.3 clients learn of a refusal at their first
  /// read); returns the error seen.
  @discardableResult
  func assertRefused(
    _ connect: () throws -> TLSStream, file: StaticString = #filePath, line: UInt = #line
  ) -> String {
    let stream: TLSStream
    do {
      stream = try connect()
    } catch {
      return "\(error)"
    }
    defer { stream.close() }
    var buffer = [UInt8](repeating: 0, count: 64)
    do {
      let got = try stream.read(into: &buffer)
      XCTAssertEqual(got, 0, "a refused peer got application data", file: file, line: line)
      return "closed"
    } catch {
      XCTAssertNotEqual(error.code, .timedOut, "\(error)", file: file, line: line)
      return "\(error)"
    }
  }

  func testMutualHandshakeExchangesBytesBothWays() throws {
    let cluster = try CertificateTestCluster.make(self)
    let listener = try listener(try cluster.credentials("vmm1"))
    defer { listener.close() }
    // Large enough to need many TLS records and many write calls.
    let request = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
    let reply = Array("ack from vmm1".utf8)
    let server = try serveOne(listener, expecting: request.count, reply: reply)

    let stream = try TLSStream.connect(
      host: "127.0.0.1", port: listener.port, context: client(try cluster.credentials("vmm2")), timeout: .seconds(5))
    defer { stream.close() }
    XCTAssertEqual(stream.peerName, "vmm1")
    XCTAssertEqual(stream.peerRole, .vmm)
    XCTAssertEqual(stream.peerAddress, "127.0.0.1:\(listener.port)")
    try stream.write(request)
    XCTAssertEqual(try stream.read(exactly: reply.count), reply)
    var rest = [UInt8](repeating: 0, count: 16)
    XCTAssertEqual(try stream.read(into: &rest), 0, "the server closed cleanly")

    let served = try server.finish()
    XCTAssertEqual(served.received, request)
    XCTAssertEqual(served.peerName, "vmm2")
    XCTAssertEqual(served.peerRole, .vmm)
  }

  func testThePeersRoleIsRead() throws {
    let cluster = try CertificateTestCluster.make(self)
    let listener = try listener(try cluster.credentials("arb"))
    defer { listener.close() }
    let server = try serveOne(listener, expecting: 2, reply: [1])
    let stream = try TLSStream.connect(
      host: "localhost", port: listener.port, context: client(try cluster.credentials("ops")), timeout: .seconds(5),
      expecting: .arbiter)
    defer { stream.close() }
    XCTAssertEqual(stream.peerRole, .arbiter)
    try stream.write([7, 8])
    XCTAssertEqual(try stream.read(exactly: 1), [1])
    let served = try server.finish()
    XCTAssertEqual(served.peerName, "ops")
    XCTAssertEqual(served.peerRole, .operator)

    // A client that expects another role refuses the server.
    let second = try serveOne(listener, expecting: 1, reply: [1])
    XCTAssertThrowsError(
      try TLSStream.connect(
        host: "127.0.0.1", port: listener.port, context: client(try cluster.credentials("vmm1")),
        timeout: .seconds(5), expecting: .vmm)
    ) { error in
      XCTAssertEqual((error as? TLSError)?.code, .peerNotAllowed)
      XCTAssertTrue("\(error)".contains("'arb' (role arbiter), not that of a vmm"), "\(error)")
    }
    XCTAssertThrowsError(try second.finish())
  }

  func testAListenerRefusesRolesItDoesNotAllow() throws {
    let cluster = try CertificateTestCluster.make(self)
    let listener = try TLSListener(
      host: "127.0.0.1", port: 0, context: TLSContext(credentials: try cluster.credentials("arb"), side: .server),
      handshakeTimeout: .seconds(5), allowedRoles: [.vmm])
    defer { listener.close() }
    let server = try serveOne(listener, expecting: 5, reply: Array("secret".utf8))
    let seen = assertRefused {
      try TLSStream.connect(
        host: "127.0.0.1", port: listener.port, context: client(try cluster.credentials("ops")), timeout: .seconds(5))
    }
    XCTAssertFalse(seen.contains("secret"))
    XCTAssertThrowsError(try server.finish()) { error in
      XCTAssertEqual((error as? TLSError)?.code, .peerNotAllowed)
      XCTAssertTrue("\(error)".contains("role is operator; only vmm may connect here"), "\(error)")
    }
  }

  func testAClientFromAnotherCAIsRefused() throws {
    let cluster = try CertificateTestCluster.make(self)
    let stranger = try CertificateTestCluster.make(self)
    let listener = try listener(try cluster.credentials("vmm1"))
    defer { listener.close() }

    // A stranger that trusts the cluster's CA (its certificate is public)
    // but holds a certificate from its own CA.
    let server = try serveOne(listener, expecting: 5, reply: Array("secret".utf8))
    let impostor = try TLSContext(
      side: .client, caCertificatePath: cluster.path("vmm2/ca.pem"), certificatePath: stranger.path("vmm2/cert.pem"),
      keyPath: stranger.path("vmm2/key.pem"), localName: "vmm2")
    let seen = assertRefused {
      try TLSStream.connect(host: "127.0.0.1", port: listener.port, context: impostor, timeout: .seconds(5))
    }
    XCTAssertTrue(seen.contains("unknown ca") || seen.contains("closed"), seen)
    XCTAssertThrowsError(try server.finish()) { error in
      XCTAssertEqual((error as? TLSError)?.code, .handshake)
      XCTAssertTrue("\(error)".contains("TLS handshake with 127.0.0.1:"), "\(error)")
      XCTAssertTrue(
        "\(error)".contains("certificate verify failed (peer certificate not signed by the cluster CA"), "\(error)")
    }

    // A node of another cluster: each side refuses the other.
    let other = try serveOne(listener, expecting: 5, reply: Array("secret".utf8))
    XCTAssertThrowsError(
      try TLSStream.connect(
        host: "127.0.0.1", port: listener.port, context: client(try stranger.credentials("vmm2")), timeout: .seconds(5))
    ) { error in
      XCTAssertEqual((error as? TLSError)?.code, .handshake)
      XCTAssertTrue("\(error)".contains("peer certificate not signed by the cluster CA"), "\(error)")
    }
    XCTAssertThrowsError(try other.finish()) { error in
      XCTAssertEqual((error as? TLSError)?.code, .handshake, "\(error)")
    }
  }

  func testAServerFromAnotherCAIsRefused() throws {
    let cluster = try CertificateTestCluster.make(self)
    let stranger = try CertificateTestCluster.make(self)
    let listener = try listener(try stranger.credentials("vmm1"))
    defer { listener.close() }
    let server = try serveOne(listener, expecting: 5, reply: Array("secret".utf8))
    XCTAssertThrowsError(
      try TLSStream.connect(
        host: "127.0.0.1", port: listener.port, context: client(try cluster.credentials("vmm2")), timeout: .seconds(5))
    ) { error in
      XCTAssertEqual((error as? TLSError)?.code, .handshake)
      XCTAssertTrue(
        "\(error)".contains(
          "TLS handshake with 127.0.0.1:\(listener.port) failed: certificate verify failed "
            + "(peer certificate not signed by the cluster CA"),
        "\(error)")
    }
    XCTAssertThrowsError(try server.finish()) { error in
      XCTAssertEqual((error as? TLSError)?.code, .handshake, "\(error)")
    }
  }

  func testAClientWithoutACertificateIsRefused() throws {
    let cluster = try CertificateTestCluster.make(self)
    let listener = try listener(try cluster.credentials("vmm1"))
    defer { listener.close() }
    let server = try serveOne(listener, expecting: 5, reply: Array("secret".utf8))
    let anonymous = try TLSContext(
      side: .client, caCertificatePath: cluster.path("vmm2/ca.pem"), certificatePath: "", keyPath: "",
      localName: "anonymous")
    let seen = assertRefused {
      try TLSStream.connect(host: "127.0.0.1", port: listener.port, context: anonymous, timeout: .seconds(5))
    }
    XCTAssertTrue(seen.contains("we presented none") || seen.contains("closed"), seen)
    XCTAssertThrowsError(try server.finish()) { error in
      XCTAssertEqual((error as? TLSError)?.code, .handshake)
      XCTAssertTrue("\(error)".contains("the peer presented no certificate"), "\(error)")
    }
  }

  func testExpiredCertificatesAreRefusedBothWays() throws {
    let cluster = try CertificateTestCluster.make(self)
    let authority = try CertificateAuthority(loadingFrom: cluster.path("ca"))
    let now = CertificateValidity.now()
    let expired = try authority.issue(
      for: try NodeIdentity(name: "old", role: .vmm),
      validity: CertificateValidity(notBefore: now - 10 * 86_400, notAfter: now - 3600))
    let key = try XCTUnwrap(try cluster.credentials("vmm1").heartbeatKey)
    try ClusterCertificates.install(expired, authority: authority, heartbeatKey: key, directory: cluster.directory)
    func context(_ side: TLSContext.Side) throws -> TLSContext {
      try TLSContext(
        side: side, caCertificatePath: cluster.path("old/ca.pem"), certificatePath: cluster.path("old/cert.pem"),
        keyPath: cluster.path("old/key.pem"), localName: "old")
    }

    // An expired client.
    let listener = try listener(try cluster.credentials("vmm1"))
    defer { listener.close() }
    let server = try serveOne(listener, expecting: 5, reply: Array("secret".utf8))
    let seen = assertRefused {
      try TLSStream.connect(host: "127.0.0.1", port: listener.port, context: context(.client), timeout: .seconds(5))
    }
    XCTAssertTrue(seen.contains("our certificate has expired") || seen.contains("closed"), seen)
    XCTAssertThrowsError(try server.finish()) { error in
      XCTAssertTrue("\(error)".contains("(peer certificate has expired)"), "\(error)")
    }

    // An expired server.
    let expiredListener = try TLSListener(
      host: "127.0.0.1", port: 0, context: context(.server), handshakeTimeout: .seconds(5))
    defer { expiredListener.close() }
    let expiredServer = try serveOne(expiredListener, expecting: 5, reply: Array("secret".utf8))
    XCTAssertThrowsError(
      try TLSStream.connect(
        host: "127.0.0.1", port: expiredListener.port, context: client(try cluster.credentials("vmm2")),
        timeout: .seconds(5))
    ) { error in
      XCTAssertEqual((error as? TLSError)?.code, .handshake)
      XCTAssertTrue("\(error)".contains("(peer certificate has expired)"), "\(error)")
    }
    XCTAssertThrowsError(try expiredServer.finish())
  }

  func testGarbageAndSilentClientsNeitherCrashNorHoldTheListener() throws {
    let cluster = try CertificateTestCluster.make(self)
    let listener = try listener(try cluster.credentials("vmm1"), handshakeTimeout: .milliseconds(500))
    defer { listener.close() }

    // Not TLS at all.
    let garbage = try TLSTestThread { () -> Void in _ = try listener.accept(timeout: .seconds(10)) }
    let http = try TestClient(port: listener.port, timeoutSeconds: 5)
    try http.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    XCTAssertThrowsError(try garbage.finish()) { error in
      XCTAssertEqual((error as? TLSError)?.code, .handshake)
      XCTAssertTrue("\(error)".contains("does not speak TLS"), "\(error)")
    }

    // Random bytes that look like a TLS record header.
    let noise = try TLSTestThread { () -> Void in _ = try listener.accept(timeout: .seconds(10)) }
    let random = try TestClient(port: listener.port, timeoutSeconds: 5)
    try random.send([0x16, 0x03, 0x01, 0x00, 0x10] + (0..<16).map { UInt8(truncatingIfNeeded: $0 &* 97 &+ 5) })
    XCTAssertThrowsError(try noise.finish()) { error in
      XCTAssertEqual((error as? TLSError)?.code, .handshake, "\(error)")
    }

    // Connected and silent: given up on after the handshake timeout.
    let started = Date()
    let silent = try TLSTestThread { () -> Void in _ = try listener.accept(timeout: .seconds(10)) }
    let quiet = try TestClient(port: listener.port, timeoutSeconds: 5)
    XCTAssertThrowsError(try silent.finish()) { error in
      XCTAssertEqual((error as? TLSError)?.code, .timedOut, "\(error)")
      XCTAssertTrue("\(error)".contains("within 500 ms"), "\(error)")
    }
    let waited = Date().timeIntervalSince(started)
    XCTAssertGreaterThanOrEqual(waited, 0.4)
    XCTAssertLessThan(waited, 3)
    _ = quiet

    // The listener still serves a real peer.
    let server = try serveOne(listener, expecting: 3, reply: [9])
    let stream = try TLSStream.connect(
      host: "127.0.0.1", port: listener.port, context: client(try cluster.credentials("vmm2")), timeout: .seconds(5))
    defer { stream.close() }
    try stream.write([1, 2, 3])
    XCTAssertEqual(try stream.read(exactly: 1), [9])
    XCTAssertEqual(try server.finish().received, [1, 2, 3])
  }

  func testReadTimeoutsAndCloseFromAnotherThread() throws {
    let cluster = try CertificateTestCluster.make(self)
    let listener = try listener(try cluster.credentials("vmm1"))
    defer { listener.close() }
    let accepted = try TLSTestThread { () -> TLSStream in
      guard let stream = try listener.accept(timeout: .seconds(10)) else { throw TLSError(.timedOut, "none") }
      return stream
    }
    let client = try TLSStream.connect(
      host: "127.0.0.1", port: listener.port, context: client(try cluster.credentials("vmm2")), timeout: .seconds(5))
    defer { client.close() }
    let server = try accepted.finish()

    // A read timeout leaves the stream usable.
    try client.setTimeout(.milliseconds(200))
    var buffer = [UInt8](repeating: 0, count: 8)
    XCTAssertThrowsError(try client.read(into: &buffer)) { error in
      XCTAssertEqual((error as? TLSError)?.code, .timedOut)
    }
    XCTAssertFalse(try client.waitUntilReadable(timeout: .milliseconds(50)))
    try server.write([42, 43, 44])
    XCTAssertTrue(try client.waitUntilReadable(timeout: .seconds(5)))
    XCTAssertEqual(try client.read(exactly: 1), [42])
    XCTAssertTrue(client.hasBufferedInput, "the rest of the record is decrypted and waiting")
    XCTAssertTrue(try client.waitUntilReadable(timeout: .zero))
    XCTAssertEqual(try client.read(exactly: 2), [43, 44])
    XCTAssertFalse(client.hasBufferedInput)

    // close() from another thread wakes a blocked reader.
    try server.setTimeout(.seconds(20))
    let started = Date()
    let reader = try TLSTestThread { () -> Int in
      var bytes = [UInt8](repeating: 0, count: 8)
      return try server.read(into: &bytes)
    }
    Thread.sleep(forTimeInterval: 0.2)
    server.close()
    server.close()
    XCTAssertThrowsError(try reader.finish())
    XCTAssertLessThan(Date().timeIntervalSince(started), 5)
    XCTAssertTrue(server.isClosed)
    XCTAssertThrowsError(try server.write([1])) { error in
      XCTAssertEqual((error as? TLSError)?.code, .closed)
    }
    // The peer sees the end of the stream, not data, and writing to it
    // fails (with an error, not SIGPIPE).
    try client.setTimeout(.seconds(5))
    XCTAssertEqual((try? client.read(into: &buffer)) ?? 0, 0)
    let chunk = [UInt8](repeating: 1, count: 64 << 10)
    var failure: TLSError?
    for _ in 0..<200 where failure == nil {
      do { try client.write(chunk) } catch { failure = error }
    }
    XCTAssertNotNil(failure, "writing to a closed peer must fail")
  }

  func testConnectFailuresAreExplained() throws {
    let cluster = try CertificateTestCluster.make(self)
    let context = try client(try cluster.credentials("vmm2"))
    // A port nobody listens on: refused (the peer process is gone).
    let unused = try listener(try cluster.credentials("vmm1"))
    let port = unused.port
    unused.close()
    XCTAssertThrowsError(try TLSStream.connect(host: "127.0.0.1", port: port, context: context, timeout: .seconds(2))) {
      error in
      XCTAssertEqual((error as? TLSError)?.code, .refused, "\(error)")
      XCTAssertTrue("\(error)".contains("cannot connect to 127.0.0.1:\(port)"), "\(error)")
    }
    XCTAssertThrowsError(
      try TLSStream.connect(host: "no-such-host.invalid", port: 7000, context: context, timeout: .seconds(2))
    ) { error in
      XCTAssertEqual((error as? TLSError)?.code, .connect, "\(error)")
    }
    // Contexts for the wrong side, and credentials that do not load.
    XCTAssertThrowsError(
      try TLSStream.connect(
        host: "127.0.0.1", port: port, context: TLSContext(credentials: try cluster.credentials("vmm1"), side: .server))
    ) { error in
      XCTAssertEqual((error as? TLSError)?.code, .configuration)
    }
    XCTAssertThrowsError(
      try TLSContext(
        side: .client, caCertificatePath: cluster.path("vmm1/ca.pem"), certificatePath: cluster.path("vmm1/cert.pem"),
        keyPath: cluster.path("vmm2/key.pem"), localName: "x")
    ) { error in
      XCTAssertEqual((error as? TLSError)?.code, .configuration)
      XCTAssertTrue("\(error)".contains("does not belong to the certificate"), "\(error)")
    }
  }

  func testSHA256() {
    func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }
    XCTAssertEqual(hex(sha256([])), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    XCTAssertEqual(hex(sha256(Array("abc".utf8))), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    let million = [UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)
    XCTAssertEqual(hex(sha256(million)), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
  }
}
