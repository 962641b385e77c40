import XCTest

@testable import Lockstep

/// The same guest with the same inputs gives the same execution: identical
/// exit trace (sequence, RIP, kind) and identical final memory.
final class DeterminismTests: XCTestCase {
  func testSameInputsSameTraceAndMemory() throws {
    let diskA = GuestHarness.temporaryPath("det-a.img")
    let diskB = GuestHarness.temporaryPath("det-b.img")
    let diskC = GuestHarness.temporaryPath("det-c.img")
    defer { for disk in [diskA, diskB, diskC] { unlink(disk) } }

    // Run 1: live, with real clients; every input recorded.
    let recorder = RecordingInputs()
    let first = try NetDeviceTests.echoSession(inputs: { recorder }, disk: diskA)
    XCTAssertEqual(first.clientErrors, [])
    XCTAssertEqual(first.report.stop, .exited(code: 0), first.console)
    let entries = recorder.entries
    XCTAssertTrue(entries.contains { $0.kind == .wait }, "no network input was recorded")
    XCTAssertTrue(entries.contains { $0.kind == .clock })
    XCTAssertTrue(entries.contains { $0.kind == .entropy })

    // Run 2: the same inputs, no network at all.
    let second = try GuestHarness.run(
      GuestHarness.configuration("callcheck", arguments: "net", disk: diskB, diskSize: 1 << 20),
      inputs: { ReplayingInputs(entries) })
    XCTAssertEqual(second.report.stop, .exited(code: 0), second.console)
    if let difference = second.report.trace.firstDifference(from: first.report.trace) {
      XCTFail(
        "traces differ at exit \(difference.index): \(String(describing: difference.mine)) vs \(String(describing: difference.theirs))"
      )
    }
    XCTAssertEqual(second.report.exits, first.report.exits)
    XCTAssertEqual(second.report.traceDigest, first.report.traceDigest)
    XCTAssertEqual(second.report.memoryDigest, first.report.memoryDigest)
    XCTAssertEqual(second.console, first.console)

    // Run 3: one clock reading changed (the guest prints it): the execution differs.
    var tampered = entries
    guard let index = tampered.firstIndex(where: { $0.kind == .clock }) else { return XCTFail("no clock input") }
    tampered[index].encoded[0] ^= 0x40
    let tamperedEntries = tampered
    let third = try GuestHarness.run(
      GuestHarness.configuration("callcheck", arguments: "net", disk: diskC, diskSize: 1 << 20),
      inputs: { ReplayingInputs(tamperedEntries) })
    XCTAssertNotEqual(third.console, first.console, "a changed clock reading went unnoticed")
  }
}
