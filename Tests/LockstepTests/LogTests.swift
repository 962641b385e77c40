import Foundation
import XCTest

@testable import Lockstep

/// The log format and offline replay (`lockstep replay`).
final class LogTests: XCTestCase {
  let header = LogHeader(
    vm: "t", imageDigest: 0xABCD, memorySize: 64 << 20, cpuidFingerprint: 7, arguments: "net", diskSize: 1 << 20)

  func testFramesRoundTripAndRejectCorruption() throws {
    let records: [LogRecord] = [
      .header(header),
      .input(point: ExitPoint(sequence: 5, instructionPointer: 0x100123), kind: .clock, payload: [1, 2, 3]),
      .end(exits: 9, traceDigest: 1, memoryDigest: 2, reason: "guest exited with code 0"),
    ]
    var bytes: [UInt8] = []
    for record in records { LogFrame.encode(record, into: &bytes) }
    var offset = 0
    var decoded: [LogRecord] = []
    while let (record, size) = try LogFrame.decode(bytes[offset...]) {
      decoded.append(record)
      offset += size
    }
    XCTAssertEqual(decoded, records)
    XCTAssertEqual(offset, bytes.count)
    // Every prefix is "need more bytes" or a complete earlier frame, never a crash.
    for length in 0..<bytes.count { _ = try? LogFrame.decode(bytes[..<length]) }
    // Any flipped byte is caught (checksum, length or structure).
    for index in 0..<bytes.count {
      var corrupt = bytes
      corrupt[index] ^= 0x10
      var position = 0
      var intact: [LogRecord] = []
      do {
        while let (record, size) = try LogFrame.decode(corrupt[position...]) {
          intact.append(record)
          position += size
        }
      } catch {
        continue
      }
      XCTAssertNotEqual(intact, records, "flip at \(index) went unnoticed")
    }
  }

  func testHostileLengthsAreRefused() {
    var huge: [UInt8] = []
    huge.append(littleEndian: UInt32.max)
    huge += [1, 2, 0, 0]
    XCTAssertThrowsError(try LogFrame.decode(huge[...])) { error in
      XCTAssertTrue("\(error)".contains("exceeds the maximum"), "\(error)")
    }
    var unknown: [UInt8] = []
    LogFrame.encode(.end(exits: 0, traceDigest: 0, memoryDigest: 0, reason: ""), into: &unknown)
    unknown[5] = 99
    let crc = CRC32C.checksum(unknown[4..<(unknown.count - 4)])
    unknown.replaceSubrange((unknown.count - 4)..., with: withUnsafeBytes(of: crc.littleEndian, Array.init))
    XCTAssertThrowsError(try LogFrame.decode(unknown[...])) { error in
      XCTAssertTrue("\(error)".contains("unknown record type 99"), "\(error)")
    }
  }

  func testCRC32CKnownAnswer() {
    XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
  }

  func testHeaderMismatchNamesTheDifference() {
    var other = header
    other.imageDigest = 1
    XCTAssertTrue(header.mismatch(with: other)?.contains("different guest image") ?? false)
    other = header
    other.memorySize = 128 << 20
    XCTAssertTrue(header.mismatch(with: other)?.contains("memory size") ?? false)
    XCTAssertNil(header.mismatch(with: header))
  }

  /// Records a live run of the echo guest to a file, for the replays below.
  func recordEchoSession(verifiesRegisters: Bool = false) throws -> (log: String, report: MachineReport) {
    let log = GuestHarness.temporaryPath("session.log")
    let disk = GuestHarness.temporaryPath("session.img")
    defer { unlink(disk) }
    let configuration = try GuestHarness.configuration(
      "callcheck", arguments: "net", disk: disk, diskSize: 1 << 20, verifiesRegisters: verifiesRegisters)
    let header = LogHeader(configuration: configuration, diskSize: 1 << 20)
    let session = try NetDeviceTests.echoSession(
      inputs: { try Recorder(writer: LogFileWriter(path: log), header: header) }, disk: disk,
      verifiesRegisters: verifiesRegisters)
    XCTAssertEqual(session.clientErrors, [])
    XCTAssertEqual(session.report.stop, .exited(code: 0))
    XCTAssertNil(session.report.inputSourceError)
    return (log, session.report)
  }

  func testOfflineReplayReproducesTheRecording() throws {
    let (log, recorded) = try recordEchoSession()
    defer { unlink(log) }
    let guest = GuestHarness.root.appendingPathComponent("Guest/build/callcheck.elf").path
    let report = try OfflineReplay.run(guestPath: guest, logPath: log, diskPath: nil)
    XCTAssertEqual(report.verdict, .matched, report.summary)
    XCTAssertEqual(report.machine.exits, recorded.exits)
    XCTAssertEqual(report.machine.memoryDigest, recorded.memoryDigest)
    XCTAssertGreaterThan(report.inputsReplayed, 5)
  }

