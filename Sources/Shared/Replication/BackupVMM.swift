import CLockstepKVM
import Logging
import Synchronization

/// `backup-vmm`: joins a running VM as its backup. Receives the log over
/// TLS, replays it on its own KVM with output discarded and its own disk,
/// and acknowledges what it holds and how far it has replayed.
///
/// With an arbiter (``FailoverSettings``) it watches the primary (UDP
/// heartbeats, the log's own traffic, a channel the primary's host refuses
/// to reopen, a handover) and when it suspects it, asks the arbiter. If it
/// wins it stops acknowledging, replays everything it received, and goes
/// live on the service address (``Takeover``); if it loses it halts.
public final class BackupVMM: Sendable {
  /// How a backup's run ended.
  public struct Report: Sendable {
    /// The machine (replayed, and live after a takeover).
    public var machine: MachineReport
    /// The primary's end record, when the primary's guest stopped.
    public var primaryEnd: LogRecord?
    /// Why the channel ended.
    public var channelEnd: String
    /// The generation this node won and went live at, if it did.
    public var wentLive: UInt64?
    /// Why this node halted (it lost the arbiter's test-and-set), if it did.
    public var halted: String?

    /// Creates a report.
    public init(
      machine: MachineReport, primaryEnd: LogRecord?, channelEnd: String, wentLive: UInt64? = nil,
      halted: String? = nil
    ) {
      self.machine = machine
      self.primaryEnd = primaryEnd
      self.channelEnd = channelEnd
      self.wentLive = wentLive
      self.halted = halted
    }

    /// Whether the backup reached the primary's final state exactly.
    public var inSync: Bool {
      guard case .end(let exits, let trace, let memory, _) = primaryEnd else { return false }
      return exits == machine.exits && trace == machine.traceDigest && memory == machine.memoryDigest
    }
  }

  enum Decision: Sendable, Equatable {
    case undecided
    case won(UInt64)
    case lost(String)
  }

  struct State: ~Copyable {
    var generation: UInt64 = 0
    var decision = Decision.undecided
    var current: TLSStream?
    var channelDown = false
    var primaryRefusesConnections = false
    var refusedByPrimary: String?
    var handover = false
    var lastEnd: LogRecord?
    var channelEnd = ""
    var finished = false
    var liveAt: UInt64?
    var announcer: NamedThread?
    /// The primary this node became (it serves, records and clones).
    var promoted: ReplicatedPrimary?
    /// Whether the machine holds the primary's state (at once for a backup
    /// from exit 0, after the clone for one that joined a running VM):
    /// before, there is nothing to take over.
    var installed = false
    var receiver: NamedThread?
  }

  let state = Mutex(State())
  let vm: String
  let primary: HostPort
  let context: TLSContext
  let identity: LogHeader
  let source: ChannelLogSource
  let control: MachineControl
  let service: ServiceAddress?
  let settings: FailoverSettings?
  let arbiter: ArbiterClient?
  let heartbeat: Heartbeat?
  let replicationAddress: String
  let credentials: NodeCredentials
  let metrics: NodeMetrics?
  let logger: Logger

