import Foundation
import Logging
import Synchronization
import XCTest

@testable import Lockstep

/// The arbiter: durable, atomic test-and-set over mutual TLS, roles, and
/// survival of restarts (in process and as a killed process).
final class ArbiterTests: XCTestCase {
  /// A temporary state directory, removed by the teardown.
  func stateDirectory() -> String {
    let directory = FileManager.default.temporaryDirectory
      .appendingPathComponent("lockstep-arbiter-\(UUID().uuidString)").path
    addTeardownBlock { try? FileManager.default.removeItem(atPath: directory) }
    return directory
  }

  /// A started in-process arbiter on a free port.
  func server(_ cluster: CertificateTestCluster, state: String, port: Int = 0) throws -> ArbiterServer {
    var logger = Logger(label: "arbiter-test")
    logger.logLevel = .critical
    let server = try ArbiterServer(
      host: "127.0.0.1", port: port, credentials: try cluster.credentials("arb"),
      store: try ArbiterStore(directory: state), logger: logger, idleTimeout: .seconds(5))
    try server.start()
    return server
  }

  func client(_ cluster: CertificateTestCluster, _ name: String, port: Int) throws -> ArbiterClient {
    try ArbiterClient(
      address: HostPort(host: "127.0.0.1", port: port), credentials: try cluster.credentials(name),
      timeout: .seconds(5))
  }

  func testMessagesRoundTripAndMalformedOnesAreRefused() throws {
    let record = ArbiterRecord(
      vm: "kv", generation: 7, holder: "vmm1", serviceAddress: "10.0.0.1:6379", replicationAddress: "10.0.0.1:7000")
    let messages: [ArbiterMessage] = [
      .testAndSet(vm: "kv", expectedGeneration: 3, node: "vmm1", serviceAddress: "a:1", replicationAddress: "b:2"),
      .query(vm: "kv"), .granted(record), .current(.unknown(vm: "kv")), .error(reason: "no"),
    ]
    for message in messages {
      let bytes = message.encoded
      XCTAssertNil(try ArbiterMessage.decode(bytes.dropLast()[...]), "a partial frame needs more bytes")
      let decoded = try XCTUnwrap(try ArbiterMessage.decode(bytes[...]))
      XCTAssertEqual(decoded.message, message)
      XCTAssertEqual(decoded.size, bytes.count)
    }
    var corrupt = ArbiterMessage.query(vm: "kv").encoded
    corrupt[10] ^= 0xFF
    XCTAssertThrowsError(try ArbiterMessage.decode(corrupt[...]))
    var unknown: [UInt8] = []
    LogFrame.frame(type: 99, body: [], into: &unknown)
    XCTAssertThrowsError(try ArbiterMessage.decode(unknown[...]))
    var trailing: [UInt8] = []
    LogFrame.frame(type: ArbiterMessage.FrameType.query, body: [1, 0, 65, 9], into: &trailing)
    XCTAssertThrowsError(try ArbiterMessage.decode(trailing[...]))
    var badFlag: [UInt8] = []
    var body: [UInt8] = []
    body.appendString("kv")
    body.append(littleEndian: UInt64(1))
    body.append(7)
    LogFrame.frame(type: ArbiterMessage.FrameType.current, body: body, into: &badFlag)
    XCTAssertThrowsError(try ArbiterMessage.decode(badFlag[...]))
    XCTAssertThrowsError(try ArbiterMessage.decode([0xFF, 0xFF, 0xFF, 0x7F][...]), "an absurd length")
  }

