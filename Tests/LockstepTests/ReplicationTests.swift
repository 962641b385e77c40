import Foundation
import XCTest

@testable import Lockstep

/// Primary and backup as real processes on loopback, over mutual TLS.
final class ReplicationTests: XCTestCase {
  /// A child process whose output goes to files.
  final class Child {
    let process = Process()
    let stdoutPath: String
    let stderrPath: String

    init(_ binary: String, _ arguments: [String]) throws {
      let url = GuestHarness.root.appendingPathComponent(".build/debug/\(binary)")
      guard FileManager.default.isExecutableFile(atPath: url.path) else { throw XCTSkip("\(binary) is not built") }
      stdoutPath = GuestHarness.temporaryPath("\(binary).out")
      stderrPath = GuestHarness.temporaryPath("\(binary).err")
      _ = FileManager.default.createFile(atPath: stdoutPath, contents: nil)
      _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
      process.executableURL = url
      process.arguments = arguments
      process.currentDirectoryURL = GuestHarness.root
      process.standardOutput = FileHandle(forWritingAtPath: stdoutPath)
      process.standardError = FileHandle(forWritingAtPath: stderrPath)
      try process.run()
    }

    deinit {
      if process.isRunning { kill(process.processIdentifier, SIGKILL) }
      unlink(stdoutPath)
      unlink(stderrPath)
    }

    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }
    var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }

    func signal(_ number: Int32) { kill(process.processIdentifier, number) }

    /// Waits for the process to end (at most `seconds`); returns its status or nil.
    func wait(seconds: Double) -> Int32? {
      let deadline = Date().addingTimeInterval(seconds)
      while process.isRunning && Date() < deadline { usleep(20_000) }
      return process.isRunning ? nil : process.terminationStatus
    }

    /// Waits until stderr contains `text` (at most `seconds`).
    func waitFor(_ text: String, seconds: Double = 20) -> Bool {
      let deadline = Date().addingTimeInterval(seconds)
      while Date() < deadline {
        if stderr.contains(text) { return true }
        usleep(20_000)
      }
      return false
    }
  }

  var certificates = ""

  override func setUpWithError() throws {
    certificates = GuestHarness.temporaryPath("certs")
    _ = try ClusterCertificates.initialize(
      directory: certificates,
      nodes: [
        try NodeIdentity(name: "node-a", role: .vmm), try NodeIdentity(name: "node-b", role: .vmm),
      ], days: 30, force: false)
  }

  override func tearDownWithError() throws {
    try? FileManager.default.removeItem(atPath: certificates)
  }

  static func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
        bind(fd, pointer, length)
        return getsockname(fd, pointer, &length)
      }
    }
    return Int(UInt16(bigEndian: address.sin_port))
  }

  func startPair(
    backupGuest: String = "callcheck", backupCertificates: String? = nil, replicationPort: Int? = nil
  ) throws -> (primary: Child, backup: Child, service: Int, disks: [String]) {
    let service = Self.freePort()
    let replication = replicationPort ?? Self.freePort()
    let disks = [GuestHarness.temporaryPath("a.img"), GuestHarness.temporaryPath("b.img")]
    let primary = try Child(
      "primary-vmm",
      [
        "--vm", "kv", "--guest", "Guest/build/callcheck.elf", "--guest-args", "net", "--serve",
        "127.0.0.1:\(service)", "--replication", "127.0.0.1:\(replication)", "--tls-dir",
        "\(certificates)/node-a", "--disk", disks[0], "--disk-size", "1M",
      ])
    XCTAssertTrue(primary.waitFor("waiting for a backup"), primary.stderr)
    let backup = try Child(
      "backup-vmm",
      [
        "--vm", "kv", "--guest", "Guest/build/\(backupGuest).elf", "--primary", "127.0.0.1:\(replication)",
        "--tls-dir", backupCertificates ?? "\(certificates)/node-b", "--disk", disks[1],
      ])
    return (primary, backup, service, disks)
  }

  func testBackupReplaysToThePrimarysExactFinalState() throws {
    let (primary, backup, service, disks) = try startPair()
    defer { for disk in disks { unlink(disk) } }
    XCTAssertTrue(primary.waitFor("serving clients"), primary.stderr + backup.stderr)
    try NetDeviceTests.conversation(port: service)
    XCTAssertEqual(primary.wait(seconds: 30), 0, primary.stderr)
    XCTAssertEqual(backup.wait(seconds: 30), 0, backup.stderr)
    XCTAssertTrue(backup.stderr.contains("replay reached the primary's final state exactly"), backup.stderr)
    // Same exits, same memory hash, printed by both.
    func digests(_ log: String) -> String? {
      guard let range = log.range(of: "trace=") else { return nil }
      return String(log[range.lowerBound...].prefix(45))
    }
    XCTAssertNotNil(digests(primary.stderr))
    XCTAssertEqual(digests(primary.stderr), digests(backup.stderr))
  }

  func testBackupThatLosesTheChannelResumesFromItsLastAcknowledgement() throws {
    let replicationPort = Self.freePort()
    let (primary, backup, service, disks) = try startPair(replicationPort: replicationPort)
    defer { for disk in disks { unlink(disk) } }
    XCTAssertTrue(primary.waitFor("serving clients"), primary.stderr + backup.stderr)
    let client = try TestClient(port: service)
    try client.send("one\n")
    XCTAssertEqual(try client.receive(count: 4), Array("one\n".utf8))
    // Cut the channel's TCP connection under both processes (ss -K).
    let cut = Process()
    cut.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    cut.arguments = ["ss", "-K", "dst", "127.0.0.1", "dport", "=", ":\(replicationPort)"]
    cut.standardOutput = FileHandle.nullDevice
    cut.standardError = FileHandle.nullDevice
    try cut.run()
    cut.waitUntilExit()
    XCTAssertTrue(backup.waitFor("logging channel resumed"), backup.stderr)
    try client.send("two\n")
    XCTAssertEqual(try client.receive(count: 4), Array("two\n".utf8))
    try client.send("quit\n")
    _ = try? client.receive(count: 5)
    let last = try TestClient(port: service)
    try last.send("shutdown\n")
    XCTAssertEqual(primary.wait(seconds: 30), 0, primary.stderr)
    XCTAssertEqual(backup.wait(seconds: 30), 0, backup.stderr)
    XCTAssertTrue(backup.stderr.contains("replay reached the primary's final state exactly"), backup.stderr)
  }

  func testStoppedBackupHoldsEveryReplyUntilItContinues() throws {
    let (primary, backup, service, disks) = try startPair()
    defer { for disk in disks { unlink(disk) } }
    XCTAssertTrue(primary.waitFor("serving clients"), primary.stderr + backup.stderr)
    let client = try TestClient(port: service, timeoutSeconds: 1)
    try client.send("before\n")
    XCTAssertEqual(try client.receive(count: 7), Array("before\n".utf8))
    backup.signal(SIGSTOP)
    usleep(200_000)
    var sent: [UInt8] = []
    for index in 0..<20 {
      let line = Array("held \(index)\n".utf8)
      try client.send(line)
      sent += line
    }
    // Nothing comes back while the backup cannot acknowledge.
    XCTAssertThrowsError(try client.receive(count: 1), "a reply left before the backup acknowledged it")
    backup.signal(SIGCONT)
    let deadline = Date().addingTimeInterval(10)
    var received: [UInt8] = []
    while received.count < sent.count && Date() < deadline {
      if let more = try? client.receive(count: 1) { received += more }
    }
    XCTAssertEqual(received, sent, "replies lost or reordered after SIGCONT")
    try client.send("quit\n")
    _ = try? client.receive(count: 5)
    let last = try TestClient(port: service)
    try last.send("shutdown\n")
    XCTAssertEqual(primary.wait(seconds: 30), 0, primary.stderr)
    XCTAssertEqual(backup.wait(seconds: 30), 0, backup.stderr)
  }

  func testBackupWithAnotherGuestImageIsRefused() throws {
    let (primary, backup, _, disks) = try startPair(backupGuest: "bench")
    defer {
      primary.signal(SIGTERM)
      _ = primary.wait(seconds: 10)
      for disk in disks { unlink(disk) }
    }
    XCTAssertEqual(backup.wait(seconds: 30), 1, backup.stderr)
    XCTAssertTrue(backup.stderr.contains("refused this backup"), backup.stderr)
    XCTAssertTrue(backup.stderr.contains("different guest image"), backup.stderr)
    XCTAssertTrue(primary.stderr.contains("different guest image"), primary.stderr)
    XCTAssertFalse(primary.stderr.contains("serving clients"), "the guest started without a backup")
  }

  func testBackupFromAnotherClusterGetsNothing() throws {
    let foreign = GuestHarness.temporaryPath("foreign")
    defer { try? FileManager.default.removeItem(atPath: foreign) }
    _ = try ClusterCertificates.initialize(
      directory: foreign, nodes: [try NodeIdentity(name: "node-b", role: .vmm)], days: 30, force: false)
    let (primary, backup, _, disks) = try startPair(backupCertificates: "\(foreign)/node-b")
    defer {
      primary.signal(SIGTERM)
      _ = primary.wait(seconds: 10)
      for disk in disks { unlink(disk) }
    }
    XCTAssertEqual(backup.wait(seconds: 40), 1, backup.stderr)
    XCTAssertFalse(backup.stderr.contains("attached to the primary"), backup.stderr)
    XCTAssertFalse(primary.stderr.contains("backup attached"), primary.stderr)
    XCTAssertFalse(primary.stderr.contains("serving clients"), primary.stderr)
  }
}
