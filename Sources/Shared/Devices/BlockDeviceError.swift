/// The disk image cannot be used.
public struct BlockDeviceError: Error, CustomStringConvertible, Sendable {
  /// The image's path.
  public var path: String
  /// Why.
  public var reason: String

  public var description: String { "disk \(path): \(reason)" }
}
