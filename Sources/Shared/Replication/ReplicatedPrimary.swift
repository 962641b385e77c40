import Logging
import Synchronization

/// `primary-vmm --replication`: runs the VM with a backup. The guest starts
/// once a backup has attached; every input is recorded to the logging
/// channel; output waits for the backup's acknowledgement (the Output Rule).
///
/// With an arbiter (``FailoverSettings``), the primary first claims the VM
/// there, exchanges heartbeats with its backup, and when the backup falls
/// silent asks the arbiter before going on alone (unprotected, held output
/// released); if it loses, it halts. Without one, output stays held until
/// the backup reconnects and resumes.
public final class ReplicatedPrimary: Sendable {
  /// How a primary's run ended.
  public enum Ending: Sendable {
    /// The guest stopped (by itself, a signal or `lockstep poweroff`).
    case stopped(MachineReport)
    /// `lockstep failover`: the backup took the VM over at this report's exit.
    case handedOver(MachineReport)
    /// The arbiter gave the VM to another node: this one halted.
    case halted(String)
    /// The VM is live on another node (the arbiter's record): this node
    /// should join it as a backup instead.
    case liveElsewhere(ArbiterRecord)
  }

  /// The backup currently attached: its stream and the thread serving it.
  struct Session: Sendable {
    let stream: TLSStream
    let thread: NamedThread
  }

  struct State: ~Copyable {
    var generation: UInt64 = 0
    var alone = false
    var halted: String?
    var action: OperatorCommand?
    var backupName = ""
    var attachedOnce = false
    var session: Session?
    var heartbeat: Heartbeat?
    /// Counters of heartbeat endpoints already replaced.
    var heartbeatTotals = HeartbeatStatus()
    var stopping = false
    var rateSample: (time: UInt64, bytes: UInt64) = (0, 0)
    var logRate: UInt64 = 0
    var threads: [NamedThread] = []
    var cloning = false
    var lastClone: CloneReport?
    /// How a clone under way is doing (see ``NodeStatus``).
    var cloneProgress = CloneProgress()
    var clones: UInt64 = 0
    /// Went live as a backup (1), plus went on alone.
    var failovers: UInt64 = 0
  }

  /// A clone's progress, for status and metrics.
  struct CloneProgress {
    var round: UInt64 = 0
    var bytes: UInt64 = 0
    var firstCopyPages: UInt64 = 0
    var pages: UInt64 = 0
  }

  let state = Mutex(State())
  let configuration: MachineConfiguration
  let header: LogHeader
  let credentials: NodeCredentials
  let service: ServiceAddress?
  let replication: HostPort
  let settings: FailoverSettings?
  let arbiter: ArbiterClient?
  let logger: Logger
  let control: MachineControl
  let channel: LogChannel
  let gate: OutputGate
  let network: NetworkService?
  let listener: TLSListener
  /// Connections to the logging channel refused at the handshake, by kind
  /// (each kind logged at most once a minute).
  let refusals: RefusalLog

  /// Runs until the guest stops, the VM is handed over or the node halts.
  public static func run(
    configuration: MachineConfiguration, service: ServiceAddress?, replication: HostPort,
    credentials: NodeCredentials, maximumLag: Duration, failover: FailoverSettings? = nil,
    metrics: NodeMetrics? = nil, logger: Logger
  ) throws -> Ending {
    let control = try MachineControl()
    let stopper = try SignalStopper.install(control: control, logger: logger)
    if failover != nil && credentials.heartbeatKey == nil {
      throw MachineSetupError(
        "\(credentials.directory) has no heartbeat key: failover needs one (re-issue it with `lockstep certs add`)")
    }
    // The VM is claimed at the arbiter before anything visible happens (the
    // service address, its VIP): a node refused here disturbs nobody.
    let arbiter = try failover.map { settings throws in
      try ArbiterClient(address: settings.arbiter, credentials: credentials, timeout: .seconds(2))
    }
    var generation: UInt64 = 0
    if let arbiter {
      switch try claim(
        arbiter, vm: configuration.name, service: service, replication: replication, control: control, logger: logger)
      {
      case .claimed(let granted): generation = granted
      case .liveElsewhere(let record): return .liveElsewhere(record)
      }
    }
    let diskSize =
      try configuration.diskPath.map { path throws in
        try BlockDevice(path: path, createSize: configuration.diskCreateSize).size
      } ?? 0
    var network: NetworkService?
    if let service {
      try service.acquire(logger: logger)
      network = try service.bind(machineWakeup: control.wakeup, logger: logger)
    }
    let primary = try ReplicatedPrimary(
      configuration: configuration, header: LogHeader(configuration: configuration, diskSize: diskSize),
      service: service, network: network, replication: replication, credentials: credentials,
      maximumLag: maximumLag, failover: failover, arbiter: arbiter, control: control, logger: logger)
    primary.state.withLock { $0.generation = generation }
    metrics?.follow { primary.status() }
    return try withExtendedLifetime(stopper) { try primary.run() }
  }

