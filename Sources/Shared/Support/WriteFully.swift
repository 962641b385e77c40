#if canImport(Glibc)
  import Glibc
#endif

/// Writes all of `bytes` to `descriptor`, retrying short writes and EINTR.
/// Returns false if the descriptor failed (the rest is dropped).
@discardableResult
func writeFully(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer) -> Bool {
  var offset = 0
  while offset < bytes.count {
    let wrote = try? systemCall("write") {
      write(descriptor, bytes.baseAddress.map { $0 + offset }, bytes.count - offset)
    }
    guard let wrote, wrote > 0 else { return false }
    offset += wrote
  }
  return true
}
