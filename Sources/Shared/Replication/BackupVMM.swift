import Logging
import Synchronization

/// `backup-vmm`: joins a running VM as its backup. Receives the log over
/// TLS, replays it on its own KVM with output discarded and its own disk,
/// and acknowledges what it holds and how far it has replayed.
public enum BackupVMM {
  /// How a backup's replay ended.
  public struct Report: Sendable {
    /// The replayed machine.
    public var machine: MachineReport
    /// The primary's end record, when the primary's guest stopped.
    public var primaryEnd: LogRecord?
    /// Why the channel ended.
    public var channelEnd: String

    /// Whether the backup reached the primary's final state exactly.
    public var inSync: Bool {
      guard case .end(let exits, let trace, let memory, _) = primaryEnd else { return false }
      return exits == machine.exits && trace == machine.traceDigest && memory == machine.memoryDigest
    }
  }

  /// Connects to the primary, replays until its log ends.
  public static func run(
    vm: String, image: [UInt8], imagePath: String, primary: HostPort, credentials: NodeCredentials,
    diskPath: String?, connectTimeout: Duration = .seconds(30), reconnectWindow: Duration = .seconds(10),
    logger: Logger
  ) throws -> Report {
    let context = try TLSContext(credentials: credentials, side: .client)
    let identity = LogHeader(
      configuration: MachineConfiguration(name: vm, image: image, imagePath: imagePath, memorySize: 0), diskSize: 0)
    let (stream, header) = try connect(
      primary: primary, context: context, hello: identity, resumeFrom: 0, timeout: connectTimeout, logger: logger)
    logger.info(
      "attached to the primary", metadata: ["primary": "\(stream.peerDescription)", "memory": "\(header.memorySize)"])
    let configuration = MachineConfiguration(
      replaying: header, image: image, imagePath: imagePath, diskPath: diskPath)
    if header.diskSize > 0 && diskPath == nil {
      throw MachineSetupError(
        "the primary's VM has a \(header.diskSize)-byte disk: give the backup its own with --disk PATH")
    }
    let source = try ChannelLogSource(header: header)
    let channelEnd = Mutex<String>("")
    let lastEnd = Mutex<LogRecord?>(nil)
    let current = Mutex<TLSStream?>(stream)
    let finished = Atomic<Bool>(false)
    let receiver = try NamedThread(name: "log-receiver") {
      var received: UInt64 = 0
      var connection = stream
      while true {
        let reason = receive(from: connection, into: source, received: &received, lastEnd: lastEnd)
        connection.close()
        // The guest's end was received, or the backup is finishing: done.
        if lastEnd.withLock({ $0 != nil }) || finished.load(ordering: .acquiring) {
          channelEnd.withLock { $0 = reason }
          break
        }
        // The connection broke: reconnect and resume from what we hold.
        logger.warning("logging channel lost; reconnecting", metadata: ["reason": "\(reason)", "from": "\(received)"])
        do {
          let (resumed, _) = try connect(
            primary: primary, context: context, hello: identity, resumeFrom: received, timeout: reconnectWindow,
            logger: logger)
          connection = resumed
          current.withLock { $0 = resumed }
          logger.info("logging channel resumed", metadata: ["from": "\(received)"])
        } catch {
          channelEnd.withLock { $0 = "\(reason); reconnecting failed: \(error)" }
          break
        }
      }
      source.end()
    }
    let control = try MachineControl()
    let outcome = Mutex<Result<MachineReport, MachineSetupError>?>(nil)
    let vcpu = try NamedThread(name: "vcpu-0") {
      let result: Result<MachineReport, MachineSetupError>
      do {
        let replayer = try Replayer(reader: source)
        result = StandaloneVMM.runOnThisThread(configuration, replayer, DiscardingOutputs(), nil, control)
      } catch {
        result = .failure(MachineSetupError("\(error)"))
      }
      outcome.withLock { $0 = result }
    }
    vcpu.join()
    // The guest's own exit ends the replay before the primary's end record
    // may have arrived: give it a moment, to compare final states.
    let deadline = ClockReading.monotonicNanoseconds() + 3_000_000_000
    while lastEnd.withLock({ $0 == nil }) && channelEnd.withLock({ $0.isEmpty })
      && ClockReading.monotonicNanoseconds() < deadline
    {
      Wakeup.sleep(milliseconds: 10)
    }
    finished.store(true, ordering: .releasing)
    current.withLock { $0?.close() }
    receiver.join()
    guard let result = outcome.withLock({ $0 }) else {
      throw MachineSetupError("the backup's vCPU thread ended without a result")
    }
    return Report(
      machine: try result.get(), primaryEnd: lastEnd.withLock { $0 }, channelEnd: channelEnd.withLock { $0 })
  }

  /// Connects (retrying until `timeout` while the primary is not there
  /// yet), says hello, and returns the stream and the primary's header.
  static func connect(
    primary: HostPort, context: TLSContext, hello: LogHeader, resumeFrom: UInt64, timeout: Duration, logger: Logger
  ) throws -> (TLSStream, LogHeader) {
    let deadline = ClockReading.monotonicNanoseconds() + UInt64(timeout.components.seconds) * 1_000_000_000
    while true {
      do {
        let stream = try TLSStream.connect(
          host: primary.host, port: primary.port, context: context, timeout: .seconds(5), expecting: .vmm)
        var message: [UInt8] = []
        ChannelMessage.hello(header: hello, resumeFrom: resumeFrom).encode(into: &message)
        try stream.write(message)
        var reader = ChannelReader(stream: stream)
        switch try reader.readControl() {
        case .welcome(let header, _)?:
          try stream.setTimeout(.seconds(1))
          return (stream, header)
        case .refuse(let reason)?:
          stream.close()
          throw MachineSetupError("the primary at \(primary) refused this backup: \(reason)")
        default:
          stream.close()
          throw MachineSetupError("the primary at \(primary) did not answer the handshake")
        }
      } catch let error as TLSError where error.code == .connect {
        guard ClockReading.monotonicNanoseconds() < deadline else { throw error }
        logger.info("primary not reachable yet, retrying", metadata: ["primary": "\(primary)"])
        Wakeup.sleep(milliseconds: 200)
      }
    }
  }

  /// Reads the log from the primary into `source` and acknowledges it,
  /// until the stream ends; `received` tracks the position held. Returns
  /// why it ended.
  static func receive(
    from stream: TLSStream, into source: ChannelLogSource, received: inout UInt64,
    lastEnd: borrowing Mutex<LogRecord?>
  ) -> String {
    var reader = ChannelReader(stream: stream)
    do {
      while true {
        guard let messages = try reader.readMessages() else { return "the primary closed the channel" }
        var records: [(record: LogRecord, size: Int)] = []
        for (message, size) in messages {
          guard case .record(let record) = message else {
            throw LogDecodingError("unexpected \(message) from the primary")
          }
          switch record {
          case .input(let point, _, _): received = max(received, point.sequence + 1)
          case .progress(let exits): received = max(received, exits)
          case .end(let exits, _, _, _):
            received = max(received, exits)
            lastEnd.withLock { $0 = record }
          case .header: break
          }
          records.append((record, size))
        }
        if !records.isEmpty { source.push(records) }
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