  /// Connects to the primary and replays until its log ends, or until this
  /// node goes live and its guest stops, or until it halts.
  public static func run(
    vm: String, image: [UInt8], imagePath: String, primary: HostPort, credentials: NodeCredentials,
    diskPath: String?, service: ServiceAddress? = nil, failover: FailoverSettings? = nil,
    replicationAddress: String = "", connectTimeout: Duration = .seconds(30), reconnectWindow: Duration = .seconds(10),
    metrics: NodeMetrics? = nil, logger: Logger
  ) throws -> Report {
    let control = try MachineControl()
    let stopper = try SignalStopper.install(control: control, logger: logger)
    // A backup never holds the service VIP: one left on this host by a
    // primary process that was killed here must go.
    service?.release(logger: logger)
    let context = try TLSContext(credentials: credentials, side: .client)
    let identity = LogHeader(
      configuration: MachineConfiguration(name: vm, image: image, imagePath: imagePath, memorySize: 0), diskSize: 0)
    if failover != nil && credentials.heartbeatKey == nil {
      throw MachineSetupError(
        "\(credentials.directory) has no heartbeat key: failover needs one (re-issue it with `lockstep certs add`)")
    }
    let arbiter = try failover.map { settings throws in
      try ArbiterClient(address: settings.arbiter, credentials: credentials, timeout: .seconds(2))
    }
    // Join; a primary that already has a backup makes this node a standby,
    // which asks again (at the VM's current primary) until it is needed.
    var primary = primary
    var heartbeat: Heartbeat?
    var joined: (stream: TLSStream, header: LogHeader, generation: UInt64, cloning: Bool)?
    var standing = false
    // Until it joins, a backup reports only that it is joining or standing by.
    let waiting = Mutex("joining")
    metrics?.follow { [name = credentials.name] in
      NodeStatus(
        node: name, role: waiting.withLock { $0 }, generation: 0, protected: false, backup: "", serviceAddress: "")
    }
    while joined == nil {
      heartbeat?.stop()
      heartbeat = try failover.map { settings throws in
        var configuration = Heartbeat.Configuration(
          vm: vm, node: credentials.name,
          bind: HostPort(host: primary.host.contains(":") ? "::" : "0.0.0.0", port: 0), peer: primary,
          key: credentials.heartbeatKey ?? [], timing: settings.timing)
        configuration.sendsBeforePinned = false
        return try Heartbeat(configuration, logger: logger)
      }
      do {
        joined = try connect(
          primary: primary, context: context, hello: identity, resumeFrom: nil, heartbeat: heartbeat,
          timeout: standing ? .seconds(1) : connectTimeout, logger: logger)
        continue
      } catch let refusal as BackupRefusal where refusal.standby {
        if !standing { logger.notice("standing by: \(refusal.reason)") }
        standing = true
        waiting.withLock { $0 = "standby" }
      } catch let error as MachineSetupError where standing {
        // The primary closed a join without an answer (it could not start
        // the clone): a standby stands by and asks again.
        logger.info("standby: \(error); asking again")
      } catch let error as TLSError where standing {
        // The primary this standby waited on is gone: the arbiter names
        // the next one (after the failover).
        logger.info("standby: \(error); asking the arbiter for the VM's primary")
      }
      if control.stopRequested { throw MachineSetupError("stopped while standing by") }
      Wakeup.sleep(milliseconds: 1000)
      if let arbiter, let record = try? arbiter.query(vm: vm),
        let address = HostPort(parsing: record.replicationAddress)
      {
        primary = address
      }
    }
    guard let (stream, header, generation, cloning) = joined else { throw MachineSetupError("no primary") }
    logger.info(
      "attached to the primary",
      metadata: [
        "primary": "\(stream.peerDescription)", "memory": "\(header.memorySize)", "generation": "\(generation)",
      ])
    if header.diskSize > 0 && diskPath == nil {
      throw MachineSetupError(
        "the primary's VM has a \(header.diskSize)-byte disk: give the backup its own with --disk PATH")
    }
    let backup = BackupVMM(
      vm: vm, primary: primary, context: context, identity: identity, source: try ChannelLogSource(header: header),
      control: control, service: service, settings: failover, arbiter: arbiter, heartbeat: heartbeat,
      replicationAddress: replicationAddress, credentials: credentials, metrics: metrics, logger: logger)
    metrics?.follow { backup.status() }
    backup.state.withLock {
      $0.generation = generation
      $0.current = stream
    }
    let configuration = MachineConfiguration(replaying: header, image: image, imagePath: imagePath, diskPath: diskPath)
    return try withExtendedLifetime(stopper) {
      try backup.run(
        configuration: configuration, stream: stream, cloning: cloning, reconnectWindow: reconnectWindow)
    }
  }

