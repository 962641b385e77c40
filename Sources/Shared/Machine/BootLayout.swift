import CLockstepKVM

/// Builds what the guest needs before its first instruction: page tables,
/// GDT, TSS, IDT, ring-0 exception stubs and the boot-info page, and the
/// register state that starts the vCPU in ring 3 at the image's entry.
///
/// Guest-physical map (docs/guest-abi.md):
///
///     0x0000_0000  page 0: not present (null pointers fault)
///     0x0000_1000  PML4; 0x2000 PDPT; 0x3000-0x5FFF page directories for
///                  0-3 GiB (2 MiB pages); 0x6000 directory for 3-4 GiB
///                  (the doorbell); 0x7000 page table of the first 2 MiB
///     0x0000_8000  GDT; 0x8100 TSS
///     0x0000_9000  IDT (256 gates)
///     0x0000_A000  exception stubs (32 x 32 bytes)
///     0x0000_C000  ring-0 stack, 16 KiB, grows down from 0x10000
///     0x0001_0000  boot info (user read-only)
///     0x0010_0000  the guest image, then its heap ...
///     end - 4 MiB  an unmapped 2 MiB guard page
///     end - 2 MiB  the stack, growing down from the end of RAM
///     0xE000_0000  the doorbell page (no memory behind it)
///
/// Everything below 1 MiB except the boot-info page is supervisor-only.
public enum BootLayout {
  static let pml4: UInt64 = 0x1000
  static let pdpt: UInt64 = 0x2000
  static let firstDirectory: UInt64 = 0x3000
  static let doorbellDirectory: UInt64 = 0x6000
  static let lowTable: UInt64 = 0x7000
  static let gdt: UInt64 = 0x8000
  static let tss: UInt64 = 0x8100
  static let idt: UInt64 = 0x9000
  static let stubs: UInt64 = 0xA000
  static let stubSize: UInt64 = 32
  static let ringZeroStackTop: UInt64 = 0x10000
  /// Where guest-supplied pointers may start: the image base.
  public static let userBase: UInt64 = LS_IMAGE_BASE
  /// The boot-info page.
  public static let bootInfo: UInt64 = LS_BOOT_INFO_GPA
  /// The doorbell the guest stores descriptor addresses to.
  public static let doorbell: UInt64 = LS_DOORBELL_GPA
  /// The doorbell the exception stubs store frame addresses to.
  public static let faultDoorbell: UInt64 = LS_FAULT_DOORBELL_GPA
  /// Largest guest RAM the layout supports.
  public static let maximumMemory: UInt64 = LS_MAX_MEMORY
  /// Guest RAM is a whole number of 2 MiB pages.
  public static let pageSize2M: UInt64 = 2 << 20
  /// The guest stack's size: the top 2 MiB page of RAM.
  public static let stackSize: UInt64 = 2 << 20
  /// Below the stack, one 2 MiB page is left unmapped, so a stack
  /// overflow faults instead of silently overwriting the heap.
  public static let guardSize: UInt64 = 2 << 20
  /// The smallest RAM: the low 2 MiB, 2 MiB for the image and heap, the
  /// guard and the stack.
  public static let minimumMemory: UInt64 = 8 << 20
  /// The range the guest image may occupy in RAM of `size` bytes.
  public static func imageWindow(memorySize size: UInt64) -> Range<UInt64> {
    userBase..<(size - stackSize - guardSize)
  }

  /// Selectors.
  static let kernelCode: UInt16 = 0x08
  static let kernelData: UInt16 = 0x10
  static let userCode: UInt16 = 0x1B
  static let userData: UInt16 = 0x23
  static let taskState: UInt16 = 0x28

  /// Exceptions that push an error code.
  static let vectorsWithErrorCode: Set<UInt64> = [8, 10, 11, 12, 13, 14, 17, 21, 29, 30]

