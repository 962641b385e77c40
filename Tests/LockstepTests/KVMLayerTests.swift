import XCTest

@testable import Lockstep

/// The KVM layer's own logic: handles, errors, memory bounds, CPUID.
final class KVMLayerTests: XCTestCase {
  func testMissingDeviceIsAOneLineExplanation() {
    XCTAssertThrowsError(try KVMSystem(path: "/nonexistent/kvm")) { error in
      let text = "\(error)"
      XCTAssertTrue(text.hasPrefix("/nonexistent/kvm is not usable: it does not exist."), text)
      XCTAssertTrue(text.contains("/dev/kvm"), text)
      XCTAssertFalse(text.contains("\n"), text)
    }
  }

  func testNonKVMDeviceIsRefused() {
    // /dev/null opens but answers no KVM ioctl.
    XCTAssertThrowsError(try KVMSystem(path: "/dev/null")) { error in
      XCTAssertTrue("\(error)".contains("API version"), "\(error)")
    }
  }

  func testSystemErrorCarriesOperationAndErrno() {
    let error = SystemError("ioctl(KVM_RUN)", errno: EBADF)
    XCTAssertEqual(error.errno, EBADF)
    XCTAssertTrue(
      error.description.hasPrefix("ioctl(KVM_RUN) failed: Bad file descriptor (errno 9)"), error.description)
  }

  func testSystemCallRetriesInterruptedCalls() throws {
    var attempts = 0
    let result = try systemCall("test") { () -> Int32 in
      attempts += 1
      if attempts < 3 {
        errno = EINTR
        return -1
      }
      return 42
    }
    XCTAssertEqual(result, 42)
    XCTAssertEqual(attempts, 3)
    XCTAssertThrowsError(
      try systemCall("failing") { () -> Int32 in
        errno = EACCES
        return -1
      }
    ) { error in
      XCTAssertEqual((error as? SystemError)?.errno, EACCES)
      XCTAssertEqual((error as? SystemError)?.operation, "failing")
    }
  }

  func testGuestRangesAreBoundsChecked() throws {
    let memory = try GuestMemory(size: 4 << 20, userBase: 1 << 20)
    XCTAssertNoThrow(try memory.guestRange(1 << 20, count: 3 << 20))
    XCTAssertNoThrow(try memory.guestRange((4 << 20) - 8, count: 8))
    XCTAssertNoThrow(try memory.guestRange(4 << 20, count: 0))
    // Below the user base: the VMM's page tables and descriptor tables.
    XCTAssertThrowsError(try memory.guestRange(0x1000, count: 8))
    XCTAssertThrowsError(try memory.guestRange((1 << 20) - 1, count: 2))
    // Past the end, and wrapping around.
    XCTAssertThrowsError(try memory.guestRange((4 << 20) - 7, count: 8))
    XCTAssertThrowsError(try memory.guestRange(UInt64.max - 3, count: 8))
    XCTAssertThrowsError(try memory.guestRange(1 << 20, count: UInt64.max)) { error in
      XCTAssertTrue("\(error)".contains("outside guest memory [0x100000, 0x400000)"), "\(error)")
    }
    try memory.store(UInt64(0x1122_3344_5566_7788), at: 2 << 20)
    XCTAssertEqual(try memory.load(UInt32.self, at: 2 << 20), 0x5566_7788)
    XCTAssertEqual(try memory.read(2 << 20, count: 2), [0x88, 0x77])
    XCTAssertNoThrow(try memory.systemRange(0, count: 4096))
    XCTAssertThrowsError(try memory.systemRange(4 << 20, count: 1))
  }

  func testCPUIDTableIsFixedAndHidesNondeterministicFeatures() {
    let table = CPUIDTable.lockstep
    XCTAssertEqual(table.fingerprint, CPUIDTable.lockstep.fingerprint)
    guard let leaf1 = table.entries.first(where: { $0.function == 1 }),
      let leaf7 = table.entries.first(where: { $0.function == 7 }),
      let extended = table.entries.first(where: { $0.function == 0x8000_0001 })
    else { return XCTFail("missing leaves") }
    XCTAssertEqual(leaf1.ecx & (1 << 30), 0, "RDRAND advertised")
    XCTAssertEqual(leaf1.ecx & (1 << 31), 0, "hypervisor bit advertised")
    XCTAssertEqual(leaf7.ebx & (1 << 18), 0, "RDSEED advertised")
    XCTAssertNotEqual(extended.edx & (1 << 29), 0, "long mode missing")
    var changed = table
    changed.entries[1].ecx |= 1 << 30
    XCTAssertNotEqual(changed.fingerprint, table.fingerprint)
  }

  func testVirtualCPUStartsInRingThreeAtTheEntry() throws {
    let configuration = try GuestHarness.configuration("callcheck")
    let control = try MachineControl()
    let machine = try Machine(
      configuration: configuration, inputs: LiveInputs(), outputs: CapturingOutputs(network: nil), network: nil,
      control: control)
    let sregs = try machine.vcpu.specialRegisters()
    let regs = try machine.vcpu.registers()
    XCTAssertEqual(sregs.cs.dpl, 3)
    XCTAssertEqual(sregs.cs.l, 1)
    XCTAssertEqual(sregs.cr4 & 0x4, 0x4, "CR4.TSD not set")
    XCTAssertEqual(regs.rip, machine.image.entry)
    XCTAssertEqual(regs.rdi, BootLayout.bootInfo)
    XCTAssertEqual(regs.rsp, configuration.memorySize)
    XCTAssertEqual(
      try machine.memory.systemRange(BootLayout.bootInfo, count: 8).load(as: UInt64.self), 0x3154_4f4f_4253_4c)
  }

  func testMemoryDigestSeesEveryByte() throws {
    let configuration = try GuestHarness.configuration("callcheck")
    let machine = try Machine(
      configuration: configuration, inputs: LiveInputs(), outputs: CapturingOutputs(network: nil), network: nil,
      control: try MachineControl())
    let before = machine.memoryDigest()
    XCTAssertEqual(before, machine.memoryDigest())
    try machine.memory.store(UInt8(1), at: configuration.memorySize - 1)
    XCTAssertNotEqual(before, machine.memoryDigest())
  }

  func testSizesAndAddressesParse() {
    XCTAssertEqual(ByteCount.parse("64M"), 64 << 20)
    XCTAssertEqual(ByteCount.parse("1G"), 1 << 30)
    XCTAssertEqual(ByteCount.parse("512k"), 512 << 10)
    XCTAssertEqual(ByteCount.parse("4096"), 4096)
    XCTAssertEqual(ByteCount.parse("2MiB"), 2 << 20)
    XCTAssertNil(ByteCount.parse("lots"))
    XCTAssertNil(ByteCount.parse("12Q"))
    XCTAssertNil(ByteCount.parse("99999999999999999999T"))
    XCTAssertEqual(HostPort(parsing: "127.0.0.1:6380"), HostPort(host: "127.0.0.1", port: 6380))
    XCTAssertEqual(HostPort(parsing: "[::1]:80"), HostPort(host: "::1", port: 80))
    XCTAssertNil(HostPort(parsing: "nohost"))
    XCTAssertNil(HostPort(parsing: ":80"))
    XCTAssertNil(HostPort(parsing: "h:70000"))
  }
}