  func testTamperedEntryIsADivergenceAtItsExit() throws {
    let (log, _) = try recordEchoSession()
    defer { unlink(log) }
    // Rewrite the 4th input entry to claim another RIP, with a valid checksum.
    let reader = try LogFileReader(path: log)
    var records: [LogRecord] = []
    while let record = try reader.next() { records.append(record) }
    let inputs = records.indices.filter { if case .input = records[$0] { return true } else { return false } }
    let target = inputs[3]
    guard case .input(let point, let kind, let payload) = records[target] else { return XCTFail() }
    records[target] = .input(
      point: ExitPoint(sequence: point.sequence, instructionPointer: point.instructionPointer + 1), kind: kind,
      payload: payload)
    let tampered = GuestHarness.temporaryPath("tampered.log")
    defer { unlink(tampered) }
    let writer = try LogFileWriter(path: tampered)
    for record in records { try writer.append(record) }
    try writer.finish()
    let guest = GuestHarness.root.appendingPathComponent("Guest/build/callcheck.elf").path
    let report = try OfflineReplay.run(guestPath: guest, logPath: tampered, diskPath: nil)
    guard case .diverged(let reason) = report.verdict else { return XCTFail("not a divergence: \(report.summary)") }
    XCTAssertTrue(reason.contains("at exit \(point.sequence) "), reason)

    // A flipped byte without a valid checksum: the log is reported corrupt.
    var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: log)))
    bytes[bytes.count / 2] ^= 0xFF
    let corrupt = GuestHarness.temporaryPath("corrupt.log")
    defer { unlink(corrupt) }
    try Data(bytes).write(to: URL(fileURLWithPath: corrupt))
    let corrupted = try OfflineReplay.run(guestPath: guest, logPath: corrupt, diskPath: nil)
    guard case .diverged(let why) = corrupted.verdict else { return XCTFail(corrupted.summary) }
    XCTAssertTrue(why.contains("checksum"), why)
  }

  func testVerifyModeChecksEveryRegisterAtEveryLoggedExit() throws {
    let (log, _) = try recordEchoSession(verifiesRegisters: true)
    defer { unlink(log) }
    let reader = try LogFileReader(path: log)
    var records: [LogRecord] = []
    while let record = try reader.next() { records.append(record) }
    guard case .header(let header) = records.first, header.verifiesRegisters else {
      return XCTFail("the header does not say verify mode")
    }
    let guest = GuestHarness.root.appendingPathComponent("Guest/build/callcheck.elf").path
    // Replayed in verify mode: every register matches at every input.
    let clean = try OfflineReplay.run(guestPath: guest, logPath: log, diskPath: nil)
    XCTAssertEqual(clean.verdict, .matched, clean.summary)
    // One entry's register hash changed: caught at exactly that exit.
    let inputs = records.indices.filter { if case .input = records[$0] { return true } else { return false } }
    guard case .input(let point, let kind, let payload) = records[inputs[5]], let hash = point.registerHash else {
      return XCTFail("no register hash in the entries")
    }
    records[inputs[5]] = .input(
      point: ExitPoint(sequence: point.sequence, instructionPointer: point.instructionPointer, registerHash: hash ^ 1),
      kind: kind, payload: payload)
    let tampered = GuestHarness.temporaryPath("registers.log")
    defer { unlink(tampered) }
    let writer = try LogFileWriter(path: tampered)
    for record in records { try writer.append(record) }
    try writer.finish()
    let report = try OfflineReplay.run(guestPath: guest, logPath: tampered, diskPath: nil)
    guard case .diverged(let reason) = report.verdict else { return XCTFail(report.summary) }
    XCTAssertTrue(reason.contains("at exit \(point.sequence) "), reason)
  }

  func testTruncatedRecordingReplaysItsPrefix() throws {
    let (log, _) = try recordEchoSession()
    defer { unlink(log) }
    let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: log)))
    let cut = GuestHarness.temporaryPath("cut.log")
    defer { unlink(cut) }
    try Data(bytes[..<(bytes.count * 2 / 3)]).write(to: URL(fileURLWithPath: cut))
    let guest = GuestHarness.root.appendingPathComponent("Guest/build/callcheck.elf").path
    let report = try OfflineReplay.run(guestPath: guest, logPath: cut, diskPath: nil)
    guard case .reproducedPrefix = report.verdict else { return XCTFail(report.summary) }
  }

  func testAnotherGuestImageIsRefused() throws {
    let (log, _) = try recordEchoSession()
    defer { unlink(log) }
    let other = GuestHarness.root.appendingPathComponent("Guest/build/bench.elf").path
    XCTAssertThrowsError(try OfflineReplay.run(guestPath: other, logPath: log, diskPath: nil)) { error in
      XCTAssertTrue("\(error)".contains("different guest image"), "\(error)")
    }
  }
}
