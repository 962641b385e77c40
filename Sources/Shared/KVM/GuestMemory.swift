#if canImport(Glibc)
  import Glibc
#endif

/// Guest RAM: one anonymous mapping, pre-populated, mapped into the VM at
/// guest-physical address 0.
///
/// Every access is bounds-checked. Addresses that come from the guest are
/// checked with ``guestRange(_:count:)``, which also refuses the VMM's own
/// system area below ``userBase`` (page tables, GDT, IDT), so a guest can
/// never make the VMM overwrite them.
public final class GuestMemory {
  /// The host address of guest-physical address 0.
  public let base: UnsafeMutableRawPointer
  /// Bytes of guest RAM.
  public let size: UInt64
  /// The lowest address a guest-supplied pointer may reach.
  public let userBase: UInt64
  /// While a clone's pre-copy runs: the pages the VMM itself wrote (KVM's
  /// dirty log sees only the guest's own writes, not the host's).
  public var tracksHostWrites = false
  public private(set) var hostWrittenPages = Set<UInt64>()

  /// Notes a write by the VMM to `[address, address + count)`.
  @inline(__always)
  public func noteHostWrite(_ address: UInt64, count: UInt64) {
    guard tracksHostWrites, count > 0 else { return }
    for page in (address / 4096)...((address + count - 1) / 4096) { hostWrittenPages.insert(page) }
  }

  /// The pages noted since the last call.
  public func takeHostWrittenPages() -> Set<UInt64> {
    defer { hostWrittenPages = [] }
    return hostWrittenPages
  }

  /// Maps `size` bytes (a multiple of 2 MiB) of zeroed, pre-populated memory.
  public init(size: UInt64, userBase: UInt64) throws(SystemError) {
    guard
      let mapped = mmap(
        nil, Int(size), PROT_READ | PROT_WRITE,
        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_POPULATE, -1, 0),
      mapped != MAP_FAILED
    else {
      throw SystemError("mmap(guest memory, \(size) bytes)", errno: errno)
    }
    base = mapped
    self.size = size
    self.userBase = userBase
  }

  deinit {
    munmap(base, Int(size))
  }

  /// Checks that `[address, address + count)` lies in guest RAM above the
  /// system area and returns it as a host buffer.
  @inline(__always)
  public func guestRange(_ address: UInt64, count: UInt64) throws(GuestMemoryError)
    -> UnsafeMutableRawBufferPointer
  {
    let (end, overflow) = address.addingReportingOverflow(count)
    guard !overflow, address >= userBase, end <= size else {
      throw GuestMemoryError(address: address, count: count, memorySize: size, userBase: userBase)
    }
    return UnsafeMutableRawBufferPointer(start: base + Int(address), count: Int(count))
  }

  /// A host buffer over any part of guest RAM, system area included: for
  /// the VMM's own use (boot structures, hashing), never for guest pointers.
  public func systemRange(_ address: UInt64, count: UInt64) throws(GuestMemoryError)
    -> UnsafeMutableRawBufferPointer
  {
    let (end, overflow) = address.addingReportingOverflow(count)
    guard !overflow, end <= size else {
      throw GuestMemoryError(address: address, count: count, memorySize: size, userBase: 0)
    }
    return UnsafeMutableRawBufferPointer(start: base + Int(address), count: Int(count))
  }

  /// Loads a little-endian integer from a guest-supplied address.
  @inline(__always)
  public func load<T: FixedWidthInteger>(_: T.Type, at address: UInt64) throws(GuestMemoryError) -> T {
    let range = try guestRange(address, count: UInt64(MemoryLayout<T>.size))
    return T(littleEndian: range.loadUnaligned(as: T.self))
  }

  /// Stores a little-endian integer at a guest-supplied address.
  @inline(__always)
  public func store<T: FixedWidthInteger>(_ value: T, at address: UInt64) throws(GuestMemoryError) {
    let range = try guestRange(address, count: UInt64(MemoryLayout<T>.size))
    range.storeBytes(of: value.littleEndian, as: T.self)
    noteHostWrite(address, count: UInt64(MemoryLayout<T>.size))
  }

  /// Copies bytes into guest memory at a guest-supplied address.
  public func write(_ bytes: some Collection<UInt8>, at address: UInt64) throws(GuestMemoryError) {
    let range = try guestRange(address, count: UInt64(bytes.count))
    range.copyBytes(from: bytes)
    noteHostWrite(address, count: UInt64(bytes.count))
  }

  /// Copies bytes out of guest memory at a guest-supplied address.
  public func read(_ address: UInt64, count: UInt64) throws(GuestMemoryError) -> [UInt8] {
    Array(try guestRange(address, count: count))
  }
}
