import XCTest

@testable import Lockstep

final class ElfImageTests: XCTestCase {
  /// 1 MiB up to (but excluding) 4 MiB.
  private let window: Range<UInt64> = 0x10_0000..<0x40_0000

  // MARK: - Valid images

  func testMinimalImageParses() throws {
    let image = try ElfImage(bytes: ElfBuilder.minimal().build(), loadWindow: window)
    XCTAssertEqual(image.entry, 0x10_0000)
    XCTAssertEqual(
      image.segments,
      [
        ElfImage.Segment(
          guestAddress: 0x10_0000, fileBytes: ElfBuilder.textBytes,
          memorySize: UInt64(ElfBuilder.textBytes.count), executable: true, writable: false),
        ElfImage.Segment(
          guestAddress: 0x10_1000, fileBytes: ElfBuilder.dataBytes, memorySize: 0x1000,
          executable: false, writable: true),
      ])
    XCTAssertEqual(image.lowestAddress, 0x10_0000)
    XCTAssertEqual(image.highestAddress, 0x10_2000)
  }

  func testSegmentsAreSortedByAddressAndPaddrIsIgnored() throws {
    var builder = ElfBuilder.minimal()
    builder.programHeaders.reverse()
    for index in builder.programHeaders.indices {
      builder.programHeaders[index].paddr = 0xDEAD_0000
    }
    // Reversing the table moves the payload offsets; recompute them.
    builder.layOutPayload()
    let image = try ElfImage(bytes: builder.build(), loadWindow: window)
    XCTAssertEqual(image.segments.map(\.guestAddress), [0x10_0000, 0x10_1000])
    XCTAssertEqual(image.segments.first?.fileBytes, ElfBuilder.textBytes)
  }

  func testEmptyLoadSegmentIsSkipped() throws {
    var builder = ElfBuilder.minimal()
    // Zero-sized PT_LOAD outside the window: occupies nothing, so it is fine.
    builder.programHeaders.append(.init(type: ElfBuilder.ptLoad, flags: 4, vaddr: 0x9000_0000))
    builder.layOutPayload()
    let image = try ElfImage(bytes: builder.build(), loadWindow: window)
    XCTAssertEqual(image.segments.count, 2)
  }

  func testSegmentExactlyFillingWindowIsAccepted() throws {
    var builder = ElfBuilder.minimal()
    builder.programHeaders[1].memsz = 0x40_0000 - 0x10_1000
    let image = try ElfImage(bytes: builder.build(), loadWindow: window)
    XCTAssertEqual(image.highestAddress, window.upperBound)
  }

  func testAlignmentZeroOneAndLargePowersOfTwoAreAccepted() throws {
    for align: UInt64 in [0, 1, 2, 0x1000, 0x20_0000, 1 << 63] {
      var builder = ElfBuilder.minimal()
      builder.programHeaders[0].align = align
      XCTAssertNoThrow(try ElfImage(bytes: builder.build(), loadWindow: window), "p_align \(align)")
    }
  }

  func testErrorDescriptionHasPrefix() {
    let error = ElfImageError(reason: "something")
    XCTAssertEqual(error.description, "invalid guest image: something")
    XCTAssertEqual("\(error)", "invalid guest image: something")
  }

  // MARK: - File header

  func testFileShorterThanHeader() {
    assertRejects([], mentions: ["0 bytes", "64-byte"])
    let bytes = Array(ElfBuilder.minimal().build().prefix(63))
    assertRejects(bytes, mentions: ["63 bytes", "64-byte ELF64 header"])
  }

  func testBadMagic() {
    var builder = ElfBuilder.minimal()
    builder.magic = [0x7F, 0x45, 0x4C, 0x00]
    assertRejects(builder.build(), mentions: ["magic", "7f 45 4c 00"])
    assertRejects(Array(repeating: 0, count: 128), mentions: ["magic", "00 00 00 00"])
  }

  func testNotElfClass64() {
    var builder = ElfBuilder.minimal()
    builder.elfClass = 1
    assertRejects(builder.build(), mentions: ["EI_CLASS 1", "ELFCLASS32", "ELFCLASS64"])
    builder.elfClass = 7
    assertRejects(builder.build(), mentions: ["EI_CLASS 7"])
  }