  init(
    vm: String, primary: HostPort, context: TLSContext, identity: LogHeader, source: ChannelLogSource,
    control: MachineControl, service: ServiceAddress?, settings: FailoverSettings?, arbiter: ArbiterClient?,
    heartbeat: Heartbeat?, replicationAddress: String, credentials: NodeCredentials, metrics: NodeMetrics?,
    logger: Logger
  ) {
    self.vm = vm
    self.primary = primary
    self.context = context
    self.identity = identity
    self.source = source
    self.control = control
    self.service = service
    self.settings = settings
    self.arbiter = arbiter
    self.heartbeat = heartbeat
    self.replicationAddress = replicationAddress
    self.credentials = credentials
    self.metrics = metrics
    self.logger = logger
  }

  func run(configuration: MachineConfiguration, stream: TLSStream, cloning: Bool, reconnectWindow: Duration)
    throws -> Report
  {
    if !cloning {
      // A backup from exit 0 holds the primary's state from the start.
      state.withLock { $0.installed = true }
      try startReceiver(
        stream: stream, reader: ChannelReader(stream: stream), pending: [], received: 0,
        reconnectWindow: reconnectWindow)
    }
    let monitor = try NamedThread(name: "failure-detect") { [self] in monitorPrimary() }
    let outcome = Mutex<Result<MachineReport, MachineSetupError>?>(nil)
    let vcpu = try NamedThread(name: "vcpu-0") { [self] in
      let result: Result<MachineReport, MachineSetupError>
      do {
        let replayer = try Replayer(reader: source)
        result = StandaloneVMM.runOnThisThread(
          configuration, replayer, DiscardingOutputs(), nil, control,
          takeover: { [self] machine, point in takeOver(machine, at: point) },
          prepare: cloning
            ? { [self] machine in try installClone(into: machine, from: stream, reconnectWindow: reconnectWindow) }
            : nil)
      } catch {
        result = .failure(MachineSetupError("\(error)"))
      }
      outcome.withLock { $0 = result }
    }
    vcpu.join()
    // The guest's own exit ends the replay before the primary's end record
    // may have arrived: give it a moment, to compare final states. A replay
    // that ended any other way (a divergence, a fault) stops acknowledging
    // at once: the primary must not believe it is protected.
    var guestExited = false
    if case .success(let report)? = outcome.withLock({ $0 }), case .exited = report.stop { guestExited = true }
    let deadline = ClockReading.monotonicNanoseconds() + (guestExited ? 3_000_000_000 : 0)
    while state.withLock({ $0.lastEnd == nil && $0.channelEnd.isEmpty && $0.decision == .undecided })
      && ClockReading.monotonicNanoseconds() < deadline
    {
      Wakeup.sleep(milliseconds: 10)
    }
    let current = state.withLock { state in
      state.finished = true
      return state.current
    }
    current?.close()
    source.end()
    state.withLock { $0.receiver }?.join()
    monitor.join()
    heartbeat?.stop()
    state.withLock { $0.announcer }?.join()
    guard let result = outcome.withLock({ $0 }) else {
      throw MachineSetupError("the backup's vCPU thread ended without a result")
    }
    let machine = try result.get()
    let (decision, liveAt, lastEnd, channelEnd, promoted) = state.withLock {
      ($0.decision, $0.liveAt, $0.lastEnd, $0.channelEnd, $0.promoted)
    }
    var report = Report(machine: machine, primaryEnd: lastEnd, channelEnd: channelEnd)
    if let promoted {
      // This node ran as the primary: it ends like one.
      let ending = promoted.finish(machine)
      promoted.stopServing()
      if case .halted(let reason) = ending { report.halted = reason }
    } else {
      service?.release(logger: logger)
    }
    switch decision {
    case .won(let generation) where liveAt != nil:
      report.wentLive = generation
    case .lost(let reason):
      report.halted = reason
    default:
      break
    }
    return report
  }

  /// Starts the receiving thread: `reader` (with what it already buffered)
  /// and `pending` (messages read with the clone) come first.
  func startReceiver(
    stream: TLSStream, reader: ChannelReader, pending: [(message: WireMessage, size: Int)], received: UInt64,
    reconnectWindow: Duration
  ) throws {
    let handoff = Mutex<ChannelReader?>(reader)
    let thread = try NamedThread(name: "log-receiver") { [self] in
      guard let reader = handoff.withLock({ $0.take() }) else { return }
      receiveLog(
        first: stream, reader: reader, pending: pending, received: received, reconnectWindow: reconnectWindow)
    }
    state.withLock { $0.receiver = thread }
  }

