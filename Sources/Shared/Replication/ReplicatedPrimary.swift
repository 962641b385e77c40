import Logging
import Synchronization

/// `primary-vmm --replication`: runs the VM with a backup. The guest starts
/// once a backup has attached; every input is recorded to the logging
/// channel; output waits for the backup's acknowledgement (the Output Rule).
/// If the backup goes away, output stays held until it reconnects and
/// resumes (the failover issue adds going on alone).
public enum ReplicatedPrimary {
  /// Runs until the guest stops; returns its report.
  public static func run(
    configuration: MachineConfiguration, serve: HostPort?, replication: HostPort, credentials: NodeCredentials,
    maximumLag: Duration, logger: Logger
  ) throws -> MachineReport {
    let control = try MachineControl()
    let stopper = try SignalStopper.install(control: control, logger: logger)
    let diskSize =
      try configuration.diskPath.map { path throws in
        try BlockDevice(path: path, createSize: configuration.diskCreateSize).size
      } ?? 0
    let header = LogHeader(configuration: configuration, diskSize: diskSize)
    let network = try serve.map { address throws(SystemError) in
      try NetworkService(host: address.host, port: address.port, machineWakeup: control.wakeup)
    }
    let gateHolder = Mutex<OutputGate?>(nil)
    let channel = try LogChannel(maximumLag: maximumLag, logger: logger) { position in
      gateHolder.withLock { $0 }?.acknowledge(upTo: position)
    }
    let gate = try OutputGate(network: network) { position in channel.announce(position) }
    gateHolder.withLock { $0 = gate }

    let listener = try TLSListener(
      host: replication.host, port: replication.port, context: TLSContext(credentials: credentials, side: .server),
      allowedRoles: [.vmm])
    logger.info("waiting for a backup", metadata: ["replication": "\(replication.host):\(listener.port)"])
    let attached = Atomic<Bool>(false)
    let acceptor = try NamedThread(name: "log-channel") {
      acceptBackups(listener: listener, channel: channel, header: header, attached: attached, logger: logger)
    }
    while !attached.load(ordering: .acquiring) && !control.stopRequested {
      control.wakeup.wait(untilMonotonic: ClockReading.monotonicNanoseconds() + 50_000_000)
    }
    if let network, let serve {
      try network.start()
      logger.info("serving clients", metadata: ["address": "\(serve.host):\(network.port)"])
    }
    defer {
      network?.stop()
      channel.close()
      listener.close()
      acceptor.join()
    }
    let outcome = Mutex<Result<MachineReport, MachineSetupError>?>(nil)
    let vcpu = try NamedThread(name: "vcpu-0") {
      let result: Result<MachineReport, MachineSetupError>
      do {
        let recorder = try Recorder(writer: channel, header: header)
        result = StandaloneVMM.runOnThisThread(configuration, recorder, gate, network, control)
      } catch {
        result = .failure(MachineSetupError("\(error)"))
      }
      outcome.withLock { $0 = result }
    }
    withExtendedLifetime(stopper) { vcpu.join() }
    // Let the backup acknowledge the end, so it can finish its replay.
    let end = ClockReading.monotonicNanoseconds() + 5_000_000_000
    while channel.status.unacknowledgedBytes > 0 && channel.status.connected
      && ClockReading.monotonicNanoseconds() < end
    {
      control.wakeup.wait(untilMonotonic: ClockReading.monotonicNanoseconds() + 10_000_000)
    }
    let status = channel.status
    logger.info(
      "replication: log_bytes=\(status.bytesLogged) log_records=\(status.recordsLogged) lag_p50_us=\(status.lagP50 / 1000) lag_p99_us=\(status.lagP99 / 1000) lag_max_us=\(status.lagMaximum / 1000) acknowledged=\(status.acknowledged)"
    )
    switch outcome.withLock({ $0 }) {
    case .success(let report): return report
    case .failure(let error): throw error
    case nil: throw MachineSetupError("the vCPU thread ended without a result")
    }
  }

  /// Accepts backups one at a time, checks their handshake, and streams the
  /// log to each until it goes away.
  static func acceptBackups(
    listener: TLSListener, channel: LogChannel, header: LogHeader, attached: borrowing Atomic<Bool>, logger: Logger
  ) {
    while true {
      let stream: TLSStream
      do {
        guard let accepted = try listener.accept(timeout: .milliseconds(500)) else {
          if listener.isClosed { return }
          continue
        }
        stream = accepted
      } catch {
        if listener.isClosed { return }
        logger.warning("a connection to the logging channel was refused: \(error)")
        continue
      }
      do {
        try stream.setTimeout(.seconds(5))
        var reader = ChannelReader(stream: stream)
        guard case .hello(let theirs, let resumeFrom) = try reader.readControl() else {
          throw LogDecodingError("\(stream.peerDescription) did not say hello")
        }
        if let reason = handshakeMismatch(ours: header, theirs: theirs) {
          var refusal: [UInt8] = []
          ChannelMessage.refuse(reason: reason).encode(into: &refusal)
          try? stream.write(refusal)
          stream.close()
          logger.error("refused backup \(stream.peerDescription): \(reason)")
          continue
        }
        guard channel.canResume(from: resumeFrom) else {
          var refusal: [UInt8] = []
          ChannelMessage.refuse(
            reason: "the log before exit \(resumeFrom) is no longer held here; a new backup must join by cloning"
          ).encode(into: &refusal)
          try? stream.write(refusal)
          stream.close()
          continue
        }
        var welcome: [UInt8] = []
        ChannelMessage.welcome(header: header, startsAt: resumeFrom).encode(into: &welcome)
        try stream.write(welcome)
        logger.info("backup attached", metadata: ["backup": "\(stream.peerDescription)", "from": "\(resumeFrom)"])
        attached.store(true, ordering: .releasing)
        let reason = channel.serve(stream, from: resumeFrom)
        stream.close()
        logger.warning(
          "backup lost; output is held until it reconnects",
          metadata: ["backup": "\(stream.peerDescription)", "reason": "\(reason)"])
      } catch {
        stream.close()
        logger.warning("backup handshake failed: \(error)")
      }
    }
  }

  /// Why a backup announcing `theirs` cannot replay the execution `ours`
  /// describes, or nil.
  static func handshakeMismatch(ours: LogHeader, theirs: LogHeader) -> String? {
    if theirs.format != ours.format {
      return "log format version \(theirs.format) is not this primary's \(ours.format)"
    }
    if theirs.vm != ours.vm { return "the backup is for VM '\(theirs.vm)', this primary runs '\(ours.vm)'" }
    if theirs.imageDigest != ours.imageDigest {
      return
        "the backup runs a different guest image (hash \(String(theirs.imageDigest, radix: 16)), the primary's is \(String(ours.imageDigest, radix: 16)))"
    }
    if theirs.cpuidFingerprint != ours.cpuidFingerprint { return "the backup presents a different CPUID table" }
    return nil
  }
}