  func testNotLittleEndian() {
    var builder = ElfBuilder.minimal()
    builder.encoding = 2
    assertRejects(builder.build(), mentions: ["EI_DATA 2", "big-endian", "little-endian"])
  }

  func testIdentVersion() {
    var builder = ElfBuilder.minimal()
    builder.identVersion = 0
    assertRejects(builder.build(), mentions: ["EI_VERSION 0"])
  }

  func testEVersion() {
    var builder = ElfBuilder.minimal()
    builder.version = 2
    assertRejects(builder.build(), mentions: ["e_version 2", "EV_CURRENT"])
  }

  func testDynamicExecutableIsRejected() {
    var builder = ElfBuilder.minimal()
    builder.type = 3
    assertRejects(builder.build(), mentions: ["e_type 3", "ET_DYN", "PIE", "ET_EXEC", "linker script"])
  }

  func testRelocatableObjectIsRejected() {
    var builder = ElfBuilder.minimal()
    builder.type = 1
    assertRejects(
      builder.build(), mentions: ["e_type 1", "ET_REL", "relocatable", "ET_EXEC", "linker script"])
  }

  func testUnknownTypeIsRejected() {
    var builder = ElfBuilder.minimal()
    builder.type = 0xFE00
    assertRejects(builder.build(), mentions: ["e_type 65024", "ET_EXEC"])
  }

  func testWrongMachine() {
    var builder = ElfBuilder.minimal()
    builder.machine = 183
    assertRejects(builder.build(), mentions: ["e_machine 183", "EM_AARCH64", "EM_X86_64 (62)"])
  }

  func testWrongProgramHeaderEntrySize() {
    var builder = ElfBuilder.minimal()
    builder.phentsize = 32
    assertRejects(builder.build(), mentions: ["e_phentsize 32", "56"])
  }

  func testNoProgramHeaders() {
    var builder = ElfBuilder.minimal()
    builder.phnum = 0
    builder.phentsize = 0  // irrelevant when there is no table
    assertRejects(builder.build(), mentions: ["e_phnum is 0"])
  }

  func testTooManyProgramHeaders() {
    var builder = ElfBuilder.minimal()
    builder.phnum = 65
    assertRejects(builder.build(), mentions: ["e_phnum 65", "64"])
  }

  func testHugeProgramHeaderCount() {
    var builder = ElfBuilder.minimal()
    builder.phnum = 0xFFFF
    assertRejects(builder.build(), mentions: ["e_phnum 65535", "limit of 64"])
  }

  func testProgramHeaderTableBeyondFile() {
    var builder = ElfBuilder.minimal()
    builder.phoff = 0x1000
    assertRejects(builder.build(), mentions: ["program header table", "e_phoff 0x1000", "end of the"])
  }

  func testProgramHeaderTableTruncated() {
    // The table starts inside the file but its last entry is cut short.
    let bytes = ElfBuilder.minimal().build()
    let truncated = Array(bytes.prefix(64 + 56 * 2 + 10))
    assertRejects(truncated, mentions: ["program header table", "extends past the end"])
  }

  func testProgramHeaderOffsetOverflows() {
    var builder = ElfBuilder.minimal()
    builder.phoff = UInt64.max - 10
    assertRejects(builder.build(), mentions: ["e_phoff 0xfffffffffffffff5", "overflows"])
  }

  func testNonLoadHeadersAreStillBoundsChecked() {
    // The only header is PT_GNU_STACK, and it is cut short: the table
    // itself is reported, not the missing PT_LOAD.
    var builder = ElfBuilder.minimal()
    builder.programHeaders = [.init(type: ElfBuilder.ptGnuStack, flags: 6)]
    let bytes = Array(builder.build().prefix(64 + 40))
    assertRejects(bytes, mentions: ["program header table", "extends past the end"])
  }

  func testNoLoadSegment() {
    var builder = ElfBuilder.minimal()
    builder.programHeaders = [.init(type: ElfBuilder.ptGnuStack, flags: 6)]
    assertRejects(builder.build(), mentions: ["no PT_LOAD", "1 program headers"])
  }

