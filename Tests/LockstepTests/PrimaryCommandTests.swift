import Foundation
import XCTest

/// The `primary-vmm` executable as users run it.
final class PrimaryCommandTests: XCTestCase {
  /// Runs the built primary-vmm with `arguments`; returns status and output.
  func primary(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
    let binary = GuestHarness.root.appendingPathComponent(".build/debug/primary-vmm")
    let executable =
      FileManager.default.isExecutableFile(atPath: binary.path)
      ? binary : GuestHarness.root.appendingPathComponent(".build/release/primary-vmm")
    guard FileManager.default.isExecutableFile(atPath: executable.path) else {
      throw XCTSkip("primary-vmm is not built")
    }
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    process.currentDirectoryURL = GuestHarness.root
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

  func testStandaloneRunsTheGuestAndSaysFaultToleranceIsOff() throws {
    let run = try primary([
      "--vm", "cli", "--guest", "Guest/build/callcheck.elf", "--standalone", "--guest-args", "cli",
    ])
    XCTAssertEqual(run.status, 0, run.stderr)
    XCTAssertTrue(run.stdout.contains("CALLCHECK DONE"), run.stdout)
    XCTAssertTrue(run.stderr.contains("STANDALONE"), run.stderr)
    XCTAssertTrue(run.stderr.contains("guest exited with code 0"), run.stderr)
  }

  func testMisbehavingGuestExitsWithStatus70AndAReport() throws {
    let run = try primary([
      "--vm", "bad", "--guest", "Guest/build/misbehave.elf", "--standalone", "--guest-args", "null-deref",
    ])
    XCTAssertEqual(run.status, 70, run.stderr)
    XCTAssertTrue(run.stderr.contains("#PF page fault"), run.stderr)
  }

  func testMissingKVMIsOneClearLine() throws {
    let run = try primary([
      "--vm", "x", "--guest", "Guest/build/callcheck.elf", "--standalone", "--kvm-device", "/nonexistent/kvm",
    ])
    XCTAssertEqual(run.status, 1)
    let errors = run.stderr.split(separator: "\n").filter { $0.contains("error") }
    XCTAssertEqual(errors.count, 1, run.stderr)
    XCTAssertTrue(run.stderr.contains("/nonexistent/kvm is not usable: it does not exist"), run.stderr)
    XCTAssertFalse(run.stderr.contains("Fatal error"), run.stderr)
  }

  func testBadFlagsAreExplained() throws {
    let noStandalone = try primary(["--vm", "x", "--guest", "Guest/build/callcheck.elf"])
    XCTAssertNotEqual(noStandalone.status, 0)
    XCTAssertTrue(noStandalone.stderr.contains("--standalone"), noStandalone.stderr)
    let badMemory = try primary([
      "--vm", "x", "--guest", "Guest/build/callcheck.elf", "--standalone", "--memory", "lots",
    ])
    XCTAssertNotEqual(badMemory.status, 0)
    XCTAssertTrue(badMemory.stderr.contains("--memory 'lots' is not a size"), badMemory.stderr)
    let oddMemory = try primary(["--vm", "x", "--guest", "Guest/build/callcheck.elf", "--standalone", "--memory", "5M"])
    XCTAssertEqual(oddMemory.status, 1)
    XCTAssertTrue(oddMemory.stderr.contains("multiple of 2 MiB"), oddMemory.stderr)
    let badImage = try primary(["--vm", "x", "--guest", "/etc/hostname", "--standalone"])
    XCTAssertEqual(badImage.status, 1)
    XCTAssertTrue(badImage.stderr.contains("invalid guest image"), badImage.stderr)
  }

  func testSigtermStopsAServingVMGracefully() throws {
    let binary = GuestHarness.root.appendingPathComponent(".build/debug/primary-vmm")
    guard FileManager.default.isExecutableFile(atPath: binary.path) else { throw XCTSkip("primary-vmm is not built") }
    let process = Process()
    process.executableURL = binary
    process.arguments = [
      "--vm", "term", "--guest", "Guest/build/callcheck.elf", "--standalone", "--guest-args", "net", "--serve",
      "127.0.0.1:0",
    ]
    process.currentDirectoryURL = GuestHarness.root
    let err = Pipe()
    process.standardError = err
    process.standardOutput = Pipe()
    try process.run()
    Thread.sleep(forTimeInterval: 1.0)
    process.terminate()
    let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    XCTAssertEqual(process.terminationReason, .exit, stderr)
    XCTAssertEqual(process.terminationStatus, 0, stderr)
    XCTAssertTrue(stderr.contains("stopped on request"), stderr)
  }

  func testRecordingStoppedBySigtermReplaysIdentically() throws {
    let log = GuestHarness.temporaryPath("stopped.log")
    defer { unlink(log) }
    let port = ReplicationTests.freePort()
    let primary = try ReplicationTests.Child(
      "primary-vmm",
      [
        "--vm", "rec", "--guest", "Guest/build/callcheck.elf", "--standalone", "--guest-args", "net", "--serve",
        "127.0.0.1:\(port)", "--record-file", log, "--verify-registers",
      ])
    XCTAssertTrue(primary.waitFor("serving clients"), primary.stderr)
    let client = try TestClient(port: port)
    try client.send("recorded\n")
    XCTAssertEqual(try client.receive(count: 9), Array("recorded\n".utf8))
    primary.signal(SIGTERM)
    XCTAssertEqual(primary.wait(seconds: 20), 0, primary.stderr)
    let replay = try ReplicationTests.Child(
      "lockstep", ["replay", "--guest", "Guest/build/callcheck.elf", "--log", log])
    XCTAssertEqual(replay.wait(seconds: 60), 0, replay.stdout + replay.stderr)
    XCTAssertTrue(replay.stdout.contains("result: identical to the recording"), replay.stdout)
    XCTAssertTrue(replay.stdout.contains("where the recorded VM was stopped"), replay.stdout)
  }
}
