/// The identity of a recorded execution: a replay must run the same guest
/// image in the same machine, or it is not a replay.
public struct LogHeader: Sendable, Equatable {
  /// The log format version this build writes and reads.
  public static let currentFormat: UInt16 = 1
  /// Bytes "LSLOG" + version marker at the start of the header body.
  static let magic: [UInt8] = Array("LSLOG\u{1}".utf8)

  /// The format version.
  public var format: UInt16
  /// The VM's name.
  public var vm: String
  /// A hash of the guest image file.
  public var imageDigest: UInt64
  /// Guest RAM bytes.
  public var memorySize: UInt64
  /// The CPUID table's fingerprint.
  public var cpuidFingerprint: UInt64
  /// The guest argument string.
  public var arguments: String
  /// Disk bytes (0: no disk).
  public var diskSize: UInt64
  /// Input entries carry a hash of the registers (verify mode).
  public var verifiesRegisters: Bool

  /// Creates a header.
  public init(
    format: UInt16 = LogHeader.currentFormat, vm: String, imageDigest: UInt64, memorySize: UInt64,
    cpuidFingerprint: UInt64, arguments: String, diskSize: UInt64, verifiesRegisters: Bool = false
  ) {
    self.format = format
    self.vm = vm
    self.imageDigest = imageDigest
    self.memorySize = memorySize
    self.cpuidFingerprint = cpuidFingerprint
    self.arguments = arguments
    self.diskSize = diskSize
    self.verifiesRegisters = verifiesRegisters
  }

  /// The header describing `configuration` running `image`.
  public init(configuration: MachineConfiguration, diskSize: UInt64) {
    var hasher = StableHasher()
    configuration.image.withUnsafeBytes { hasher.combine(bytes: $0) }
    self.init(
      vm: configuration.name, imageDigest: hasher.finalize(), memorySize: configuration.memorySize,
      cpuidFingerprint: CPUIDTable.lockstep.fingerprint, arguments: configuration.arguments, diskSize: diskSize,
      verifiesRegisters: configuration.verifiesRegisters)
  }

  /// Why `other` cannot replay this execution, or nil when it can.
  public func mismatch(with other: LogHeader) -> String? {
    if format != other.format { return "log format \(format) vs \(other.format)" }
    if imageDigest != other.imageDigest {
      return "different guest image (hash \(String(imageDigest, radix: 16)) vs \(String(other.imageDigest, radix: 16)))"
    }
    if memorySize != other.memorySize { return "memory size \(memorySize) vs \(other.memorySize) bytes" }
    if cpuidFingerprint != other.cpuidFingerprint { return "different CPUID tables" }
    if arguments != other.arguments { return "guest arguments '\(arguments)' vs '\(other.arguments)'" }
    if diskSize != other.diskSize { return "disk size \(diskSize) vs \(other.diskSize) bytes" }
    return nil
  }
}