  func testGrantThenAStaleTestAndSetSeesTheWinner() throws {
    let cluster = try CertificateTestCluster.make(self)
    let server = try server(cluster, state: stateDirectory())
    defer { server.close() }
    let first = try client(cluster, "vmm1", port: server.port)
    let second = try client(cluster, "vmm2", port: server.port)
    defer {
      first.close()
      second.close()
    }
    XCTAssertEqual(try first.query(vm: "kv"), .unknown(vm: "kv"))
    let won = try first.testAndSet(
      vm: "kv", expectedGeneration: 0, serviceAddress: "127.0.0.1:6379", replicationAddress: "127.0.0.1:7000")
    let expected = ArbiterRecord(
      vm: "kv", generation: 1, holder: "vmm1", serviceAddress: "127.0.0.1:6379",
      replicationAddress: "127.0.0.1:7000")
    XCTAssertEqual(won, .granted(expected))
    // The raw answer to a stale test-and-set is `current` with the winner.
    XCTAssertEqual(
      try second.request(
        .testAndSet(vm: "kv", expectedGeneration: 0, node: "vmm2", serviceAddress: "x:1", replicationAddress: "x:2")),
      .current(expected))
    XCTAssertEqual(
      try second.testAndSet(vm: "kv", expectedGeneration: 0, serviceAddress: "x:1", replicationAddress: "x:2"),
      .lost(expected))
    // The next generation is won from the current one, on the same connection.
    let next = try second.testAndSet(vm: "kv", expectedGeneration: 1, serviceAddress: "x:1", replicationAddress: "x:2")
    XCTAssertEqual(
      next,
      .granted(ArbiterRecord(vm: "kv", generation: 2, holder: "vmm2", serviceAddress: "x:1", replicationAddress: "x:2"))
    )
    XCTAssertEqual(try first.query(vm: "kv").holder, "vmm2")
    // A retry of vmm1's first win (its answer lost) is recognised only while it still holds that generation.
    XCTAssertEqual(
      try first.testAndSet(vm: "kv", expectedGeneration: 0, serviceAddress: "127.0.0.1:6379", replicationAddress: ""),
      .lost(try first.query(vm: "kv")))
  }

  func testConcurrentTestAndSetHasExactlyOneWinner() throws {
    let cluster = try CertificateTestCluster.make(self)
    let server = try server(cluster, state: stateDirectory())
    defer { server.close() }
    for round in 0..<10 {
      let vm = "vm\(round)"
      let threads = try ["vmm1", "vmm2"].map { name in
        let client = try client(cluster, name, port: server.port)
        return try TLSTestThread { () throws -> ArbiterClient.Outcome in
          defer { client.close() }
          return try client.testAndSet(
            vm: vm, expectedGeneration: 0, serviceAddress: "\(name):1", replicationAddress: "\(name):2")
        }
      }
      let outcomes = try threads.map { try $0.finish() }
      let winners = outcomes.compactMap { outcome -> ArbiterRecord? in
        if case .granted(let record) = outcome { return record }
        return nil
      }
      XCTAssertEqual(winners.count, 1, "\(outcomes)")
      let winner = try XCTUnwrap(winners.first)
      XCTAssertEqual(winner.generation, 1)
      XCTAssertTrue(outcomes.contains(.lost(winner)), "the loser sees the winner: \(outcomes)")
      XCTAssertEqual(server.store.record(vm: vm), winner)
    }
  }

