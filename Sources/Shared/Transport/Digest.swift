import CLockstepSSL

/// The SHA-256 of `bytes` (32 bytes), e.g. to check that a primary and a
/// backup run the same guest image.
public func sha256(_ bytes: [UInt8]) -> [UInt8] {
  bytes.withUnsafeBytes { sha256($0) }
}

/// The SHA-256 of the bytes in `buffer` (32 bytes).
public func sha256(_ buffer: UnsafeRawBufferPointer) -> [UInt8] {
  var digest = [UInt8](repeating: 0, count: 32)
  let status = digest.withUnsafeMutableBufferPointer { output in
    lsssl_sha256(buffer.baseAddress, buffer.count, output.baseAddress)
  }
  precondition(status == 1, "OpenSSL's SHA-256 failed")
  return digest
}
