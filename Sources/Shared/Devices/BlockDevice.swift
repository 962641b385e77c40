import CLockstepKVM

#if canImport(Glibc)
  import Glibc
#endif

/// The VM's disk: a file of whole 512-byte sectors, read and written with
/// pread/pwrite at the guest's request, made durable by fsync on flush.
public final class BlockDevice {
  /// Where the image lives.
  public let path: String
  /// Bytes on the disk.
  public let size: UInt64
  let descriptor: FileDescriptorOwner

  /// Opens `path`; creates it with `createSize` bytes if it does not exist.
  /// An existing file must have exactly `createSize` bytes when that is given.
  public init(path: String, createSize: UInt64?) throws(BlockDeviceError) {
    if let createSize, createSize % UInt64(LS_SECTOR_SIZE) != 0 || createSize == 0 {
      throw BlockDeviceError(path: path, reason: "--disk-size \(createSize) is not a positive multiple of 512 bytes")
    }
    let existed = access(path, F_OK) == 0
    let flags = O_RDWR | (createSize != nil ? O_CREAT : 0)
    let owner: FileDescriptorOwner
    do {
      owner = try FileDescriptorOwner(opening: path, flags: flags, mode: 0o600)
    } catch {
      throw BlockDeviceError(
        path: path,
        reason: createSize == nil && error.errno == ENOENT
          ? "it does not exist (give --disk-size to create it)" : error.description)
    }
    var status = stat()
    guard fstat(owner.rawValue, &status) == 0 else {
      throw BlockDeviceError(path: path, reason: SystemError("fstat", errno: errno).description)
    }
    guard (status.st_mode & S_IFMT) == S_IFREG else {
      throw BlockDeviceError(path: path, reason: "it is not a regular file")
    }
    var size = UInt64(status.st_size)
    if !existed, let createSize {
      let fd = owner.rawValue
      do {
        _ = try systemCall("ftruncate(\(path))") { ftruncate(fd, off_t(createSize)) }
      } catch {
        throw BlockDeviceError(path: path, reason: error.description)
      }
      size = createSize
    }
    if let createSize, size != createSize {
      throw BlockDeviceError(
        path: path,
        reason:
          "it holds \(size) bytes but --disk-size asks for \(createSize); refusing to resize an existing disk (remove --disk-size to use it as it is)"
      )
    }
    guard size > 0, size % UInt64(LS_SECTOR_SIZE) == 0 else {
      throw BlockDeviceError(path: path, reason: "its size \(size) is not a positive multiple of 512 bytes")
    }
    self.path = path
    self.size = size
    self.descriptor = owner
  }

  /// Whether `[offset, offset + count)` is a sector-aligned range of the disk
  /// no longer than one I/O may be.
  public func isValid(offset: UInt64, count: UInt64) -> Bool {
    let sector = UInt64(LS_SECTOR_SIZE)
    let (end, overflow) = offset.addingReportingOverflow(count)
    return !overflow && offset % sector == 0 && count % sector == 0 && count <= UInt64(LS_BLOCK_MAX_IO)
      && end <= size
  }

  /// Reads `count` bytes at `offset` (a valid range).
  public func read(offset: UInt64, count: Int) -> BlockReadResult {
    var bytes = [UInt8](repeating: 0, count: count)
    var done = 0
    let fd = descriptor.rawValue
    while done < count {
      let got = bytes.withUnsafeMutableBytes { buffer in
        try? systemCall("pread") {
          pread(fd, buffer.baseAddress.map { $0 + done }, count - done, off_t(offset) + off_t(done))
        }
      }
      guard let got, got > 0 else { return BlockReadResult(status: LS_EIO, bytes: []) }
      done += got
    }
    return BlockReadResult(status: LS_OK, bytes: bytes)
  }

  /// The granule of write tracking.
  public static let trackingBlockSize: UInt64 = 4096
  /// Blocks written since tracking started (nil: not tracking). A clone
  /// copies the disk while the guest runs, then these blocks again.
  public private(set) var writtenBlocks: Set<UInt64>?

  /// Starts (or restarts, emptied) tracking the blocks written.
  public func trackWrites() { writtenBlocks = [] }

  /// The blocks written since tracking started, sorted; tracking stops.
  public func takeWrittenBlocks() -> [UInt64] {
    defer { writtenBlocks = nil }
    return (writtenBlocks ?? []).sorted()
  }

  /// Writes `bytes` at `offset` (a valid range). Returns LS_OK or LS_EIO.
  public func write(_ bytes: UnsafeRawBufferPointer, offset: UInt64) -> Int32 {
    if writtenBlocks != nil, !bytes.isEmpty {
      let first = offset / Self.trackingBlockSize
      let last = (offset + UInt64(bytes.count) - 1) / Self.trackingBlockSize
      for block in first...last { writtenBlocks?.insert(block) }
    }
    var done = 0
    let fd = descriptor.rawValue
    while done < bytes.count {
      let wrote = try? systemCall("pwrite") {
        pwrite(fd, bytes.baseAddress.map { $0 + done }, bytes.count - done, off_t(offset) + off_t(done))
      }
      guard let wrote, wrote > 0 else { return LS_EIO }
      done += wrote
    }
    return LS_OK
  }

  /// Makes every write so far durable. Returns LS_OK or LS_EIO.
  public func flush() -> Int32 {
    let fd = descriptor.rawValue
    return (try? systemCall("fsync") { fsync(fd) }) != nil ? LS_OK : LS_EIO
  }
}