  func testRecordsSurviveARestartAndCorruptOnesStopIt() throws {
    let cluster = try CertificateTestCluster.make(self)
    let state = stateDirectory()
    let granted: ArbiterRecord
    do {
      let server = try server(cluster, state: state)
      defer { server.close() }
      let client = try client(cluster, "vmm1", port: server.port)
      defer { client.close() }
      _ = try client.testAndSet(vm: "kv", expectedGeneration: 0, serviceAddress: "s:1", replicationAddress: "r:1")
      guard
        case .granted(let record) = try client.testAndSet(
          vm: "kv", expectedGeneration: 1, serviceAddress: "s:2", replicationAddress: "r:2")
      else { return XCTFail("not granted") }
      granted = record
      _ = try client.testAndSet(vm: "db", expectedGeneration: 0, serviceAddress: "", replicationAddress: "")
    }
    let restarted = try server(cluster, state: state)
    let client = try client(cluster, "ops", port: restarted.port)
    XCTAssertEqual(try client.query(vm: "kv"), granted)
    XCTAssertEqual(try client.query(vm: "db").generation, 1)
    client.close()
    restarted.close()
    XCTAssertFalse(
      try FileManager.default.contentsOfDirectory(atPath: state).contains { $0.hasSuffix(".tmp") },
      "no temporary file is left")

    // A corrupt record refuses to start, naming the file.
    let path = state + "/kv.record"
    var bytes = try XCTUnwrap(FileManager.default.contents(atPath: path))
    bytes[bytes.count - 6] ^= 0x01
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    XCTAssertThrowsError(try ArbiterStore(directory: state)) { error in
      let error = error as? ArbiterError
      XCTAssertEqual(error?.kind, .corruptRecord)
      XCTAssertTrue(error?.message.contains(path) ?? false, "\(String(describing: error))")
    }
    try Data().write(to: URL(fileURLWithPath: path))
    XCTAssertThrowsError(try ArbiterStore(directory: state))
  }

  func testOperatorMayOnlyQueryAndAVMMOnlyInItsOwnName() throws {
    let cluster = try CertificateTestCluster.make(self)
    let server = try server(cluster, state: stateDirectory())
    defer { server.close() }
    let operatorClient = try client(cluster, "ops", port: server.port)
    let vmm = try client(cluster, "vmm1", port: server.port)
    defer {
      operatorClient.close()
      vmm.close()
    }
    XCTAssertThrowsError(
      try operatorClient.testAndSet(
        vm: "kv", expectedGeneration: 0, node: "ops", serviceAddress: "", replicationAddress: "")
    ) { error in
      XCTAssertEqual((error as? ArbiterError)?.kind, .refused, "\(error)")
      XCTAssertTrue("\(error)".contains("only a VMM"), "\(error)")
    }
    XCTAssertThrowsError(
      try operatorClient.testAndSet(
        vm: "kv", expectedGeneration: 0, node: "vmm1", serviceAddress: "", replicationAddress: "")
    ) { error in XCTAssertEqual((error as? ArbiterError)?.kind, .refused, "\(error)") }
    XCTAssertThrowsError(
      try vmm.testAndSet(vm: "kv", expectedGeneration: 0, node: "vmm2", serviceAddress: "", replicationAddress: "")
    ) { error in
      XCTAssertEqual((error as? ArbiterError)?.kind, .refused, "\(error)")
      XCTAssertTrue("\(error)".contains("own name"), "\(error)")
    }
    XCTAssertThrowsError(
      try vmm.testAndSet(vm: "../etc", expectedGeneration: 0, serviceAddress: "", replicationAddress: ""))
    // Nothing was decided, and both may still use their connections.
    XCTAssertEqual(try operatorClient.query(vm: "kv"), .unknown(vm: "kv"))
    XCTAssertEqual(
      try vmm.testAndSet(vm: "kv", expectedGeneration: 0, serviceAddress: "", replicationAddress: "").record.holder,
      "vmm1")
    XCTAssertEqual(try operatorClient.query(vm: "kv").generation, 1)
    XCTAssertEqual(server.store.all.count, 1)
  }