  func testOnlyEmptyLoadSegmentsHaveNoEntrySegment() {
    var builder = ElfBuilder.minimal()
    builder.programHeaders = [.init(type: ElfBuilder.ptLoad, flags: 5, vaddr: 0x10_0000)]
    assertRejects(builder.build(), mentions: ["entry point", "PF_X"])
  }

  // MARK: - PT_LOAD segments

  func testFileSizeLargerThanMemorySize() {
    var builder = ElfBuilder.minimal()
    builder.programHeaders[1].memsz = 4
    assertRejects(builder.build(), mentions: ["program header 1", "p_filesz 0x8", "p_memsz 0x4"])
  }

  func testSegmentFileRangeBeyondFile() {
    var builder = ElfBuilder.minimal()
    builder.programHeaders[1].filesz = 0x800
    assertRejects(builder.build(), mentions: ["program header 1", "p_filesz 0x800", "end of the"])
  }

  func testSegmentFileOffsetOverflows() {
    var builder = ElfBuilder.minimal()
    builder.programHeaders[0].offset = UInt64.max - 4
    assertRejects(builder.build(), mentions: ["program header 0", "p_offset 0xfffffffffffffffb", "overflows"])
  }

  func testVirtualAddressPlusMemorySizeOverflows() {
    var builder = ElfBuilder.minimal()
    builder.programHeaders[1].vaddr = 0xFFFF_FFFF_FFFF_F000
    builder.programHeaders[1].memsz = 0x2000
    assertRejects(builder.build(), mentions: ["program header 1", "p_vaddr 0xfffffffffffff000", "overflows"])
  }

  func testMaximalMemorySize() {
    var builder = ElfBuilder.minimal()
    builder.programHeaders[1].memsz = UInt64.max
    assertRejects(builder.build(), mentions: ["program header 1", "p_memsz 0xffffffffffffffff", "overflows"])

    // From address 0 it does not overflow, but it cannot fit a window.
    builder.programHeaders[1].vaddr = 0
    assertRejects(
      builder.build(), loadWindow: 0..<0x40_0000,
      mentions: ["program header 1", "[0x0, +0xffffffffffffffff)", "past the guest load window end 0x400000"])
  }

  func testSegmentBelowWindow() {
    var builder = ElfBuilder.minimal()
    builder.programHeaders[1].vaddr = 0x8000
    assertRejects(
      builder.build(), mentions: ["program header 1", "[0x8000, +0x1000)", "below", "start 0x100000"])
  }

  func testSegmentPastWindowEnd() {
    var builder = ElfBuilder.minimal()
    builder.programHeaders[1].memsz = 0x7FFF_FFFF
    assertRejects(
      builder.build(),
      mentions: [
        "program header 1: segment [0x101000, +0x7fffffff) extends past the guest load window end 0x400000"
      ])
  }

  func testEmptyWindowRejectsEverything() {
    assertRejects(
      ElfBuilder.minimal().build(), loadWindow: 0x10_0000..<0x10_0000, mentions: ["program header 0"])
  }

  func testOverlappingSegments() {
    var builder = ElfBuilder.minimal()
    builder.programHeaders[1].vaddr = 0x10_0008
    assertRejects(
      builder.build(),
      mentions: ["program headers 0 and 1", "[0x100000, +0x10)", "[0x100008, +0x1000)", "overlap"])
  }

  func testNestedSegmentsOverlap() {
    var builder = ElfBuilder.minimal()
    builder.programHeaders[0].memsz = 0x10_0000
    builder.programHeaders.append(
      .init(type: ElfBuilder.ptLoad, flags: 6, vaddr: 0x10_0100, memsz: 0x10))
    builder.layOutPayload()
    assertRejects(builder.build(), mentions: ["program headers 0 and 3", "overlap"])
  }

  func testAlignmentNotPowerOfTwo() {
    var builder = ElfBuilder.minimal()
    builder.programHeaders[1].align = 0x1800
    assertRejects(builder.build(), mentions: ["program header 1", "p_align 0x1800", "power of two"])
  }

  func testEntryOutsideAllSegments() {
    var builder = ElfBuilder.minimal()
    builder.entry = 0x20_0000
    assertRejects(builder.build(), mentions: ["e_entry 0x200000", "executable (PF_X) PT_LOAD"])
  }