  /// Receives the clone of the running machine (on the vCPU thread, before
  /// it runs): memory pages, disk, then the state; then the log follows.
  func installClone(into machine: Machine, from stream: TLSStream, reconnectWindow: Duration) throws {
    let began = ClockReading.monotonicNanoseconds()
    var reader = ChannelReader(stream: stream)
    try stream.setTimeout(.seconds(30))
    var pages: UInt64 = 0
    var diskBytes: UInt64 = 0
    var lastReport = began
    while true {
      guard let messages = try reader.readMessages() else {
        throw MachineSetupError("the primary closed the connection during the clone")
      }
      for (index, (message, _)) in messages.enumerated() {
        switch message {
        case .control(.clonePages(let received)):
          for page in received {
            guard page.number < machine.pageCount else {
              throw MachineSetupError(
                "clone: page \(page.number) is outside this VM's \(machine.pageCount) pages (the primary's clone is corrupt)"
              )
            }
            if let data = page.data {
              try machine.installMemory(data, at: page.number * 4096)
            } else {
              try machine.zeroMemory(count: 4096, at: page.number * 4096)
            }
          }
          pages += UInt64(received.count)
        case .control(.cloneDisk(let offset, let bytes)):
          guard let block = machine.block, block.isValid(offset: offset, count: UInt64(bytes.count)) else {
            throw MachineSetupError("clone: disk bytes at \(offset) do not fit this node's disk")
          }
          let status = bytes.withUnsafeBytes { block.write($0, offset: offset) }
          guard status == LS_OK else { throw MachineSetupError("clone: cannot write this node's disk") }
          diskBytes += UInt64(bytes.count)
        case .control(.cloneDiskZero(let offset, let count)):
          guard let block = machine.block, block.isValid(offset: offset, count: UInt64(count)) else {
            throw MachineSetupError("clone: disk bytes at \(offset) do not fit this node's disk")
          }
          let zeros = [UInt8](repeating: 0, count: Int(count))
          let status = zeros.withUnsafeBytes { block.write($0, offset: offset) }
          guard status == LS_OK else { throw MachineSetupError("clone: cannot write this node's disk") }
          diskBytes += UInt64(count)
        case .control(.cloneState(let snapshot)):
          try machine.restore(snapshot)
          if let block = machine.block, block.flush() != LS_OK {
            throw MachineSetupError("clone: cannot flush this node's disk")
          }
          logger.notice(
            "clone installed: this node is the backup from exit \(snapshot.exits)",
            metadata: [
              "pages": "\(pages)", "disk_bytes": "\(diskBytes)",
              "ms": "\((ClockReading.monotonicNanoseconds() - began) / 1_000_000)",
            ])
          try stream.setTimeout(.seconds(1))
          state.withLock { $0.installed = true }
          heartbeat?.heard()
          try startReceiver(
            stream: stream, reader: reader, pending: Array(messages[(index + 1)...]), received: snapshot.exits,
            reconnectWindow: reconnectWindow)
          return
        default:
          throw MachineSetupError("clone: unexpected \(message) from the primary")
        }
      }
      // A read that timed out (no message) is no sign of life.
      if !messages.isEmpty { heartbeat?.heard() }
      let now = ClockReading.monotonicNanoseconds()
      if now - lastReport > 1_000_000_000 {
        logger.info("clone: receiving", metadata: ["pages": "\(pages)", "disk_bytes": "\(diskBytes)"])
        lastReport = now
      }
    }
  }

  // MARK: Going live

