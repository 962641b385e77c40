import XCTest

@testable import Lockstep

/// A hostile guest can only fail itself: each misbehaviour stops that VM
/// with a clear report, and the VMM (this very process) carries on and
/// runs the next VM normally.
final class MisbehavingGuestTests: XCTestCase {
  func check(_ mode: String, file: StaticString = #filePath, line: UInt = #line, _ expect: (MachineStop) -> Bool)
    throws
  {
    let (report, console) = try GuestHarness.run(GuestHarness.configuration("misbehave", arguments: mode))
    XCTAssertTrue(console.contains("MISBEHAVE \(mode)"), console, file: file, line: line)
    XCTAssertTrue(expect(report.stop), "\(mode): \(report.stop)", file: file, line: line)
  }

  func testEachMisbehaviourStopsOnlyThatVM() throws {
    try check("wild-descriptor") { "\($0)".contains("hypercall descriptor range [0x7fff00000000") }
    try check("wild-buffer") {
      "\($0)".contains("console.write buffer range") && "\($0)".contains("outside guest memory")
    }
    try check("huge-length") { "\($0)".contains("console.write buffer range") }
    try check("bad-ring") { "\($0)".contains("tx ring indices") }
    try check("bad-ring-attach") { "\($0)".contains("net.attach: rx ring range") }
    try check("null-deref") {
      guard case .fault(let fault) = $0 else { return false }
      return fault.vector == 14 && fault.faultAddress == 0 && fault.privilegeLevel == 3
        && "\(fault)".contains("write of 0x0, not mapped")
    }
    try check("privileged") {
      guard case .fault(let fault) = $0 else { return false }
      return fault.vector == 13 && fault.instructionPointer >= 0x100000
    }
    try check("ud2") {
      guard case .fault(let fault) = $0 else { return false }
      return fault.vector == 6 && "\(fault)".contains("#UD invalid opcode")
    }
    try check("divide-zero") {
      guard case .fault(let fault) = $0 else { return false }
      return fault.vector == 0
    }
    try check("abort") { $0 == .aborted(message: "misbehave: deliberate abort", at: abortPoint($0)) }
    try check("stack-overflow") {
      // The fault lands in the unmapped guard page below the stack.
      guard case .fault(let fault) = $0, let address = fault.faultAddress else { return false }
      let guardPage = (64 << 20) - BootLayout.stackSize - BootLayout.guardSize
      return fault.vector == 14 && (guardPage..<(guardPage + BootLayout.guardSize)).contains(address)
    }
    try check("fault-doorbell") { "\($0)".contains("fault doorbell from ring 3") }
    try check("exit-7") { $0 == .exited(code: 7) }

    // The VMM is still healthy: a well-behaved guest runs to completion.
    let (report, console) = try GuestHarness.run(GuestHarness.configuration("callcheck"))
    XCTAssertEqual(report.stop, .exited(code: 0), console)
  }

  private func abortPoint(_ stop: MachineStop) -> ExitPoint {
    if case .aborted(_, let point) = stop { return point }
    return ExitPoint(sequence: .max, instructionPointer: 0)
  }

  func testHostileImagesAreRefusedBeforeBoot() throws {
    var image = try GuestHarness.image("callcheck")
    image[0] = 0
    let configuration = MachineConfiguration(
      name: "bad", image: image, imagePath: "bad.elf", memorySize: 64 << 20)
    XCTAssertThrowsError(try GuestHarness.run(configuration)) { error in
      XCTAssertTrue("\(error)".contains("bad.elf: invalid guest image: bad magic"), "\(error)")
    }
    let tiny = MachineConfiguration(
      name: "tiny", image: try GuestHarness.image("callcheck"), imagePath: "ok.elf", memorySize: 3 << 20)
    XCTAssertThrowsError(try GuestHarness.run(tiny)) { error in
      XCTAssertTrue("\(error)".contains("memory size"), "\(error)")
    }
  }
}
