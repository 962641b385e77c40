import Logging

#if canImport(Glibc)
  import Glibc
#endif

/// What `primary-vmm` does once its flags are parsed: read the guest
/// image, build the configuration, run, report.
public enum PrimaryLauncher {
  /// Runs the VM with no backup and logs how it ended.
  public static func runStandalone(
    vm: String, guestPath: String, memory: String, serve: String?, disk: String?, diskSize: String?,
    guestArgs: String, kvmDevice: String = "/dev/kvm", recordFile: String? = nil, verifyRegisters: Bool = false,
    metrics: NodeMetrics? = nil, logger: Logger
  ) throws -> MachineReport {
    guard let memoryBytes = ByteCount.parse(memory) else {
      throw MachineSetupError("--memory '\(memory)' is not a size")
    }
    let image = try readFile(guestPath)
    let configuration = MachineConfiguration(
      name: vm, image: image, imagePath: guestPath, memorySize: memoryBytes, arguments: guestArgs,
      diskPath: disk, diskCreateSize: diskSize.flatMap(ByteCount.parse), kvmDevicePath: kvmDevice,
      verifiesRegisters: verifyRegisters)
    logger.warning("STANDALONE: this VM has no backup; fault tolerance is OFF")
    let inputs: @Sendable () throws -> any InputSource
    if let recordFile {
      let diskSize = try disk.map { try BlockDevice(path: $0, createSize: configuration.diskCreateSize).size } ?? 0
      let header = LogHeader(configuration: configuration, diskSize: diskSize)
      inputs = { try Recorder(writer: LogFileWriter(path: recordFile), header: header) }
      logger.info("recording every input", metadata: ["log": "\(recordFile)"])
    } else {
      inputs = { LiveInputs() }
    }
    let report = try StandaloneVMM.run(
      configuration: configuration, serve: serve.flatMap(HostPort.init(parsing:)), logger: logger, metrics: metrics,
      inputs: inputs)
    if let problem = report.inputSourceError {
      logger.error("the log could not be completed: \(problem)")
    }
    log(report, logger)
    return report
  }

  /// The exit status of a node that lost the arbiter's test-and-set and
  /// halted.
  public static let haltedStatus: Int32 = 4

  /// Runs the VM with a backup attached over the logging channel; returns
  /// the exit status (the guest's, 0 after a handover, 4 when halted).
  public static func runReplicated(
    vm: String, guestPath: String, memory: String, serve: String?, disk: String?, diskSize: String?,
    guestArgs: String, replication: String, tlsDirectory: String, maxLagMilliseconds: Int,
    verifyRegisters: Bool = false, failover: FailoverSettings? = nil, metrics: NodeMetrics? = nil, logger: Logger
  ) throws -> Int32 {
    guard let memoryBytes = ByteCount.parse(memory) else {
      throw MachineSetupError("--memory '\(memory)' is not a size")
    }
    guard let replicationAddress = HostPort(parsing: replication) else {
      throw MachineSetupError("--replication '\(replication)' is not HOST:PORT")
    }
    let credentials = try NodeCredentials(loadingFrom: tlsDirectory)
    let configuration = MachineConfiguration(
      name: vm, image: try readFile(guestPath), imagePath: guestPath, memorySize: memoryBytes, arguments: guestArgs,
      diskPath: disk, diskCreateSize: diskSize.flatMap(ByteCount.parse), verifiesRegisters: verifyRegisters)
    let service = serve.flatMap(HostPort.init(parsing:)).map {
      ServiceAddress(address: $0, virtualIP: failover?.serviceVIP, device: failover?.serviceDevice)
    }
    let ending = try ReplicatedPrimary.run(
      configuration: configuration, service: service, replication: replicationAddress, credentials: credentials,
      maximumLag: .milliseconds(maxLagMilliseconds), failover: failover, metrics: metrics, logger: logger)
    switch ending {
    case .stopped(let report):
      log(report, logger)
      return report.exitStatus
    case .handedOver(let report):
      logger.info("handed over to the backup at exit \(report.exits); this node stops")
      return 0
    case .halted(let reason):
      logger.error("halted: \(reason)")
      return haltedStatus
    case .liveElsewhere(let record):
      // Roles heal themselves: the VM runs elsewhere, so this node becomes
      // its backup (a restarted primary, or a node started for a live VM).
      logger.notice("starting as the backup of \(record.holder ?? "the live node") instead")
      return try BackupLauncher.run(
        vm: vm, guestPath: guestPath, primary: record.replicationAddress, tlsDirectory: tlsDirectory, disk: disk,
        serve: serve, replication: replication, failover: failover, metrics: metrics, logger: logger)
    }
  }

  static func log(_ report: MachineReport, _ logger: Logger) {
    switch report.stop {
    case .exited, .stopped, .endOfRecording: logger.info("VM stopped: \(report.summary)")
    default: logger.error("VM stopped: \(report.summary)")
    }
  }

  /// The whole file at `path`, or an error that names it.
  public static func readFile(_ path: String) throws -> [UInt8] {
    let owner: FileDescriptorOwner
    do {
      owner = try FileDescriptorOwner(opening: path, flags: O_RDONLY)
    } catch {
      throw MachineSetupError("cannot read guest image \(path): \(error)")
    }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    let fd = owner.rawValue
    while bytes.count <= 256 << 20 {
      let got = try chunk.withUnsafeMutableBytes { raw in
        try systemCall("read(\(path))") { read(fd, raw.baseAddress, raw.count) }
      }
      if got == 0 { return bytes }
      bytes.append(contentsOf: chunk[..<got])
    }
    throw MachineSetupError("guest image \(path) is larger than 256 MiB")
  }
}

extension MachineReport {
  /// The process exit status for this stop (see `primary-vmm --help`).
  public var exitStatus: Int32 {
    switch stop {
    case .exited(let code): code & 0xFF
    case .stopped, .endOfRecording: 0
    case .aborted, .fault, .guestError, .inputFailed: 70
    case .hypervisorError: 71
    }
  }
}

extension Logger {
  /// This logger with the VM's name as metadata.
  public func with(vm: String) -> Logger {
    var copy = self
    copy[metadataKey: "vm"] = "\(vm)"
    return copy
  }
}