  init(
    configuration: MachineConfiguration, header: LogHeader, service: ServiceAddress?, network: NetworkService?,
    replication: HostPort, credentials: NodeCredentials, maximumLag: Duration, failover: FailoverSettings?,
    arbiter: ArbiterClient?, control: MachineControl, logger: Logger
  ) throws {
    self.configuration = configuration
    self.header = header
    self.credentials = credentials
    self.service = service
    self.replication = replication
    self.settings = failover
    self.arbiter = arbiter
    self.logger = logger
    self.control = control
    self.network = network
    refusals = RefusalLog(logger: logger)
    let gateHolder = Mutex<OutputGate?>(nil)
    let heartbeatHolder = Mutex<Heartbeat?>(nil)
    let channel = try LogChannel(maximumLag: maximumLag, logger: logger) { position in
      gateHolder.withLock { $0 }?.acknowledge(upTo: position)
      heartbeatHolder.withLock { $0 }?.heard()
    }
    let gate = try OutputGate(network: network) { position in channel.announce(position) }
    gateHolder.withLock { $0 = gate }
    self.channel = channel
    self.gate = gate
    listener = try TLSListener(
      host: replication.host, port: replication.port, context: TLSContext(credentials: credentials, side: .server),
      allowedRoles: [.vmm, .operator])
    onHeartbeatChange = { heartbeat in heartbeatHolder.withLock { $0 = heartbeat } }
  }

  /// Keeps the acknowledgement path's view of the heartbeat current.
  let onHeartbeatChange: @Sendable (Heartbeat?) -> Void

  var serviceText: String { service?.address.description ?? "" }

  func run() throws -> Ending {
    try startServing()
    defer { stopServing() }
    logger.info("waiting for a backup", metadata: ["replication": "\(replication.host):\(listener.port)"])
    while !state.withLock({ $0.attachedOnce }) && !control.stopRequested {
      control.wakeup.wait(untilMonotonic: ClockReading.monotonicNanoseconds() + 50_000_000)
    }
    var announcer: NamedThread?
    if let network, let service {
      try network.start()
      announcer = service.announce(logger: logger)
      logger.info("serving clients", metadata: ["address": "\(service.address.host):\(network.port)"])
    }
    defer { announcer?.join() }
    let outcome = Mutex<Result<MachineReport, MachineSetupError>?>(nil)
    let vcpu = try NamedThread(name: "vcpu-0") { [self] in
      let result: Result<MachineReport, MachineSetupError>
      do {
        let recorder = try Recorder(writer: channel, header: header)
        result = StandaloneVMM.runOnThisThread(configuration, recorder, gate, network, control)
      } catch {
        result = .failure(MachineSetupError("\(error)"))
      }
      outcome.withLock { $0 = result }
    }
    vcpu.join()
    switch outcome.withLock({ $0 }) {
    case .success(let report): return finish(report)
    case .failure(let error): throw error
    case nil: throw MachineSetupError("the vCPU thread ended without a result")
    }
  }

  /// Starts the listener's and the failure detector's threads.
  func startServing() throws {
    let acceptor = try NamedThread(name: "log-accept") { [self] in acceptConnections() }
    let monitor = try NamedThread(name: "failure-detect") { [self] in monitorBackup() }
    state.withLock { $0.threads = [acceptor, monitor] }
  }

  /// Stops every thread and connection this primary started.
  func stopServing() {
    state.withLock { $0.stopping = true }
    network?.stop()
    channel.close()
    listener.close()
    let (threads, session, heartbeat) = state.withLock { state in
      defer {
        state.threads = []
        state.session = nil
        state.heartbeat = nil
      }
      return (state.threads, state.session, state.heartbeat)
    }
    for thread in threads { thread.join() }
    onHeartbeatChange(nil)
    session?.stream.close()
    session?.thread.join()
    heartbeat?.stop()
  }

