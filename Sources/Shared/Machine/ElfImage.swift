/// A statically linked x86-64 ELF64 executable, parsed and validated for
/// copying into guest-physical memory.
///
/// The guest is identity-mapped, so each `PT_LOAD` segment is placed at its
/// `p_vaddr` (`p_paddr` is ignored). The parser treats its input as hostile:
/// every offset, size and address is checked with overflow-reporting
/// arithmetic before it is used, nothing is allocated in proportion to a
/// size field other than bytes actually present in the file, and every
/// problem is reported as an `ElfImageError` naming the offending field.
/// Section headers are never read.
public struct ElfImage: Sendable {
  /// One loadable (`PT_LOAD`) segment.
  ///
  /// The loader copies `fileBytes` to `guestAddress` and zero-fills the rest
  /// of `memorySize` (the `.bss` part); `fileBytes.count <= memorySize`.
  public struct Segment: Sendable, Equatable {
    /// Guest-physical (= virtual, identity-mapped) address of the first byte.
    public var guestAddress: UInt64
    /// The initialized part of the segment, copied from the file.
    public var fileBytes: [UInt8]
    /// Total size in guest memory, including the zero-filled tail.
    public var memorySize: UInt64
    /// The segment has `PF_X` set.
    public var executable: Bool
    /// The segment has `PF_W` set.
    public var writable: Bool

    /// Creates a segment description.
    public init(
      guestAddress: UInt64,
      fileBytes: [UInt8],
      memorySize: UInt64,
      executable: Bool,
      writable: Bool
    ) {
      self.guestAddress = guestAddress
      self.fileBytes = fileBytes
      self.memorySize = memorySize
      self.executable = executable
      self.writable = writable
    }
  }

  /// The entry point (`e_entry`); always inside an executable segment.
  public let entry: UInt64

  /// The loadable segments with a nonzero `p_memsz`, sorted by
  /// `guestAddress`, pairwise disjoint and all inside the load window.
  public let segments: [Segment]

  /// Lowest guest address covered by the loadable segments.
  public var lowestAddress: UInt64 {
    segments.lazy.map(\.guestAddress).min() ?? 0
  }

  /// One past the highest guest address covered by the loadable segments.
  public var highestAddress: UInt64 {
    segments.lazy.map { segment in
      let (end, overflow) = segment.guestAddress.addingReportingOverflow(segment.memorySize)
      return overflow ? UInt64.max : end
    }.max() ?? 0
  }

  /// Parses and validates; `loadWindow` is the guest-physical range the image may occupy.
  ///
  /// - Parameters:
  ///   - bytes: The complete ELF file.
  ///   - loadWindow: Every `PT_LOAD` segment with a nonzero `p_memsz` must lie
  ///     entirely inside this range.
  /// - Throws: `ElfImageError` describing the first problem found.
  public init(bytes: [UInt8], loadWindow: Range<UInt64>) throws(ElfImageError) {
    let header = try Self.parseFileHeader(bytes)

    var loads: [ProgramHeader] = []
    for index in 0..<header.programHeaderCount {
      // Cannot overflow: the whole table was checked to lie inside the file.
      let offset = header.programHeaderOffset + index * Self.programHeaderSize
      let programHeader = try ProgramHeader(bytes: bytes, offset: offset, index: index)
      guard programHeader.type == Self.ptLoad else { continue }
      try programHeader.validateLoadable(fileSize: bytes.count, loadWindow: loadWindow)
      loads.append(programHeader)
    }
    guard !loads.isEmpty else {
      throw ElfImageError(
        reason: "no PT_LOAD segment among the \(header.programHeaderCount) program headers")
    }

    // Empty PT_LOAD segments occupy no memory; they were bounds-checked above
    // and are otherwise ignored.
    let occupied = loads.filter { $0.memorySize > 0 }.sorted { $0.virtualAddress < $1.virtualAddress }

    try Self.checkTotalSize(of: occupied, loadWindow: loadWindow)
    try Self.checkDisjoint(occupied)
    try Self.checkEntry(header.entry, in: occupied)

    var segments: [Segment] = []
    segments.reserveCapacity(occupied.count)
    for load in occupied {
      segments.append(try load.segment(from: bytes))
    }
    self.entry = header.entry
    self.segments = segments
  }
}

// MARK: - ELF constants

extension ElfImage {
  private static let fileHeaderSize = 64
  private static let programHeaderSize = 56
  private static let maxProgramHeaders = 64

