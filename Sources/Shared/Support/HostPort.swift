/// A `HOST:PORT` (or `[IPv6]:PORT`) address as given on a command line.
public struct HostPort: Sendable, Equatable, CustomStringConvertible {
  /// The host name or numeric address (brackets removed).
  public var host: String
  /// The TCP/UDP port.
  public var port: Int

  /// Creates an address.
  public init(host: String, port: Int) {
    self.host = host
    self.port = port
  }

  /// Parses `HOST:PORT`; nil when malformed.
  public init?(parsing text: String) {
    guard let colon = text.lastIndex(of: ":") else { return nil }
    var host = String(text[..<colon])
    guard let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else { return nil }
    if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
    guard !host.isEmpty else { return nil }
    self.host = host
    self.port = port
  }

  public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