  /// A backup that won the arbiter becomes this primary, running alone at
  /// `generation` until a new backup joins by cloning (the machine is
  /// already running: only the serving threads start).
  func adoptAlone(generation: UInt64) throws {
    state.withLock { state in
      state.generation = generation
      state.alone = true
      state.attachedOnce = true
      state.failovers = 1
    }
    channel.goAlone()
    gate.acknowledge(upTo: .max)
    try startServing()
    logger.info(
      "accepting a new backup (by cloning) on \(replication.host):\(listener.port)",
      metadata: ["generation": "\(generation)"])
  }

  /// After the guest stopped: hands over, halts or stops cleanly.
  func finish(_ report: MachineReport) -> Ending {
    let (halted, action) = state.withLock { ($0.halted, $0.action) }
    if let halted {
      service?.release(logger: logger)
      return .halted(halted)
    }
    if action == .failover {
      handOver(at: report.exits)
      service?.release(logger: logger)
      return .handedOver(report)
    }
    // Let the backup acknowledge the end, so it can finish its replay.
    waitFor(seconds: 5) { channel.unacknowledgedBytes == 0 || !channel.isConnected }
    let status = channel.status
    logger.info(
      "replication: log_bytes=\(status.bytesLogged) log_records=\(status.recordsLogged) lag_p50_us=\(status.lagP50 / 1000) lag_p99_us=\(status.lagP99 / 1000) lag_max_us=\(status.lagMaximum / 1000) acknowledged=\(status.acknowledged)"
    )
    markPoweredOff()
    service?.release(logger: logger)
    return .stopped(report)
  }

  /// Waits (bounded) until `done` holds.
  func waitFor(seconds: UInt64, _ done: () -> Bool) {
    let end = ClockReading.monotonicNanoseconds() + seconds * 1_000_000_000
    while !done() && ClockReading.monotonicNanoseconds() < end {
      Wakeup.sleep(milliseconds: 5)
    }
  }

  // MARK: The arbiter

  /// Claims the VM at the arbiter before it starts: when the VM is new or
  /// was powered off (its record has no replication address). A VM held by
  /// a node, even this one, may still run there or be about to go live on
  /// its backup (with acknowledged writes this node's disk lacks): this
  /// node joins it as a backup instead. Waits while the arbiter is
  /// unreachable.
  enum Claim {
    case claimed(UInt64)
    case liveElsewhere(ArbiterRecord)
  }

  static func claim(
    _ arbiter: ArbiterClient, vm: String, service: ServiceAddress?, replication: HostPort, control: MachineControl,
    logger: Logger
  ) throws -> Claim {
    var failures = 0
    while !control.stopRequested {
      let record: ArbiterRecord
      do {
        record = try arbiter.query(vm: vm)
      } catch {
        if failures % 50 == 0 { logger.warning("\(error.message); waiting for the arbiter before starting the VM") }
        failures += 1
        Wakeup.sleep(milliseconds: 200)
        continue
      }
      if record.generation > 0 && !record.replicationAddress.isEmpty {
        // Held by a node (even this one, restarted: its backup may be going
        // live with writes this node's disk lacks): join it as a backup.
        logger.notice(
          "VM '\(vm)' is live on \(record.holder ?? "another node") (generation \(record.generation)); joining it as a backup",
          metadata: ["primary": "\(record.replicationAddress)"])
        return .liveElsewhere(record)
      }
      let outcome = arbiter.testAndSetRetrying(
        vm: vm, expectedGeneration: record.generation, serviceAddress: service.map { "\($0.address)" } ?? "",
        replicationAddress: replication.description, logger: logger
      ) { !control.stopRequested }
      switch outcome {
      case .granted(let granted)?:
        logger.info("claimed the VM at the arbiter", metadata: ["generation": "\(granted.generation)"])
        return .claimed(granted.generation)
      case .lost(let current)?:
        logger.warning("another node claimed the VM first (\(current)); checking again")
      case nil:
        break
      }
    }
    throw MachineSetupError("stopped before the arbiter could be reached")
  }