  private static let elfMagic: [UInt8] = [0x7F, 0x45, 0x4C, 0x46]  // "\x7fELF"
  private static let elfClass64: UInt8 = 2
  private static let elfData2LSB: UInt8 = 1
  private static let evCurrent: UInt32 = 1
  private static let etRel: UInt16 = 1
  private static let etExec: UInt16 = 2
  private static let etDyn: UInt16 = 3
  private static let etCore: UInt16 = 4
  private static let emX86_64: UInt16 = 62

  private static let ptLoad: UInt32 = 1
  private static let pfX: UInt32 = 1
  private static let pfW: UInt32 = 2
  private static let pfR: UInt32 = 4
}

// MARK: - File header

extension ElfImage {
  /// The fields of the ELF header the loader uses, already validated.
  private struct FileHeader {
    var entry: UInt64
    /// Byte offset of the program header table; the whole table is inside the file.
    var programHeaderOffset: Int
    /// 1...maxProgramHeaders.
    var programHeaderCount: Int
  }

  private static func parseFileHeader(_ bytes: [UInt8]) throws(ElfImageError) -> FileHeader {
    guard bytes.count >= fileHeaderSize else {
      throw ElfImageError(
        reason: "file is \(bytes.count) bytes, shorter than the \(fileHeaderSize)-byte ELF64 header")
    }
    let magic = Array(bytes[0..<4])
    guard magic == elfMagic else {
      throw ElfImageError(
        reason: "bad magic \(hexBytes(magic)) (expected 7f 45 4c 46, \"\\x7fELF\"): not an ELF file")
    }

    let elfClass = bytes[4]
    guard elfClass == elfClass64 else {
      let name = elfClass == 1 ? "ELFCLASS32, a 32-bit object" : "not a valid class"
      throw ElfImageError(
        reason: "EI_CLASS \(elfClass) (\(name)) is not supported: expected ELFCLASS64 (2)")
    }
    let elfData = bytes[5]
    guard elfData == elfData2LSB else {
      let name = elfData == 2 ? "ELFDATA2MSB, big-endian" : "not a valid encoding"
      throw ElfImageError(
        reason: "EI_DATA \(elfData) (\(name)) is not supported: expected ELFDATA2LSB (1, little-endian)")
    }
    let identVersion = bytes[6]
    guard identVersion == 1 else {
      throw ElfImageError(reason: "EI_VERSION \(identVersion) is not EV_CURRENT (1)")
    }

    let type = try read(UInt16.self, from: bytes, at: 16)
    guard type == etExec else {
      throw ElfImageError(reason: unsupportedTypeReason(type))
    }
    let machine = try read(UInt16.self, from: bytes, at: 18)
    guard machine == emX86_64 else {
      throw ElfImageError(
        reason: "e_machine \(machine) (\(machineName(machine))) is not supported: expected EM_X86_64 (62)")
    }
    let version = try read(UInt32.self, from: bytes, at: 20)
    guard version == evCurrent else {
      throw ElfImageError(reason: "e_version \(version) is not EV_CURRENT (1)")
    }

    let entry = try read(UInt64.self, from: bytes, at: 24)
    let phoff = try read(UInt64.self, from: bytes, at: 32)
    let phentsize = try read(UInt16.self, from: bytes, at: 54)
    let phnum = try read(UInt16.self, from: bytes, at: 56)

    guard phnum > 0 else {
      throw ElfImageError(reason: "e_phnum is 0: the image has no program headers, so nothing to load")
    }
    guard Int(phnum) <= maxProgramHeaders else {
      throw ElfImageError(
        reason: "e_phnum \(phnum) exceeds the limit of \(maxProgramHeaders) program headers")
    }
    guard Int(phentsize) == programHeaderSize else {
      throw ElfImageError(
        reason: "e_phentsize \(phentsize) is not the ELF64 program header size \(programHeaderSize)")
    }

    let fileSize = UInt64(bytes.count)
    let (tableSize, sizeOverflow) = UInt64(phnum).multipliedReportingOverflow(by: UInt64(programHeaderSize))
    let (tableEnd, endOverflow) = phoff.addingReportingOverflow(tableSize)
    guard !sizeOverflow, !endOverflow else {
      throw ElfImageError(
        reason: "program header table e_phoff \(hex(phoff)) + \(phnum) * \(programHeaderSize) bytes "
          + "overflows 64 bits")
    }
    guard tableEnd <= fileSize, let tableOffset = Int(exactly: phoff) else {
      throw ElfImageError(
        reason: "program header table [e_phoff \(hex(phoff)), +\(hex(tableSize))) "
          + "(e_phnum \(phnum)) extends past the end of the \(hex(fileSize))-byte file")
    }
    return FileHeader(entry: entry, programHeaderOffset: tableOffset, programHeaderCount: Int(phnum))
  }

