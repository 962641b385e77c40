/// A guest image that `ElfImage` refused to load.
///
/// `reason` names the offending field and its value precisely enough that a
/// guest author can find the problem with `readelf -lh`, for example
/// `program header 2: segment [0x100000, +0x7fffffff) extends past the guest
/// load window end 0x3ff00000`.
public struct ElfImageError: Error, CustomStringConvertible, Equatable, Sendable {
  /// What is wrong with the image, without the "invalid guest image" prefix.
  public var reason: String

  /// Creates an error with the given reason.
  public init(reason: String) {
    self.reason = reason
  }

  /// `invalid guest image: <reason>`.
  public var description: String {
    "invalid guest image: \(reason)"
  }
}