  /// After a clean stop: records at the arbiter that the VM is off (this
  /// node, no addresses), so any node may start it again. Best effort.
  func markPoweredOff() {
    guard let arbiter else { return }
    let (generation, halted) = state.withLock { ($0.generation, $0.halted) }
    guard halted == nil else { return }
    let deadline = ClockReading.monotonicNanoseconds() + 3_000_000_000
    let outcome = arbiter.testAndSetRetrying(
      vm: configuration.name, expectedGeneration: generation, serviceAddress: "", replicationAddress: "",
      logger: logger
    ) { ClockReading.monotonicNanoseconds() < deadline }
    if case .granted(let record)? = outcome {
      logger.info("recorded the VM as powered off at the arbiter", metadata: ["generation": "\(record.generation)"])
    }
  }

  // MARK: Failure detection

  /// The failure detector's thread: when the backup falls silent, asks the
  /// arbiter whether this node may go on alone.
  func monitorBackup() {
    while !state.withLock({ $0.stopping }) {
      Wakeup.sleep(milliseconds: 10)
      sampleLogRate()
      guard let arbiter else { continue }
      let suspect = state.withLock { state -> Heartbeat? in
        guard state.attachedOnce, !state.alone, state.halted == nil, state.action == nil,
          let heartbeat = state.heartbeat, heartbeat.isPeerSuspected()
        else { return nil }
        return heartbeat
      }
      guard let suspect else { continue }
      let (generation, backup) = state.withLock { ($0.generation, $0.backupName) }
      logger.warning(
        "backup \(backup) silent for \(suspect.detector.silence(now: ClockReading.monotonicNanoseconds()) / 1_000_000) ms; asking the arbiter to go on alone",
        metadata: ["generation": "\(generation)"])
      let outcome = arbiter.testAndSetRetrying(
        vm: configuration.name, expectedGeneration: generation, serviceAddress: serviceText,
        replicationAddress: replication.description, logger: logger
      ) { [self] in
        suspect.isPeerSuspected() && !state.withLock { $0.stopping || $0.action != nil }
      }
      switch outcome {
      case .granted(let record)?:
        goAlone(record)
      case .lost(let record)?:
        halt("the arbiter gave the VM to \(record.holder ?? "another node") at generation \(record.generation)")
      case nil:
        logger.info("backup \(backup) heard from again; staying protected")
      }
    }
  }

  /// Won the arbiter after losing the backup: run on unprotected.
  func goAlone(_ record: ArbiterRecord) {
    let (session, heartbeat) = state.withLock { state in
      state.generation = record.generation
      state.alone = true
      state.failovers += 1
      state.heartbeatTotals = state.heartbeatTotals.adding(state.heartbeat?.status)
      defer {
        state.session = nil
        state.heartbeat = nil
      }
      return (state.session, state.heartbeat)
    }
    onHeartbeatChange(nil)
    channel.goAlone()
    gate.acknowledge(upTo: .max)
    session?.stream.close()
    heartbeat?.stop()
    logger.warning(
      "running ALONE (unprotected): won generation \(record.generation) at the arbiter after losing the backup; held output released"
    )
  }

  /// Lost the arbiter: release nothing more, stop the guest.
  func halt(_ reason: String) {
    state.withLock { $0.halted = reason }
    gate.shut()
    channel.close()
    logger.error("halting: \(reason); this node releases nothing more")
    control.requestStop()
  }

  func sampleLogRate() {
    let now = ClockReading.monotonicNanoseconds()
    let bytes = channel.bytesLogged
    state.withLock { state in
      let elapsed = now - state.rateSample.time
      guard elapsed >= 1_000_000_000 else { return }
      state.logRate = (bytes - min(bytes, state.rateSample.bytes)) * 1_000_000_000 / elapsed
      state.rateSample = (now, bytes)
    }
  }

  // MARK: Handover (`lockstep failover`)

  /// The guest stopped at `exits` for a handover: once the backup holds the
  /// whole log, tell it to take over, and wait (bounded) until it has.
  func handOver(at exits: UInt64) {
    waitFor(seconds: 5) { channel.isFullyAcknowledged || !channel.isConnected }
    guard channel.isConnected else {
      logger.error("the backup went away during the handover; it takes over when it notices the silence")
      return
    }
    channel.sendHandover(exits: exits)
    logger.info("handed the VM over to the backup at exit \(exits); waiting for it to take over")
    waitFor(seconds: 5) { !channel.isConnected }
  }
}