  /// Writes the system structures and the boot-info page into `memory`,
  /// which must already hold the image. Returns the initial registers,
  /// starting from the vCPU's reset state `resetState`.
  static func build(
    in memory: GuestMemory, image: ElfImage, arguments: String, diskSize: UInt64,
    resetState: kvm_sregs
  ) throws(GuestMemoryError) -> (regs: kvm_regs, sregs: kvm_sregs) {
    let ram = memory.size
    let u64 = { (address: UInt64, value: UInt64) throws(GuestMemoryError) in
      try memory.systemRange(address, count: 8).storeBytes(of: value.littleEndian, as: UInt64.self)
    }
    // Page tables. Flags: P=1, RW=2, US=4, PS=0x80.
    try u64(pml4, pdpt | 0x7)
    for gigabyte in UInt64(0)..<3 {
      try u64(pdpt + gigabyte * 8, (firstDirectory + gigabyte * 0x1000) | 0x7)
    }
    try u64(pdpt + 3 * 8, doorbellDirectory | 0x7)
    var address: UInt64 = pageSize2M
    let guardPage = ram - stackSize - guardSize
    while address < ram {
      if address == guardPage {
        address += pageSize2M
        continue
      }
      let directory = firstDirectory + (address >> 30) * 0x1000
      try u64(directory + ((address >> 21) & 511) * 8, address | 0x87)
      address += pageSize2M
    }
    // The first 2 MiB in 4 KiB pages: page 0 absent, the system area
    // supervisor-only, the boot-info page user read-only, the rest user.
    try u64(firstDirectory, lowTable | 0x7)
    for page in UInt64(1)..<512 {
      let physical = page << 12
      let flags: UInt64
      if physical == bootInfo {
        flags = 0x5
      } else if physical < userBase {
        flags = 0x3
      } else {
        flags = 0x7
      }
      try u64(lowTable + page * 8, physical | flags)
    }
    // The doorbell page: a 2 MiB user page at 3.5 GiB with no memory slot.
    try u64(doorbellDirectory + ((doorbell >> 21) & 511) * 8, (doorbell & ~(pageSize2M - 1)) | 0x87)

    // GDT: null, kernel code, kernel data, user code, user data, TSS (16 bytes).
    try u64(gdt + 0x00, 0)
    try u64(gdt + 0x08, 0x0020_9A00_0000_0000)
    try u64(gdt + 0x10, 0x0000_9200_0000_0000)
    try u64(gdt + 0x18, 0x0020_FA00_0000_0000)
    try u64(gdt + 0x20, 0x0000_F200_0000_0000)
    let tssLimit: UInt64 = 0x67
    try u64(
      gdt + 0x28,
      tssLimit | ((tss & 0xFFFFFF) << 16) | (0x89 << 40) | (((tss >> 24) & 0xFF) << 56))
    try u64(gdt + 0x30, tss >> 32)
    // TSS: RSP0, and the I/O bitmap base past the limit (no I/O bitmap).
    try u64(tss + 4, ringZeroStackTop)
    try memory.systemRange(tss + 102, count: 2).storeBytes(of: UInt16(0x68).littleEndian, as: UInt16.self)

    // Exception stubs and their IDT gates (vectors 0-31; the rest absent).
    for vector in UInt64(0)..<32 {
      let stub = stubs + vector * stubSize
      var code: [UInt8] = []
      if !vectorsWithErrorCode.contains(vector) { code += [0x6A, 0x00] }  // push 0
      code += [0x6A, UInt8(vector)]  // push vector
      code += [0x50]  // push rax
      code += [0x48, 0xB8]  // movabs rax, faultDoorbell
      withUnsafeBytes(of: faultDoorbell.littleEndian) { code += $0 }
      code += [0x48, 0x89, 0x20]  // mov [rax], rsp
      code += [0xEB, 0xFE]  // jmp . (the VMM never resumes a faulted guest)
      _ = try memory.systemRange(stub, count: UInt64(code.count)).copyBytes(from: code)
      let low =
        (stub & 0xFFFF) | (UInt64(kernelCode) << 16) | (0x8E << 40) | (((stub >> 16) & 0xFFFF) << 48)
      try u64(idt + vector * 16, low)
      try u64(idt + vector * 16 + 8, stub >> 32)
    }

    // Boot info.
    let stackTop = ram
    var info = [UInt8](repeating: 0, count: 4096)
    func put(_ value: UInt64, at offset: Int, bytes: Int = 8) {
      for index in 0..<bytes { info[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * index)) }
    }
    let argumentBytes = Array(arguments.utf8.prefix(3967))
    put(LS_BOOT_MAGIC, at: 0)
    put(UInt64(LS_ABI_VERSION), at: 8, bytes: 4)
    put(ram, at: 16)
    put(image.highestAddress.roundedUp(to: 4096), at: 24)
    put(stackTop - stackSize - guardSize, at: 32)
    put(stackTop, at: 40)
    put(diskSize, at: 48)
    put(UInt64(argumentBytes.count), at: 56, bytes: 4)
    info.replaceSubrange(64..<(64 + argumentBytes.count), with: argumentBytes)
    _ = try memory.systemRange(bootInfo, count: 4096).copyBytes(from: info)

    var regs = kvm_regs()
    regs.rip = image.entry
    regs.rsp = stackTop
    regs.rdi = bootInfo
    regs.rflags = 0x2

    var sregs = resetState
    let code = kvm_segment(
      base: 0, limit: 0xFFFF_FFFF, selector: userCode, type: 11, present: 1, dpl: 3, db: 0, s: 1, l: 1,
      g: 1, avl: 0, unusable: 0, padding: 0)
    let data = kvm_segment(
      base: 0, limit: 0xFFFF_FFFF, selector: userData, type: 3, present: 1, dpl: 3, db: 1, s: 1, l: 0,
      g: 1, avl: 0, unusable: 0, padding: 0)
    sregs.cs = code
    sregs.ds = data
    sregs.es = data
    sregs.fs = data
    sregs.gs = data
    sregs.ss = data
    sregs.tr = kvm_segment(
      base: tss, limit: UInt32(tssLimit), selector: taskState, type: 11, present: 1, dpl: 0, db: 0, s: 0,
      l: 0, g: 0, avl: 0, unusable: 0, padding: 0)
    sregs.ldt = kvm_segment(
      base: 0, limit: 0, selector: 0, type: 2, present: 0, dpl: 0, db: 0, s: 0, l: 0, g: 0, avl: 0,
      unusable: 1, padding: 0)
    sregs.gdt = kvm_dtable(base: gdt, limit: 0x37, padding: (0, 0, 0))
    sregs.idt = kvm_dtable(base: idt, limit: 32 * 16 - 1, padding: (0, 0, 0))
    // CR0: PE, MP, ET, NE, WP, PG. CR4: TSD (ring-3 RDTSC faults), PAE,
    // OSFXSR, OSXMMEXCPT. EFER: LME, LMA.
    sregs.cr0 = 0x8005_0033
    sregs.cr3 = pml4
    sregs.cr4 = 0x4 | 0x20 | 0x200 | 0x400
    sregs.efer = 0x500
    return (regs, sregs)
  }
}

extension UInt64 {
  /// Rounds up to a multiple of `alignment` (a power of two).
  func roundedUp(to alignment: UInt64) -> UInt64 {
    (self &+ (alignment &- 1)) & ~(alignment &- 1)
  }
}
