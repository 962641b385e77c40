import Logging

/// What `backup-vmm` does once its flags are parsed.
public enum BackupLauncher {
  /// Runs the backup and logs how it ended; returns the exit status.
  public static func run(
    vm: String, guestPath: String, primary: String, tlsDirectory: String, disk: String?, logger: Logger
  ) throws -> Int32 {
    guard let address = HostPort(parsing: primary) else {
      throw MachineSetupError("--primary '\(primary)' is not HOST:PORT")
    }
    let credentials = try NodeCredentials(loadingFrom: tlsDirectory)
    let image = try PrimaryLauncher.readFile(guestPath)
    let report = try BackupVMM.run(
      vm: vm, image: image, imagePath: guestPath, primary: address, credentials: credentials, diskPath: disk,
      logger: logger)
    let summary = report.machine.summary
    if report.inSync {
      logger.info("replay reached the primary's final state exactly: \(summary)")
      return 0
    }
    logger.error("replay ended (\(report.channelEnd)): \(summary)")
    return 3
  }
}