  private static func unsupportedTypeReason(_ type: UInt16) -> String {
    let advice =
      "expected ET_EXEC (2), a statically linked executable at a fixed address; "
      + "the Lockstep guest SDK linker script produces one"
    switch type {
    case etDyn:
      return "e_type 3 (ET_DYN) is not supported: a position-independent executable (PIE) "
        + "or shared object cannot be loaded; \(advice) (link with -no-pie -static)"
    case etRel:
      return "e_type 1 (ET_REL) is not supported: a relocatable object (.o) must be linked first; \(advice)"
    case etCore:
      return "e_type 4 (ET_CORE) is not supported: a core dump is not a program; \(advice)"
    default:
      return "e_type \(type) is not supported: \(advice)"
    }
  }

  private static func machineName(_ machine: UInt16) -> String {
    switch machine {
    case 0: "EM_NONE"
    case 3: "EM_386, 32-bit x86"
    case 40: "EM_ARM"
    case 183: "EM_AARCH64"
    case 243: "EM_RISCV"
    default: "unknown machine"
    }
  }
}

// MARK: - Program headers

extension ElfImage {
  /// One program header as read from the file; nothing about it is trusted.
  private struct ProgramHeader {
    var index: Int
    var type: UInt32
    var flags: UInt32
    var fileOffset: UInt64
    var virtualAddress: UInt64
    var fileSize: UInt64
    var memorySize: UInt64
    var alignment: UInt64

    init(bytes: [UInt8], offset: Int, index: Int) throws(ElfImageError) {
      self.index = index
      type = try ElfImage.read(UInt32.self, from: bytes, at: offset)
      flags = try ElfImage.read(UInt32.self, from: bytes, at: offset + 4)
      fileOffset = try ElfImage.read(UInt64.self, from: bytes, at: offset + 8)
      virtualAddress = try ElfImage.read(UInt64.self, from: bytes, at: offset + 16)
      // p_paddr (offset + 24) is ignored: the guest is identity-mapped.
      fileSize = try ElfImage.read(UInt64.self, from: bytes, at: offset + 32)
      memorySize = try ElfImage.read(UInt64.self, from: bytes, at: offset + 40)
      alignment = try ElfImage.read(UInt64.self, from: bytes, at: offset + 48)
    }

    var isExecutable: Bool { flags & ElfImage.pfX != 0 }
    var isWritable: Bool { flags & ElfImage.pfW != 0 }

    /// `[p_vaddr, +p_memsz)`, as error messages show a segment.
    var rangeDescription: String {
      "[\(ElfImage.hex(virtualAddress)), +\(ElfImage.hex(memorySize)))"
    }

    /// One past the last byte in memory. Only valid after `validateLoadable`.
    var end: UInt64 { virtualAddress &+ memorySize }

    func contains(_ address: UInt64) -> Bool {
      address >= virtualAddress && address - virtualAddress < memorySize
    }

    var flagsDescription: String {
      (flags & ElfImage.pfR != 0 ? "R" : "-")
        + (isWritable ? "W" : "-")
        + (isExecutable ? "X" : "-")
    }

    private func failure(_ message: String) -> ElfImageError {
      ElfImageError(reason: "program header \(index): \(message)")
    }

    /// Checks one `PT_LOAD` header on its own.
    func validateLoadable(fileSize fileLength: Int, loadWindow: Range<UInt64>) throws(ElfImageError) {
      guard fileSize <= memorySize else {
        throw failure("p_filesz \(ElfImage.hex(fileSize)) exceeds p_memsz \(ElfImage.hex(memorySize))")
      }
      guard alignment & (alignment &- 1) == 0 else {
        throw failure("p_align \(ElfImage.hex(alignment)) is not a power of two")
      }
      let (fileEnd, fileOverflow) = fileOffset.addingReportingOverflow(fileSize)
      guard !fileOverflow else {
        throw failure(
          "p_offset \(ElfImage.hex(fileOffset)) + p_filesz \(ElfImage.hex(fileSize)) overflows 64 bits")
      }
      guard fileEnd <= UInt64(fileLength) else {
        throw failure(
          "file range [p_offset \(ElfImage.hex(fileOffset)), +p_filesz \(ElfImage.hex(fileSize))) "
            + "extends past the end of the \(ElfImage.hex(fileLength))-byte file")
      }
      let (_, memoryOverflow) = virtualAddress.addingReportingOverflow(memorySize)
      guard !memoryOverflow else {
        throw failure(
          "p_vaddr \(ElfImage.hex(virtualAddress)) + p_memsz \(ElfImage.hex(memorySize)) overflows 64 bits")
      }
      guard memorySize > 0 else { return }
      guard virtualAddress >= loadWindow.lowerBound else {
        throw failure(
          "segment \(rangeDescription) starts below the guest load window start "
            + ElfImage.hex(loadWindow.lowerBound))
      }
      guard end <= loadWindow.upperBound else {
        throw failure(
          "segment \(rangeDescription) extends past the guest load window end "
            + ElfImage.hex(loadWindow.upperBound))
      }
    }