  /// Called on the vCPU thread when the replay has consumed every record
  /// received: goes live if this node won the arbiter.
  func takeOver(_ machine: Machine, at point: ExitPoint) -> Takeover? {
    guard case .won(let generation) = state.withLock({ $0.decision }) else { return nil }
    guard let replication = HostPort(parsing: replicationAddress) else {
      logger.critical("won generation \(generation) but has no --replication address to serve from; stopping the VM")
      return nil
    }
    let promoted: ReplicatedPrimary
    var network: NetworkService?
    do {
      if let service {
        try service.acquire(logger: logger)
        let bound = try service.bind(machineWakeup: control.wakeup, logger: logger)
        bound.adopt(openConnections: machine.net.openConnections, highest: machine.net.highestConnection)
        network = bound
      }
      // From here this node is a primary like any other: it records, holds
      // output for a backup that joins by cloning, and fails over.
      promoted = try ReplicatedPrimary(
        configuration: machine.configuration, header: source.header, service: service, network: network,
        replication: replication, credentials: credentials, maximumLag: .milliseconds(100), failover: settings,
        arbiter: arbiter, control: control, logger: logger)
      try promoted.adoptAlone(generation: generation)
      try network?.start()
    } catch {
      logger.critical("won generation \(generation) but cannot serve: \(error); stopping the VM")
      network?.stop()
      return nil
    }
    let recorder: Recorder
    do {
      recorder = try Recorder(writer: promoted.channel, header: source.header)
    } catch {
      logger.critical("won generation \(generation) but cannot record: \(error); stopping the VM")
      return nil
    }
    if let announcer = service?.announce(logger: logger) { state.withLock { $0.announcer = announcer } }
    state.withLock { state in
      state.liveAt = point.sequence
      state.promoted = promoted
    }
    metrics?.follow { promoted.status() }
    logger.notice(
      "LIVE: this node is the primary now (unprotected until a backup joins)",
      metadata: [
        "generation": "\(generation)", "exit": "\(point.sequence)",
        "serving": "\(service.map { "\($0.address)" } ?? "nothing")",
        "closedConnections": "\(machine.net.openConnections.count)",
      ])
    return Takeover(inputs: recorder, outputs: promoted.gate, network: network)
  }

  // MARK: Failure detection

  /// Why the primary is suspected now, or nil.
  func suspicion() -> String? {
    let (channelDown, refusing, refusedBy, handover, ended, finished) = state.withLock {
      ($0.channelDown, $0.primaryRefusesConnections, $0.refusedByPrimary, $0.handover, $0.lastEnd != nil, $0.finished)
    }
    if ended || finished || !state.withLock({ $0.installed }) { return nil }
    if handover { return "the primary handed the VM over" }
    if let refusedBy { return "the primary refused this backup: \(refusedBy)" }
    if channelDown && refusing { return "the logging channel broke and the primary's host refuses to reopen it" }
    if let heartbeat, heartbeat.isPeerSuspected() {
      let silence = heartbeat.detector.silence(now: ClockReading.monotonicNanoseconds()) / 1_000_000
      return "nothing heard from the primary for \(silence) ms"
    }
    return nil
  }

  /// The failure detector's thread: on suspicion, the arbiter decides.
  func monitorPrimary() {
    guard let arbiter else { return }
    while state.withLock({ !$0.finished && $0.decision == .undecided }) {
      Wakeup.sleep(milliseconds: 2)
      guard let reason = suspicion() else { continue }
      let generation = state.withLock { $0.generation }
      let handover = state.withLock { $0.handover }
      logger.log(
        level: handover ? .info : .warning,
        "\(handover ? "taking over" : "primary suspected"): \(reason); asking the arbiter",
        metadata: ["generation": "\(generation)"])
      let outcome = arbiter.testAndSetRetrying(
        vm: vm, expectedGeneration: generation, serviceAddress: service.map { "\($0.address)" } ?? "",
        replicationAddress: replicationAddress, retryInterval: .milliseconds(100), logger: logger
      ) { [self] in suspicion() != nil }
      switch outcome {
      case .granted(let record)?:
        logger.notice(
          "won generation \(record.generation) at the arbiter: replaying what was received, then going live")
        let current = state.withLock { state in
          state.decision = .won(record.generation)
          return state.current
        }
        // No more acknowledgements to the old primary: it can release
        // nothing more. Then the replay drains what was received.
        current?.close()
        heartbeat?.stop()
        source.end()
      case .lost(let record)?:
        let reason = "the arbiter gave the VM to \(record.holder ?? "another node") at generation \(record.generation)"
        logger.error("halting: \(reason)")
        state.withLock { $0.decision = .lost(reason) }
        source.end()
        control.requestStop()
      case nil:
        logger.info("the primary is back; staying its backup")
      }
    }
  }

