/// Parses sizes as operators write them: `64M`, `1G`, `512K`, `4096`,
/// `64MiB`. Binary units (K = 1024).
public enum ByteCount {
  /// The number of bytes `text` names, or nil with no number or an
  /// unknown unit.
  public static func parse(_ text: String) -> UInt64? {
    let trimmed = text.trimmingCharacters(in: " ")
    let digits = trimmed.prefix { $0.isASCII && $0.isNumber }
    guard !digits.isEmpty, let value = UInt64(digits) else { return nil }
    let unit = trimmed.dropFirst(digits.count).uppercased()
    let shift: UInt64
    switch unit {
    case "", "B": shift = 0
    case "K", "KB", "KIB": shift = 10
    case "M", "MB", "MIB": shift = 20
    case "G", "GB", "GIB": shift = 30
    case "T", "TB", "TIB": shift = 40
    default: return nil
    }
    let (result, overflow) = value.multipliedReportingOverflow(by: 1 << shift)
    return overflow ? nil : result
  }
}

extension String {
  fileprivate func trimmingCharacters(in character: Character) -> String {
    String(drop { $0 == character }.reversed().drop { $0 == character }.reversed())
  }
}
