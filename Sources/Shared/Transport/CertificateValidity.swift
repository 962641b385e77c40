#if canImport(Glibc)
  import Glibc
#endif

/// When a certificate is valid, in Unix seconds (UTC).
public struct CertificateValidity: Sendable, Equatable {
  /// How far back a new certificate's validity starts, so that a peer whose
  /// clock is a little behind does not see it as not yet valid.
  public static let clockSkewAllowance: Int64 = 300

  /// The first second the certificate is valid.
  public var notBefore: Int64
  /// The last second the certificate is valid.
  public var notAfter: Int64

  /// A validity from `notBefore` to `notAfter` (Unix seconds).
  public init(notBefore: Int64, notAfter: Int64) {
    self.notBefore = notBefore
    self.notAfter = notAfter
  }

  /// Valid for `days` days from `now`, starting ``clockSkewAllowance``
  /// seconds before it.
  public static func days(_ days: Int, from now: Int64 = CertificateValidity.now()) -> CertificateValidity {
    CertificateValidity(notBefore: now - clockSkewAllowance, notAfter: now + Int64(days) * 86_400)
  }

  /// The current Unix time in seconds.
  public static func now() -> Int64 {
    Int64(time(nil))
  }

  /// `time` as `YYYY-MM-DD HH:MM UTC`.
  public static func utcText(_ time: Int64) -> String {
    var seconds = time_t(time)
    var parts = tm()
    guard gmtime_r(&seconds, &parts) != nil else { return "\(time)" }
    var text = [CChar](repeating: 0, count: 32)
    let length = strftime(&text, text.count, "%Y-%m-%d %H:%M UTC", &parts)
    return String(decoding: text[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
  }
}
