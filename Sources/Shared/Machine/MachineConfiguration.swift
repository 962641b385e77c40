/// What a machine is: the guest image, its RAM, arguments and disk.
public struct MachineConfiguration: Sendable {
  /// The VM's name (for logs).
  public var name: String
  /// The guest image file's bytes.
  public var image: [UInt8]
  /// Where the image came from (for messages).
  public var imagePath: String
  /// Bytes of guest RAM: a multiple of 2 MiB, at least 4 MiB, at most 3 GiB.
  public var memorySize: UInt64
  /// The argument string the guest finds in its boot info.
  public var arguments: String
  /// The disk image, if any.
  public var diskPath: String?
  /// Create the disk with this many bytes if missing (and require the size).
  public var diskCreateSize: UInt64?
  /// Keep every exit in the trace (tests), not only its hash.
  public var keepsExitTrace: Bool
  /// The KVM device.
  public var kvmDevicePath: String
  /// Hash the registers at every logged exit (recorded, and checked on
  /// replay): slower, catches a divergence at the first exit it shows.
  public var verifiesRegisters: Bool

  /// Creates a configuration.
  public init(
    name: String, image: [UInt8], imagePath: String, memorySize: UInt64, arguments: String = "",
    diskPath: String? = nil, diskCreateSize: UInt64? = nil, keepsExitTrace: Bool = false,
    kvmDevicePath: String = "/dev/kvm", verifiesRegisters: Bool = false
  ) {
    self.name = name
    self.image = image
    self.imagePath = imagePath
    self.memorySize = memorySize
    self.arguments = arguments
    self.diskPath = diskPath
    self.diskCreateSize = diskCreateSize
    self.keepsExitTrace = keepsExitTrace
    self.kvmDevicePath = kvmDevicePath
    self.verifiesRegisters = verifiesRegisters
  }
}
