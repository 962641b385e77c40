import Logging

/// A backup that went live answers on its replication address: operators'
/// status requests and power-off, and backups (refused: a new backup joins
/// a running VM by cloning it, which needs the log from the start).
extension BackupVMM {
  /// Listens on the replication address once live (best effort: a node
  /// that cannot listen still serves clients, and says so).
  func startOperatorListener(generation: UInt64) {
    guard let address = HostPort(parsing: replicationAddress) else { return }
    do {
      let listener = try TLSListener(
        host: address.host, port: address.port, context: TLSContext(credentials: credentials, side: .server),
        allowedRoles: [.vmm, .operator])
      let thread = try NamedThread(name: "operators") { [self] in
        answerOperators(listener, generation: generation)
      }
      state.withLock { $0.operators = (listener, thread) }
    } catch {
      logger.error("cannot listen on \(address) for operators and backups: \(error)")
    }
  }

  func answerOperators(_ listener: TLSListener, generation: UInt64) {
    while !listener.isClosed {
      guard let stream = try? listener.accept(timeout: .milliseconds(500)) else { continue }
      do {
        try stream.setTimeout(.seconds(5))
        var reader = ChannelReader(stream: stream)
        let answer: ChannelMessage
        switch try reader.readControl() {
        case .statusRequest?:
          answer = .status(liveStatus(generation: generation))
        case .command(.powerOff)? where stream.peerRole == .operator:
          logger.info("power-off requested by \(stream.peerDescription)")
          control.requestStop(timeoutMilliseconds: 0)
          answer = .status(liveStatus(generation: generation))
        case .command(.failover)?:
          answer = .refuse(reason: "this primary runs alone: there is no backup to fail over to")
        case .hello?:
          answer = .refuse(
            reason:
              "this primary went live at generation \(generation) and runs alone; a new backup must join by cloning")
        default:
          answer = .refuse(reason: "expected a status request or an operator command")
        }
        var bytes: [UInt8] = []
        answer.encode(into: &bytes)
        try stream.write(bytes)
      } catch {
        logger.warning("an operator connection from \(stream.peerDescription) failed: \(error)")
      }
      stream.close()
    }
  }

  func liveStatus(generation: UInt64) -> NodeStatus {
    NodeStatus(
      node: credentials.name, role: "primary-alone", generation: generation, protected: false, backup: "",
      serviceAddress: service.map { "\($0.address)" } ?? "")
  }
}