  func testMalformedFramesAreAnsweredAndTheServerKeepsServing() throws {
    let cluster = try CertificateTestCluster.make(self)
    let server = try server(cluster, state: stateDirectory())
    defer { server.close() }
    let vmm = try client(cluster, "vmm1", port: server.port)
    defer { vmm.close() }
    var corrupt = ArbiterMessage.query(vm: "kv").encoded
    corrupt[9] ^= 0x55
    var unknown: [UInt8] = []
    LogFrame.frame(type: 77, body: [1, 2, 3], into: &unknown)
    let huge: [UInt8] = [0xFF, 0xFF, 0x00, 0x00] + [UInt8](repeating: 0, count: 60)
    for bytes in [corrupt, unknown, huge] {
      do {
        let answer = try vmm.send(bytes)
        guard case .error(let reason) = answer else { return XCTFail("answered \(answer)") }
        XCTAssertTrue(reason.contains("malformed"), reason)
      } catch {
        XCTAssertEqual(error.kind, .unreachable, "the connection closed: \(error)")
      }
      // An answer is not a request.
      XCTAssertEqual(try vmm.request(.error(reason: "hello")).isRequest, false)
      XCTAssertEqual(try vmm.query(vm: "kv"), .unknown(vm: "kv"), "the server still serves")
    }
    // A peer that vanishes in the middle of a frame does not hurt anyone.
    let stream = try TLSStream.connect(
      host: "127.0.0.1", port: server.port,
      context: TLSContext(credentials: cluster.credentials("vmm2"), side: .client),
      timeout: .seconds(5))
    try stream.write(Array(ArbiterMessage.query(vm: "kv").encoded.prefix(7)))
    stream.close()
    XCTAssertEqual(try vmm.query(vm: "kv"), .unknown(vm: "kv"))
  }

  func testAKilledArbiterProcessKeepsItsRecords() throws {
    let binary = GuestHarness.root.appendingPathComponent(".build/debug/arbiter").path
    guard FileManager.default.isExecutableFile(atPath: binary) else {
      throw XCTSkip("\(binary) is not built (swift build)")
    }
    let cluster = try CertificateTestCluster.make(self)
    let state = stateDirectory()
    let port = try freePort()

    func launch() throws -> Process {
      let process = Process()
      process.executableURL = URL(fileURLWithPath: binary)
      process.arguments = [
        "--listen", "127.0.0.1:\(port)", "--state-dir", state, "--tls-dir", cluster.path("arb"), "--log-level",
        "warning",
      ]
      try process.run()
      addTeardownBlock {
        if process.isRunning {
          kill(process.processIdentifier, SIGKILL)
          process.waitUntilExit()
        }
      }
      return process
    }
    /// Retries while the arbiter starts.
    func untilUp<T>(_ body: () throws -> T) throws -> T {
      let deadline = Date().addingTimeInterval(20)
      while true {
        do {
          return try body()
        } catch let error as ArbiterError where error.kind == .unreachable && Date() < deadline {
          usleep(50_000)
        }
      }
    }

    let first = try launch()
    let vmm = try client(cluster, "vmm1", port: port)
    let outcome = try untilUp {
      try vmm.testAndSet(vm: "kv", expectedGeneration: 0, serviceAddress: "s:1", replicationAddress: "r:1")
    }
    guard case .granted(let record) = outcome else { return XCTFail("not granted: \(outcome)") }
    kill(first.processIdentifier, SIGKILL)
    first.waitUntilExit()
    XCTAssertEqual(first.terminationReason, .uncaughtSignal)
    vmm.close()

    let second = try launch()
    let operatorClient = try client(cluster, "ops", port: port)
    defer { operatorClient.close() }
    XCTAssertEqual(try untilUp { try operatorClient.query(vm: "kv") }, record)
    let vmm2 = try client(cluster, "vmm2", port: port)
    defer { vmm2.close() }
    XCTAssertEqual(
      try vmm2.testAndSet(vm: "kv", expectedGeneration: 0, serviceAddress: "", replicationAddress: ""), .lost(record))
    kill(second.processIdentifier, SIGTERM)
    second.waitUntilExit()
    XCTAssertEqual(second.terminationStatus, 0, "SIGTERM stops the arbiter cleanly")
  }

  /// A port free right now (bound to 0 and released).
  func freePort() throws -> Int {
    let listener = try TLSListener(
      host: "127.0.0.1", port: 0,
      context: TLSContext(credentials: CertificateTestCluster.make(self).credentials("arb"), side: .server))
    defer { listener.close() }
    return listener.port
  }
}

extension ArbiterClient.Outcome {
  /// The record, won or lost.
  var record: ArbiterRecord {
    switch self {
    case .granted(let record), .lost(let record): record
    }
  }
}
