extension MachineConfiguration {
  /// The machine a log header describes, running `image`: what a replay
  /// (offline or on a backup) must build. The disk at `diskPath` is used
  /// (and created with the recorded size if missing) when the recorded VM
  /// had one.
  public init(replaying header: LogHeader, image: [UInt8], imagePath: String, diskPath: String?) {
    let hasDisk = header.diskSize > 0
    self.init(
      name: header.vm, image: image, imagePath: imagePath, memorySize: header.memorySize,
      arguments: header.arguments, diskPath: hasDisk ? diskPath : nil, diskCreateSize: hasDisk ? header.diskSize : nil,
      verifiesRegisters: header.verifiesRegisters)
  }
}
