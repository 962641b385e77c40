/// A fixed-size buffer for a C function to write a NUL-terminated string
/// into (an error message, a certificate name, a PEM block).
struct CTextBuffer {
  var bytes: [CChar]

  /// A zero-filled buffer of `capacity` bytes.
  init(capacity: Int) {
    bytes = [CChar](repeating: 0, count: capacity)
  }

  /// The capacity, for the C function's `capacity` argument.
  var capacity: Int { bytes.count }

  /// What the C function wrote, up to the first NUL.
  var text: String {
    String(decoding: bytes.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
  }
}
