import XCTest

@testable import Lockstep

/// The every-call guest on real KVM: each hypercall's result is checked by
/// the guest and reported on its console.
final class CallCheckGuestTests: XCTestCase {
  func testEveryCallWithDisk() throws {
    let disk = GuestHarness.temporaryPath("callcheck.img")
    defer { unlink(disk) }
    let (report, console) = try GuestHarness.run(
      GuestHarness.configuration("callcheck", arguments: "checks", disk: disk, diskSize: 1 << 20))
    XCTAssertEqual(report.stop, .exited(code: 0), console)
    let checks = console.split(separator: "\n").filter { $0.hasPrefix("CHECK ") }
    XCTAssertGreaterThanOrEqual(checks.count, 20, console)
    for check in checks {
      XCTAssertTrue(check.split(separator: " ").dropFirst(2).first == "ok", "failed: \(check)")
    }
    for name in [
      "nop", "console", "clock", "entropy", "wait-poll", "wait-deadline", "unknown-op", "block-rw", "net-attach",
      "net-flush",
    ] {
      XCTAssertTrue(checks.contains { $0.hasPrefix("CHECK \(name) ok") }, "no passing check \(name):\n\(console)")
    }
    XCTAssertTrue(console.contains("CALLCHECK DONE"), console)
    XCTAssertTrue(console.contains("failed=0"), console)
    XCTAssertTrue(console.contains("ARGS checks"), console)
  }

  func testWithoutDiskBlockCallsAnswerNoDevice() throws {
    let (report, console) = try GuestHarness.run(GuestHarness.configuration("callcheck"))
    XCTAssertEqual(report.stop, .exited(code: 0), console)
    XCTAssertTrue(console.contains("CHECK block-nodev ok"), console)
  }

  func testDiskSizeMismatchIsRefused() throws {
    let disk = GuestHarness.temporaryPath("mismatch.img")
    defer { unlink(disk) }
    _ = try BlockDevice(path: disk, createSize: 1 << 20)
    XCTAssertThrowsError(try BlockDevice(path: disk, createSize: 2 << 20)) { error in
      XCTAssertTrue("\(error)".contains("refusing to resize"), "\(error)")
    }
    XCTAssertThrowsError(try BlockDevice(path: disk + ".missing", createSize: nil)) { error in
      XCTAssertTrue("\(error)".contains("give --disk-size"), "\(error)")
    }
    XCTAssertThrowsError(try BlockDevice(path: disk + ".odd", createSize: 1000)) { error in
      XCTAssertTrue("\(error)".contains("multiple of 512"), "\(error)")
    }
    XCTAssertEqual(try BlockDevice(path: disk, createSize: nil).size, 1 << 20)
  }

  func testDiskKeepsDataAcrossRuns() throws {
    let disk = GuestHarness.temporaryPath("persist.img")
    defer { unlink(disk) }
    let device = try BlockDevice(path: disk, createSize: 1 << 20)
    let pattern = [UInt8](repeating: 0xA5, count: 512)
    XCTAssertEqual(pattern.withUnsafeBytes { device.write($0, offset: 4096) }, 0)
    XCTAssertEqual(device.flush(), 0)
    let again = try BlockDevice(path: disk, createSize: nil)
    XCTAssertEqual(again.read(offset: 4096, count: 512).bytes, pattern)
    XCTAssertFalse(again.isValid(offset: 1 << 20, count: 512))
    XCTAssertFalse(again.isValid(offset: 100, count: 512))
    XCTAssertFalse(again.isValid(offset: UInt64.max - 511, count: 1024))
    XCTAssertTrue(again.isValid(offset: (1 << 20) - 512, count: 512))
  }
}