    /// Copies the initialized bytes. Only valid after `validateLoadable`.
    func segment(from bytes: [UInt8]) throws(ElfImageError) -> Segment {
      guard let start = Int(exactly: fileOffset),
        let count = Int(exactly: fileSize),
        start <= bytes.count,
        count <= bytes.count - start
      else {
        throw failure(
          "file range [p_offset \(ElfImage.hex(fileOffset)), +p_filesz \(ElfImage.hex(fileSize))) "
            + "is outside the \(ElfImage.hex(bytes.count))-byte file")
      }
      return Segment(
        guestAddress: virtualAddress,
        fileBytes: Array(bytes[start..<(start + count)]),
        memorySize: memorySize,
        executable: isExecutable,
        writable: isWritable)
    }
  }

  /// The segments cannot together need more memory than the window holds.
  private static func checkTotalSize(
    of loads: [ProgramHeader], loadWindow: Range<UInt64>
  ) throws(ElfImageError) {
    let windowSize = loadWindow.upperBound - loadWindow.lowerBound  // Range guarantees lower <= upper.
    var total: UInt64 = 0
    for load in loads {
      let (sum, overflow) = total.addingReportingOverflow(load.memorySize)
      guard !overflow else {
        throw ElfImageError(
          reason: "total PT_LOAD p_memsz overflows 64 bits, exceeding the guest load window size "
            + hex(windowSize))
      }
      total = sum
    }
    guard total <= windowSize else {
      throw ElfImageError(
        reason: "total PT_LOAD p_memsz \(hex(total)) exceeds the guest load window size \(hex(windowSize)) "
          + "[\(hex(loadWindow.lowerBound)), \(hex(loadWindow.upperBound)))")
    }
  }

  /// `loads` is sorted by address: if no neighbours overlap, nothing does.
  private static func checkDisjoint(_ loads: [ProgramHeader]) throws(ElfImageError) {
    for (previous, next) in zip(loads, loads.dropFirst()) where previous.end > next.virtualAddress {
      throw ElfImageError(
        reason: "program headers \(previous.index) and \(next.index): segments "
          + "\(previous.rangeDescription) and \(next.rangeDescription) overlap")
    }
  }

  private static func checkEntry(_ entry: UInt64, in loads: [ProgramHeader]) throws(ElfImageError) {
    if loads.contains(where: { $0.isExecutable && $0.contains(entry) }) { return }
    let prefix = "entry point e_entry \(hex(entry)) is not inside an executable (PF_X) PT_LOAD segment"
    if let holder = loads.first(where: { $0.contains(entry) }) {
      throw ElfImageError(
        reason: "\(prefix): it lies in program header \(holder.index) "
          + "\(holder.rangeDescription) with flags \(holder.flagsDescription)")
    }
    throw ElfImageError(reason: prefix)
  }
}

// MARK: - Byte access and formatting

extension ElfImage {
  /// Reads a little-endian integer; throws rather than traps when out of bounds.
  private static func read<T: FixedWidthInteger & UnsignedInteger>(
    _: T.Type, from bytes: [UInt8], at offset: Int
  ) throws(ElfImageError) -> T {
    let size = MemoryLayout<T>.size
    guard offset >= 0, offset <= bytes.count - size else {
      throw ElfImageError(
        reason: "read of \(size) bytes at offset \(hex(offset)) is outside the \(hex(bytes.count))-byte file")
    }
    var value: T = 0
    for byteIndex in 0..<size {
      value |= T(bytes[offset + byteIndex]) << (8 * byteIndex)
    }
    return value
  }

  private static func hex(_ value: some BinaryInteger) -> String {
    "0x" + String(value, radix: 16)
  }

  private static func hexBytes(_ bytes: [UInt8]) -> String {
    bytes.map { $0 < 0x10 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined(separator: " ")
  }
}