  func testEntryInNonExecutableSegment() {
    var builder = ElfBuilder.minimal()
    builder.entry = 0x10_1004
    assertRejects(
      builder.build(), mentions: ["e_entry 0x101004", "PF_X", "program header 1", "flags RW-"])
  }

  func testEntryOnePastExecutableSegment() {
    var builder = ElfBuilder.minimal()
    builder.entry = 0x10_0000 + UInt64(ElfBuilder.textBytes.count)
    assertRejects(builder.build(), mentions: ["e_entry 0x100010", "PF_X"])
  }

  func testTotalMemorySizeLargerThanWindow() {
    // Each segment fits the 8 KiB window, but together they need 12 KiB
    // (and they also overlap; the size problem is reported first).
    var builder = ElfBuilder.minimal()
    builder.programHeaders[0].memsz = 0x2000
    builder.programHeaders[1].vaddr = 0x10_0000
    builder.programHeaders[1].memsz = 0x1000
    assertRejects(
      builder.build(), loadWindow: 0x10_0000..<0x10_2000,
      mentions: ["total PT_LOAD p_memsz 0x3000", "window size 0x2000"])
  }

  func testTotalMemorySizeOverflowIsReported() {
    // 64 segments of almost the whole 64-bit space in a window of the whole space.
    var builder = ElfBuilder.minimal()
    builder.entry = 0
    builder.programHeaders = Array(
      repeating: .init(type: ElfBuilder.ptLoad, flags: 5, vaddr: 0, memsz: UInt64.max - 1), count: 64)
    assertRejects(builder.build(), loadWindow: 0..<UInt64.max, mentions: ["total PT_LOAD", "overflows"])
  }

  // MARK: - Hostile input

  func testEveryPrefixIsHandled() {
    let bytes = ElfBuilder.minimal().build()
    for length in 0..<bytes.count {
      XCTAssertThrowsError(try ElfImage(bytes: Array(bytes.prefix(length)), loadWindow: window))
    }
  }

  func testRandomMutationsNeverCrash() {
    let original = ElfBuilder.minimal().build()
    let headerEnd = Int(ElfBuilder.minimal().payloadOffset)
    var random = SplitMix64(seed: 0x4C6F_636B_7374_6570)  // "Lockstep"
    let interesting64: [UInt64] = [
      0, 1, 7, 8, 56, 64, 0x1000, 0x10_0000, 0x10_0010, 0x3F_FFFF, 0x40_0000,
      0x7FFF_FFFF, 0x8000_0000_0000_0000, UInt64.max, UInt64.max - 1, UInt64(original.count),
    ]
    let interesting16: [UInt16] = [0, 1, 2, 3, 55, 56, 57, 62, 64, 65, 0x7FFF, 0xFFFF]
    var accepted = 0
    var rejected = 0

    for iteration in 0..<20_000 {
      var bytes = original
      let mutations = Int.random(in: 1...4, using: &random)
      for _ in 0..<mutations {
        // Mostly hit the headers, where every byte matters.
        let inHeaders = Bool.random(using: &random) || bytes.isEmpty
        let limit = inHeaders ? max(1, min(headerEnd, bytes.count)) : bytes.count
        let offset = Int.random(in: 0..<limit, using: &random)
        switch Int.random(in: 0..<6, using: &random) {
        case 0:
          if offset < bytes.count { bytes[offset] ^= 1 << UInt8.random(in: 0..<8, using: &random) }
        case 1:
          if offset < bytes.count { bytes[offset] = UInt8.random(in: 0...255, using: &random) }
        case 2:
          let value =
            Bool.random(using: &random)
            ? interesting64.randomElement(using: &random) ?? 0 : random.next()
          bytes.overwrite(littleEndian: value, at: offset)
        case 3:
          bytes.overwrite(littleEndian: interesting16.randomElement(using: &random) ?? 0, at: offset)
        case 4:
          bytes.removeLast(Int.random(in: 0...bytes.count, using: &random))
        default:
          let extra = Int.random(in: 1...64, using: &random)
          bytes += (0..<extra).map { _ in UInt8.random(in: 0...255, using: &random) }
        }
      }

      do throws(ElfImageError) {
        let image = try ElfImage(bytes: bytes, loadWindow: window)
        accepted += 1
        checkInvariants(image, iteration: iteration)
      } catch {
        rejected += 1
        XCTAssertTrue(error.description.hasPrefix("invalid guest image: "), "iteration \(iteration)")
        XCTAssertFalse(error.reason.isEmpty, "iteration \(iteration)")
      }
    }
    // The mutator must exercise both outcomes to be worth anything.
    XCTAssertGreaterThan(accepted, 100)
    XCTAssertGreaterThan(rejected, 1000)
  }