  // MARK: Receiving the log

  /// The receiving thread: reads the log into the source and acknowledges
  /// it; reconnects when the channel breaks, until the primary's guest
  /// ended or a decision was made.
  func receiveLog(
    first: TLSStream, reader: ChannelReader, pending: [(message: WireMessage, size: Int)], received start: UInt64,
    reconnectWindow: Duration
  ) {
    var received = start
    var connection = first
    var reader = reader
    var pending = pending
    // A clone tells the primary at once that it holds the machine.
    var acknowledgeFirst = start > 0
    while true {
      let reason = receive(
        from: connection, reader: &reader, pending: pending, received: &received, acknowledgeFirst: acknowledgeFirst)
      pending = []
      acknowledgeFirst = false
      connection.close()
      let done = state.withLock { state -> Bool in
        if state.lastEnd != nil || state.finished || state.decision != .undecided {
          if state.channelEnd.isEmpty { state.channelEnd = reason }
          return true
        }
        state.channelDown = true
        return false
      }
      if done { break }
      logger.warning("logging channel lost; reconnecting", metadata: ["reason": "\(reason)", "from": "\(received)"])
      guard let resumed = reconnect(from: received, window: reconnectWindow, reason: reason) else { break }
      connection = resumed
      reader = ChannelReader(stream: resumed)
      logger.info("logging channel resumed", metadata: ["from": "\(received)"])
    }
    // Without an arbiter nobody takes over: the replay ends with the log.
    if arbiter == nil { source.end() }
  }

  /// Reconnects and resumes from `position`. Without an arbiter: within
  /// `window`. With one: until it works or a decision is made, noting
  /// whether the primary's host refuses connections (its process is gone).
  func reconnect(from position: UInt64, window: Duration, reason: String) -> TLSStream? {
    let deadline = ClockReading.monotonicNanoseconds() + window.wholeNanoseconds
    var attempts = 0
    while true {
      let stop = state.withLock { $0.finished || $0.decision != .undecided || $0.refusedByPrimary != nil }
      if stop { return nil }
      do {
        let (stream, _, _, _) = try Self.connect(
          primary: primary, context: context, hello: identity, resumeFrom: position, heartbeat: heartbeat,
          timeout: .zero, attemptTimeout: .milliseconds(250), logger: logger)
        let accepted = state.withLock { state -> Bool in
          guard !state.finished && state.decision == .undecided else { return false }
          state.current = stream
          state.channelDown = false
          state.primaryRefusesConnections = false
          return true
        }
        if accepted { return stream }
        stream.close()
        return nil
      } catch let error as TLSError {
        state.withLock { $0.primaryRefusesConnections = error.code == .refused }
      } catch {
        // Refused by the primary itself (it went on alone or halted).
        state.withLock { $0.refusedByPrimary = "\(error)" }
        if arbiter == nil { state.withLock { $0.channelEnd = "\(reason); reconnecting failed: \(error)" } }
        return nil
      }
      if arbiter == nil && ClockReading.monotonicNanoseconds() >= deadline {
        state.withLock { $0.channelEnd = "\(reason); the primary did not come back within \(window)" }
        return nil
      }
      // Soon again at first: a killed primary's socket may answer with a
      // reset for the few milliseconds its process takes to exit.
      attempts += 1
      Wakeup.sleep(milliseconds: attempts < 10 ? 5 : 50)
    }
  }

