import Logging

#if canImport(Glibc)
  import Glibc
#endif

/// The primary's listener: backups attaching (or resuming), operators
/// asking for the status or giving a command.
extension ReplicatedPrimary {
  func acceptConnections() {
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
        refusals.record(RefusalLog.kind(of: error), "a connection to the logging channel: \(error)")
        continue
      }
      do {
        try stream.setTimeout(.seconds(5))
        var reader = ChannelReader(stream: stream)
        switch try reader.readControl() {
        case .hello(let theirs, let resumeFrom, let heartbeatPort, let heartbeatBootID)? where stream.peerRole == .vmm:
          try attachBackup(
            stream, theirs: theirs, resumeFrom: resumeFrom, heartbeatPort: heartbeatPort,
            heartbeatBootID: heartbeatBootID)
        case .join(let theirs, let heartbeatPort, let heartbeatBootID)? where stream.peerRole == .vmm:
          try acceptJoin(stream, theirs: theirs, heartbeatPort: heartbeatPort, heartbeatBootID: heartbeatBootID)
        case .statusRequest?:
          try answer(stream, .status(status()))
        case .command(let command)? where stream.peerRole == .operator:
          try perform(command, for: stream)
        case let other:
          try refuse(
            stream, "expected hello (vmm) or a status request or command (operator), got \(String(describing: other))")
        }
      } catch {
        stream.close()
        logger.warning("a logging-channel connection from \(stream.peerDescription) failed: \(error)")
      }
    }
  }

  func answer(_ stream: TLSStream, _ message: ChannelMessage) throws {
    var bytes: [UInt8] = []
    message.encode(into: &bytes)
    try stream.write(bytes)
    stream.close()
  }

  func refuse(_ stream: TLSStream, _ reason: String) throws {
    // A standby asks every second: that is its normal state, not an error.
    if reason.hasPrefix(Self.standbyPrefix) {
      logger.debug("standby \(stream.peerDescription): \(reason)")
    } else {
      logger.error("refused \(stream.peerDescription): \(reason)")
    }
    try answer(stream, .refuse(reason: reason))
  }

  /// A backup's hello: checks it, replaces a stale session of the same
  /// backup, welcomes it and serves the log from where it resumes.
  func attachBackup(
    _ stream: TLSStream, theirs: LogHeader, resumeFrom: UInt64, heartbeatPort: UInt16, heartbeatBootID: UInt64
  ) throws {
    if let reason = Self.handshakeMismatch(ours: header, theirs: theirs) { return try refuse(stream, reason) }
    let (alone, halted, generation, current) = state.withLock {
      ($0.alone, $0.halted, $0.generation, $0.attachedOnce ? $0.backupName : "")
    }
    if let halted { return try refuse(stream, "this primary halted: \(halted)") }
    // Only the current backup may resume: another node's log (a backup
    // from before a failover or a clone, frozen and back) is gone, and its
    // hello must not displace the current backup's session.
    if !current.isEmpty && current != stream.peerName {
      return try refuse(
        stream,
        "the VM's backup is \(current) now (generation \(generation)); \(stream.peerName) must join by cloning")
    }
    if alone {
      return try refuse(
        stream,
        "this primary went on alone at generation \(generation); the log before is gone, a new backup must join by cloning"
      )
    }
    // One backup at a time: a new connection replaces the old session (a
    // backup that reconnects while its old connection lingers).
    let previous = state.withLock { state in
      defer { state.session = nil }
      return state.session
    }
    if let previous {
      logger.info("replacing the logging session of \(previous.stream.peerDescription)")
      previous.stream.close()
      previous.thread.join()
    }
    guard channel.canResume(from: resumeFrom) else {
      return try refuse(
        stream, "the log before exit \(resumeFrom) is no longer held here; a new backup must join by cloning")
    }
    let heartbeat = try startHeartbeat(
      to: stream, port: heartbeatPort, bootID: heartbeatBootID, generation: generation)
    var welcome: [UInt8] = []
    ChannelMessage.welcome(
      header: header, startsAt: resumeFrom, generation: generation, heartbeatBootID: heartbeat?.bootID ?? 0
    ).encode(into: &welcome)
    try stream.write(welcome)
    logger.info(
      "backup attached",
      metadata: ["backup": "\(stream.peerDescription)", "from": "\(resumeFrom)", "generation": "\(generation)"])
    let thread = try NamedThread(name: "log-channel") { [self] in
      let reason = channel.serve(stream, from: resumeFrom)
      stream.close()
      backupSessionEnded(stream, reason: reason)
    }
    state.withLock { state in
      state.session = Session(stream: stream, thread: thread)
      state.backupName = stream.peerName
      state.attachedOnce = true
    }
  }

  /// Logs the end of a backup's session, unless this node expected it.
  func backupSessionEnded(_ stream: TLSStream, reason: String) {
    let expected = state.withLock { $0.alone || $0.stopping || $0.action != nil || $0.halted != nil }
    if !expected && !control.stopRequested {
      logger.warning(
        "backup lost; output is held until it reconnects\(arbiter == nil ? "" : " or the arbiter lets this node go on alone")",
        metadata: ["backup": "\(stream.peerDescription)", "reason": "\(reason)"])
    }
  }

  /// Heartbeats with the backup that just attached (with an arbiter only):
  /// from the replication address's port to the port it announced.
  @discardableResult
  func startHeartbeat(to stream: TLSStream, port: UInt16, bootID: UInt64, generation: UInt64) throws -> Heartbeat? {
    guard let settings, port > 0, let peer = HostPort(parsing: stream.peerAddress),
      let key = credentials.heartbeatKey
    else { return nil }
    retireHeartbeat()
    let endpoint = Heartbeat.Configuration(
      vm: configuration.name, node: credentials.identity.name,
      bind: HostPort(host: replication.host, port: listener.port),
      peer: HostPort(host: peer.host, port: Int(port)), key: key, timing: settings.timing,
      generation: generation, flags: .primary)
    // The endpoint of a session that just ended may still be held (by the
    // thread that decided to go alone) and its socket hold the port for a
    // moment: wait for it rather than fail the new backup's join (found by
    // the chaos runner: a standby joining right after a go-alone died).
    let deadline = ClockReading.monotonicNanoseconds() + 3_000_000_000
    var attempt = Result { () throws(SystemError) in try Heartbeat(endpoint, logger: logger) }
    while case .failure(let error) = attempt, error.errno == EADDRINUSE,
      ClockReading.monotonicNanoseconds() < deadline
    {
      Wakeup.sleep(milliseconds: 20)
      attempt = Result { () throws(SystemError) in try Heartbeat(endpoint, logger: logger) }
    }
    let heartbeat = try attempt.get()
    heartbeat.expect(peer: stream.peerName, bootID: bootID)
    state.withLock { $0.heartbeat = heartbeat }
    onHeartbeatChange(heartbeat)
    return heartbeat
  }

  /// Stops the heartbeat of a previous session and lets it go, so its UDP
  /// port can be bound again (its socket closes when it is released, by
  /// the end of this call).
  func retireHeartbeat() {
    let old = state.withLock { state in
      defer { state.heartbeat = nil }
      state.heartbeatTotals = state.heartbeatTotals.adding(state.heartbeat?.status)
      return state.heartbeat
    }
    onHeartbeatChange(nil)
    old?.stop()
  }

  /// The status `lockstep status` shows.
  func status() -> NodeStatus {
    let channelStatus = channel.status
    let held = gate.held
    let now = ClockReading.monotonicNanoseconds()
    return state.withLock { state in
      let attached = state.session != nil && channelStatus.connected
      let role =
        state.halted != nil
        ? "halted" : state.alone ? "primary-alone" : state.attachedOnce ? "primary" : "primary-waiting"
      let heard = state.heartbeat?.lastHeard.map { (now - min(now, $0)) / 1_000_000 } ?? .max
      let beats = state.heartbeatTotals.adding(state.heartbeat?.status)
      var status = NodeStatus(
        node: credentials.identity.name, role: role, generation: state.generation,
        protected: attached && !state.alone && state.halted == nil, backup: attached ? state.backupName : "",
        serviceAddress: serviceText, lagNanoseconds: channelStatus.lagNanoseconds, heldOutputs: UInt64(held.count),
        heldBytes: UInt64(held.bytes), logBytes: channelStatus.bytesLogged, logRecords: channelStatus.recordsLogged,
        logBytesPerSecond: state.logRate, lastHeartbeatMilliseconds: heard, acknowledged: channelStatus.acknowledged)
      status.heartbeatsReceived = beats.received
      status.heartbeatsForged = beats.rejectedForged
      status.heartbeatsReplayed = beats.rejectedReplayed
      status.heartbeatsMalformed = beats.rejectedMalformed
      status.heartbeatsForeign = beats.rejectedForeign
      status.cloning = state.cloning
      status.exits = control.exits
      status.heartbeatsSent = beats.sent
      status.heartbeatsMissed = beats.missed
      status.failovers = state.failovers
      status.clones = state.clones
      status.connectionsRefused = refusals.total
      if state.cloning {
        let progress = state.cloneProgress
        status.cloneRound = progress.round
        status.cloneBytes = progress.bytes
        status.cloneFirstCopyPermille = progress.pages == 0 ? 0 : progress.firstCopyPages * 1000 / progress.pages
      }
      if let clone = state.lastClone {
        status.lastCloneMilliseconds = clone.totalMilliseconds
        status.lastClonePauseMicroseconds = clone.pauseMicroseconds
        status.lastCloneBytes = clone.bytes
      }
      return status
    }
  }

  /// `lockstep poweroff` / `lockstep failover`.
  func perform(_ command: OperatorCommand, for stream: TLSStream) throws {
    switch command {
    case .powerOff:
      state.withLock { $0.action = .powerOff }
      logger.info("power-off requested by \(stream.peerDescription)")
    case .failover:
      let ready = state.withLock { state -> Bool in
        guard state.session != nil, !state.alone, state.halted == nil, state.action == nil else { return false }
        state.action = .failover
        return true
      }
      guard ready, channel.isConnected else {
        return try refuse(stream, "no backup is attached to fail over to")
      }
      channel.prepareHandover()
      logger.info("failover requested by \(stream.peerDescription)")
    }
    control.requestStop(timeoutMilliseconds: 0)
    try answer(stream, .status(status()))
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