  // MARK: - Helpers

  private func checkInvariants(_ image: ElfImage, iteration: Int) {
    XCTAssertFalse(image.segments.isEmpty, "iteration \(iteration)")
    for segment in image.segments {
      XCTAssertGreaterThan(segment.memorySize, 0, "iteration \(iteration)")
      XCTAssertLessThanOrEqual(UInt64(segment.fileBytes.count), segment.memorySize, "iteration \(iteration)")
      XCTAssertGreaterThanOrEqual(segment.guestAddress, window.lowerBound, "iteration \(iteration)")
      let (end, overflow) = segment.guestAddress.addingReportingOverflow(segment.memorySize)
      XCTAssertFalse(overflow, "iteration \(iteration)")
      XCTAssertLessThanOrEqual(end, window.upperBound, "iteration \(iteration)")
    }
    for (previous, next) in zip(image.segments, image.segments.dropFirst()) {
      XCTAssertLessThanOrEqual(
        previous.guestAddress + previous.memorySize, next.guestAddress, "iteration \(iteration)")
    }
    XCTAssertTrue(
      image.segments.contains {
        $0.executable && image.entry >= $0.guestAddress && image.entry - $0.guestAddress < $0.memorySize
      }, "iteration \(iteration)")
    XCTAssertGreaterThanOrEqual(image.lowestAddress, window.lowerBound, "iteration \(iteration)")
    XCTAssertLessThanOrEqual(image.highestAddress, window.upperBound, "iteration \(iteration)")
  }

  private func assertRejects(
    _ bytes: [UInt8],
    loadWindow: Range<UInt64>? = nil,
    mentions fragments: [String],
    file: StaticString = #filePath,
    line: UInt = #line
  ) {
    do throws(ElfImageError) {
      let image = try ElfImage(bytes: bytes, loadWindow: loadWindow ?? window)
      XCTFail("accepted an invalid image with entry \(image.entry)", file: file, line: line)
    } catch {
      XCTAssertTrue(error.description.hasPrefix("invalid guest image: "), file: file, line: line)
      for fragment in fragments {
        XCTAssertTrue(
          error.reason.contains(fragment), "\"\(error.reason)\" does not mention \"\(fragment)\"",
          file: file, line: line)
      }
    }
  }
}

// MARK: - Test ELF builder

/// Assembles ELF64 files field by field, so tests can break any one field.
private struct ElfBuilder {
  struct ProgramHeader {
    var type: UInt32
    var flags: UInt32
    var offset: UInt64 = 0
    var vaddr: UInt64 = 0
    /// Defaults to `vaddr`.
    var paddr: UInt64?
    var filesz: UInt64 = 0
    var memsz: UInt64 = 0
    var align: UInt64 = 0x1000
    /// Bytes stored in the file for this segment; `layOutPayload` sets offset/filesz.
    var contents: [UInt8] = []
  }

  static let ptLoad: UInt32 = 1
  static let ptGnuStack: UInt32 = 0x6474_E551
  /// `mov $60, %eax; xor %edi, %edi; syscall; hlt; ...` padded to 16 bytes.
  static let textBytes: [UInt8] = [
    0xB8, 0x3C, 0x00, 0x00, 0x00, 0x31, 0xFF, 0x0F, 0x05, 0xF4, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90,
  ]
  static let dataBytes: [UInt8] = [1, 2, 3, 4, 5, 6, 7, 8]