  /// Connects (retrying until `timeout` while the primary is not there
  /// yet), says `join` (`resumeFrom` nil: a new backup) or `hello`
  /// (resuming), and returns the stream, the primary's header, the
  /// generation it holds, and whether a clone of the running machine
  /// follows. `heartbeat` is announced and pinned to the primary's name and
  /// boot id from the welcome. A refusal throws ``BackupRefusal``.
  static func connect(
    primary: HostPort, context: TLSContext, hello: LogHeader, resumeFrom: UInt64?, heartbeat: Heartbeat?,
    timeout: Duration, attemptTimeout: Duration = .seconds(5), logger: Logger
  ) throws -> (TLSStream, LogHeader, UInt64, Bool) {
    let deadline = ClockReading.monotonicNanoseconds() + timeout.wholeNanoseconds
    while true {
      do {
        let stream = try TLSStream.connect(
          host: primary.host, port: primary.port, context: context, timeout: attemptTimeout, expecting: .vmm)
        var message: [UInt8] = []
        let port = UInt16(heartbeat?.port ?? 0)
        let bootID = heartbeat?.bootID ?? 0
        if let resumeFrom {
          ChannelMessage.hello(header: hello, resumeFrom: resumeFrom, heartbeatPort: port, heartbeatBootID: bootID)
            .encode(into: &message)
        } else {
          ChannelMessage.join(header: hello, heartbeatPort: port, heartbeatBootID: bootID).encode(into: &message)
        }
        try stream.write(message)
        var reader = ChannelReader(stream: stream)
        switch try reader.readControl() {
        case .welcome(let header, let startsAt, let generation, let bootID)?:
          try stream.setTimeout(.seconds(1))
          if bootID != 0 { heartbeat?.expect(peer: stream.peerName, bootID: bootID) }
          return (stream, header, generation, startsAt == .max)
        case .refuse(let reason)?:
          stream.close()
          throw BackupRefusal(primary: primary, reason: reason)
        default:
          stream.close()
          throw MachineSetupError("the primary at \(primary) did not answer the handshake")
        }
      } catch let error as TLSError where error.code == .connect || error.code == .refused {
        guard ClockReading.monotonicNanoseconds() < deadline else { throw error }
        logger.info("primary not reachable yet, retrying", metadata: ["primary": "\(primary)"])
        Wakeup.sleep(milliseconds: 200)
      }
    }
  }

  /// Reads the log from the primary into the source and acknowledges it,
  /// until the stream ends; `received` tracks the position held. Returns
  /// why it ended.
  func receive(
    from stream: TLSStream, reader: inout ChannelReader, pending: [(message: WireMessage, size: Int)],
    received: inout UInt64, acknowledgeFirst: Bool
  ) -> String {
    var pending: [(message: WireMessage, size: Int)]? = pending
    do {
      if acknowledgeFirst {
        var ack: [UInt8] = []
        ChannelMessage.ack(received: received, replayed: received).encode(into: &ack)
        try stream.write(ack)
      }
      while true {
        let messages: [(message: WireMessage, size: Int)]
        if let first = pending.take(), !first.isEmpty {
          messages = first
        } else {
          guard let read = try reader.readMessages() else { return "the primary closed the channel" }
          messages = read
        }
        // The read times out every second: only a message is a sign of
        // life (else a silent primary would never be suspected when the
        // failure timeout is over a second).
        if !messages.isEmpty { heartbeat?.heard() }
        var records: [(record: LogRecord, size: Int)] = []
        var position = received
        for (message, size) in messages {
          switch message {
          case .control(.handover(let exits)):
            logger.notice("the primary hands the VM over at exit \(exits)")
            state.withLock { $0.handover = true }
          case .control(let other):
            throw LogDecodingError("unexpected \(other) from the primary")
          case .record(let record):
            switch record {
            case .input(let point, _, _): position = max(position, point.sequence + 1)
            case .progress(let exits): position = max(position, exits)
            case .end(let exits, _, _, _):
              position = max(position, exits)
              state.withLock { $0.lastEnd = record }
            case .header: break
            }
            records.append((record, size))
          }
        }
        // Records the replay will not see (the source ended: this node
        // decided) are never acknowledged.
        if !records.isEmpty && !source.push(records) { return "stopped receiving: this node decided" }
        received = position
        // More already decrypted: read it first, acknowledge once.
        if stream.hasBufferedInput { continue }
        var ack: [UInt8] = []
        ChannelMessage.ack(received: received, replayed: source.replayed).encode(into: &ack)
        try stream.write(ack)
      }
    } catch {
      return "\(error)"
    }
  }
}
