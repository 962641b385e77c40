extension BackupVMM {
  /// What this backup reports to metrics: `backup` once it holds the
  /// primary's state (`backup-cloning` before), `going-live` after winning
  /// the arbiter, `halted` after losing it; once live, the primary it
  /// became reports instead (``promotedPrimary``).
  func status() -> NodeStatus {
    let received = source.received
    let beats = heartbeat?.status ?? HeartbeatStatus()
    let now = ClockReading.monotonicNanoseconds()
    return state.withLock { state in
      let role: String
      switch state.decision {
      case .undecided: role = state.installed ? "backup" : "backup-cloning"
      case .won: role = "going-live"
      case .lost: role = "halted"
      }
      let attached = state.current != nil && !state.channelDown && state.decision == .undecided
      var status = NodeStatus(
        node: credentials.name, role: role, generation: state.generation, protected: attached && state.installed,
        backup: "", serviceAddress: "", logBytes: received.bytes, logRecords: received.records,
        lastHeartbeatMilliseconds: beats.lastHeard.map { (now - min(now, $0)) / 1_000_000 } ?? .max,
        acknowledged: received.bytes)
      status.exits = control.exits
      status.heartbeatsReceived = beats.received
      status.heartbeatsSent = beats.sent
      status.heartbeatsMissed = beats.missed
      status.heartbeatsForged = beats.rejectedForged
      status.heartbeatsReplayed = beats.rejectedReplayed
      status.heartbeatsMalformed = beats.rejectedMalformed
      status.heartbeatsForeign = beats.rejectedForeign
      return status
    }
  }

  /// The primary this backup became when it went live, if it did.
  var promotedPrimary: ReplicatedPrimary? { state.withLock { $0.promoted } }
}