  var magic: [UInt8] = [0x7F, 0x45, 0x4C, 0x46]
  var elfClass: UInt8 = 2
  var encoding: UInt8 = 1
  var identVersion: UInt8 = 1
  var type: UInt16 = 2
  var machine: UInt16 = 62
  var version: UInt32 = 1
  var entry: UInt64 = 0
  /// Defaults to 64, right after the ELF header.
  var phoff: UInt64?
  var phentsize: UInt16 = 56
  /// Defaults to `programHeaders.count`.
  var phnum: UInt16?
  var programHeaders: [ProgramHeader] = []

  /// Where segment contents start: right after the program header table.
  var payloadOffset: UInt64 { 64 + 56 * UInt64(programHeaders.count) }

  /// A valid image: R-X text at 1 MiB, RW- data + bss at 1 MiB + 4 KiB, and
  /// a PT_GNU_STACK header that the loader must ignore.
  static func minimal() -> ElfBuilder {
    var builder = ElfBuilder()
    builder.entry = 0x10_0000
    builder.programHeaders = [
      ProgramHeader(
        type: ptLoad, flags: 5, vaddr: 0x10_0000, memsz: UInt64(textBytes.count), contents: textBytes),
      ProgramHeader(type: ptLoad, flags: 6, vaddr: 0x10_1000, memsz: 0x1000, contents: dataBytes),
      ProgramHeader(type: ptGnuStack, flags: 6, align: 16),
    ]
    builder.layOutPayload()
    return builder
  }

  /// Places each header's `contents` after the table and sets its offset and filesz.
  mutating func layOutPayload() {
    var offset = payloadOffset
    for index in programHeaders.indices where !programHeaders[index].contents.isEmpty {
      programHeaders[index].offset = offset
      programHeaders[index].filesz = UInt64(programHeaders[index].contents.count)
      offset += UInt64(programHeaders[index].contents.count)
    }
  }

  func build() -> [UInt8] {
    var bytes: [UInt8] = magic + [elfClass, encoding, identVersion, 0] + Array(repeating: 0, count: 8)
    bytes.append(littleEndian: type)
    bytes.append(littleEndian: machine)
    bytes.append(littleEndian: version)
    bytes.append(littleEndian: entry)
    bytes.append(littleEndian: phoff ?? 64)
    bytes.append(littleEndian: UInt64(0))  // e_shoff
    bytes.append(littleEndian: UInt32(0))  // e_flags
    bytes.append(littleEndian: UInt16(64))  // e_ehsize
    bytes.append(littleEndian: phentsize)
    bytes.append(littleEndian: phnum ?? UInt16(programHeaders.count))
    bytes.append(littleEndian: UInt16(64))  // e_shentsize
    bytes.append(littleEndian: UInt16(0))  // e_shnum
    bytes.append(littleEndian: UInt16(0))  // e_shstrndx
    for header in programHeaders {
      bytes.append(littleEndian: header.type)
      bytes.append(littleEndian: header.flags)
      bytes.append(littleEndian: header.offset)
      bytes.append(littleEndian: header.vaddr)
      bytes.append(littleEndian: header.paddr ?? header.vaddr)
      bytes.append(littleEndian: header.filesz)
      bytes.append(littleEndian: header.memsz)
      bytes.append(littleEndian: header.align)
    }
    for header in programHeaders {
      bytes += header.contents
    }
    return bytes
  }
}

extension [UInt8] {
  fileprivate mutating func append<T: FixedWidthInteger>(littleEndian value: T) {
    for byteIndex in 0..<MemoryLayout<T>.size {
      append(UInt8(truncatingIfNeeded: value >> (8 * byteIndex)))
    }
  }

  /// Writes as many bytes of `value` as fit before the end of the array.
  fileprivate mutating func overwrite<T: FixedWidthInteger>(littleEndian value: T, at offset: Int) {
    for byteIndex in 0..<MemoryLayout<T>.size where offset + byteIndex < count {
      self[offset + byteIndex] = UInt8(truncatingIfNeeded: value >> (8 * byteIndex))
    }
  }
}

/// A small deterministic generator (Steele, Lea & Flood's SplitMix64).
private struct SplitMix64: RandomNumberGenerator {
  private var state: UInt64

  init(seed: UInt64) {
    state = seed
  }

  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}
