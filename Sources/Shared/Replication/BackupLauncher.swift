import Logging

/// What `backup-vmm` does once its flags are parsed.
public enum BackupLauncher {
  /// Runs the backup and logs how it ended; returns the exit status: 0 in
  /// sync with a primary that stopped, 3 when the replay ended otherwise,
  /// 4 when this node lost the arbiter and halted, the guest's own status
  /// when this node went live.
  public static func run(
    vm: String, guestPath: String, primary: String?, tlsDirectory: String, disk: String?, serve: String? = nil,
    replication: String? = nil, failover: FailoverSettings? = nil, metrics: NodeMetrics? = nil, logger: Logger
  ) throws -> Int32 {
    let credentials = try NodeCredentials(loadingFrom: tlsDirectory)
    let address = try primaryAddress(vm: vm, primary: primary, credentials: credentials, failover: failover)
    let image = try PrimaryLauncher.readFile(guestPath)
    let service = serve.flatMap(HostPort.init(parsing:)).map {
      ServiceAddress(address: $0, virtualIP: failover?.serviceVIP, device: failover?.serviceDevice)
    }
    let report = try BackupVMM.run(
      vm: vm, image: image, imagePath: guestPath, primary: address, credentials: credentials, diskPath: disk,
      service: service, failover: failover, replicationAddress: replication ?? "", metrics: metrics, logger: logger)
    let summary = report.machine.summary
    if let halted = report.halted {
      logger.error("halted: \(halted)")
      return PrimaryLauncher.haltedStatus
    }
    if let generation = report.wentLive {
      logger.info("VM stopped after going live at generation \(generation): \(summary)")
      return report.machine.exitStatus
    }
    if report.inSync {
      logger.info("replay reached the primary's final state exactly: \(summary)")
      return 0
    }
    logger.error("replay ended (\(report.channelEnd)): \(summary)")
    return 3
  }

  /// `--primary`, or else the replication address the arbiter records for
  /// the VM's current holder.
  static func primaryAddress(
    vm: String, primary: String?, credentials: NodeCredentials, failover: FailoverSettings?
  ) throws -> HostPort {
    if let primary {
      guard let address = HostPort(parsing: primary) else {
        throw MachineSetupError("--primary '\(primary)' is not HOST:PORT")
      }
      return address
    }
    guard let failover else { throw MachineSetupError("give --primary HOST:PORT, or --arbiter to look it up") }
    let client = try ArbiterClient(address: failover.arbiter, credentials: credentials)
    let record = try client.query(vm: vm)
    guard let address = HostPort(parsing: record.replicationAddress) else {
      throw MachineSetupError(
        "the arbiter knows no running primary for VM '\(vm)' (\(record)); start the primary first, or give --primary")
    }
    return address
  }
}
