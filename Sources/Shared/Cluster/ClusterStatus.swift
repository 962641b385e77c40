/// What `lockstep status` shows: the arbiter's record of a VM and, when its
/// holder answers, the holder's own status.
public struct ClusterStatus: Sendable {
  /// The arbiter's record.
  public var record: ArbiterRecord
  /// The holder's status, when it answered.
  public var node: NodeStatus?
  /// Why the holder did not answer (nil when it did or there is none).
  public var nodeError: String?

  /// Creates a status.
  public init(record: ArbiterRecord, node: NodeStatus?, nodeError: String?) {
    self.record = record
    self.node = node
    self.nodeError = nodeError
  }

  /// Whether the VM runs (its record has a holder with addresses).
  public var isRunning: Bool { record.holder != nil && !record.replicationAddress.isEmpty }

  /// Asks the arbiter at `arbiter` about `vm`, then its holder.
  public static func fetch(vm: String, arbiter: HostPort, credentials: NodeCredentials) throws -> ClusterStatus {
    let client = try ArbiterClient(address: arbiter, credentials: credentials)
    defer { client.close() }
    let record = try client.query(vm: vm)
    var status = ClusterStatus(record: record, node: nil, nodeError: nil)
    guard status.isRunning, let address = HostPort(parsing: record.replicationAddress) else { return status }
    do {
      switch try exchange(.statusRequest, with: address, credentials: credentials) {
      case .status(let node): status.node = node
      case .refuse(let reason): status.nodeError = "\(record.holder ?? "the holder") refused: \(reason)"
      default: status.nodeError = "\(address) answered something other than a status"
      }
    } catch {
      status.nodeError = "\(error)"
    }
    return status
  }

  /// Sends an operator command to `vm`'s primary (found at the arbiter)
  /// and returns its status after accepting it.
  public static func command(
    _ command: OperatorCommand, vm: String, arbiter: HostPort, credentials: NodeCredentials
  ) throws -> NodeStatus {
    let client = try ArbiterClient(address: arbiter, credentials: credentials)
    defer { client.close() }
    let record = try client.query(vm: vm)
    guard record.holder != nil, let address = HostPort(parsing: record.replicationAddress) else {
      throw MachineSetupError("VM '\(vm)' is not running (the arbiter's record: \(record))")
    }
    switch try exchange(.command(command), with: address, credentials: credentials) {
    case .status(let node): return node
    case .refuse(let reason): throw MachineSetupError("\(record.holder ?? "the primary") refused: \(reason)")
    default: throw MachineSetupError("\(address) answered something other than a status")
    }
  }

  /// One request to a VMM's replication listener and its answer.
  static func exchange(_ request: ChannelMessage, with address: HostPort, credentials: NodeCredentials) throws
    -> ChannelMessage
  {
    let stream = try TLSStream.connect(
      host: address.host, port: address.port, context: TLSContext(credentials: credentials, side: .client),
      timeout: .seconds(3), expecting: .vmm)
    defer { stream.close() }
    try stream.setTimeout(.seconds(3))
    var bytes: [UInt8] = []
    request.encode(into: &bytes)
    try stream.write(bytes)
    var reader = ChannelReader(stream: stream)
    guard let answer = try reader.readControl() else {
      throw MachineSetupError("\(address) closed the connection without answering")
    }
    return answer
  }

  /// The JSON `lockstep status --json` prints: at least `vm`,
  /// `generation`, `primary`, `backup` (names or null), `protected` and
  /// `lag_ms`.
  public var json: String {
    var fields: [(String, String)] = [
      ("vm", Self.quote(record.vm)),
      ("generation", "\(record.generation)"),
      ("primary", isRunning ? record.holder.map(Self.quote) ?? "null" : "null"),
      ("backup", node.flatMap { $0.backup.isEmpty ? nil : Self.quote($0.backup) } ?? "null"),
      ("protected", node?.protected == true ? "true" : "false"),
      ("lag_ms", node.map { Self.milliseconds($0.lagNanoseconds) } ?? "null"),
      ("role", node.map { Self.quote($0.role) } ?? "null"),
      ("service", Self.quote(record.serviceAddress)),
      ("replication", Self.quote(record.replicationAddress)),
      ("reachable", node != nil ? "true" : "false"),
    ]
    if let node {
      fields += [
        ("held_outputs", "\(node.heldOutputs)"), ("held_bytes", "\(node.heldBytes)"),
        ("log_bytes", "\(node.logBytes)"), ("log_records", "\(node.logRecords)"),
        ("log_bytes_per_second", "\(node.logBytesPerSecond)"),
        ("last_heartbeat_ms", node.lastHeartbeatMilliseconds == .max ? "null" : "\(node.lastHeartbeatMilliseconds)"),
        ("acknowledged", "\(node.acknowledged)"),
        ("heartbeats_received", "\(node.heartbeatsReceived)"),
        ("heartbeats_forged", "\(node.heartbeatsForged)"),
        ("heartbeats_replayed", "\(node.heartbeatsReplayed)"),
        ("heartbeats_malformed", "\(node.heartbeatsMalformed)"),
        ("heartbeats_foreign", "\(node.heartbeatsForeign)"),
        ("cloning", node.cloning ? "true" : "false"),
        ("last_clone_ms", "\(node.lastCloneMilliseconds)"),
        ("last_clone_pause_us", "\(node.lastClonePauseMicroseconds)"),
        ("last_clone_bytes", "\(node.lastCloneBytes)"),
        ("exits", "\(node.exits)"),
        ("heartbeats_sent", "\(node.heartbeatsSent)"),
        ("heartbeats_missed", "\(node.heartbeatsMissed)"),
        ("failovers", "\(node.failovers)"),
        ("clones", "\(node.clones)"),
        ("connections_refused", "\(node.connectionsRefused)"),
      ]
    }
    if let nodeError { fields.append(("error", Self.quote(nodeError))) }
    return "{" + fields.map { "\(Self.quote($0.0)): \($0.1)" }.joined(separator: ", ") + "}"
  }

  /// The human-readable form.
  public var text: String {
    var lines = ["VM \(record.vm): generation \(record.generation)"]
    guard isRunning, let holder = record.holder else {
      lines.append(
        record.generation == 0 ? "  never started" : "  not running (last held by \(record.holder ?? "nobody"))")
      return lines.joined(separator: "\n")
    }
    lines.append(
      "  primary:    \(holder) (serving on \(record.serviceAddress.isEmpty ? "-" : record.serviceAddress), replication \(record.replicationAddress))"
    )
    guard let node else {
      lines.append("  primary not answering: \(nodeError ?? "unknown")")
      return lines.joined(separator: "\n")
    }
    lines.append("  role:       \(node.role)")
    lines.append("  backup:     \(node.backup.isEmpty ? "none" : node.backup)")
    lines.append("  protected:  \(node.protected ? "yes" : "NO")")
    lines.append("  lag:        \(Self.milliseconds(node.lagNanoseconds)) ms")
    lines.append("  held:       \(node.heldOutputs) outputs, \(node.heldBytes) bytes")
    lines.append("  log:        \(node.logBytes) bytes, \(node.logRecords) records, \(node.logBytesPerSecond) B/s")
    lines.append(
      "  heartbeat:  \(node.lastHeartbeatMilliseconds == .max ? "never" : "\(node.lastHeartbeatMilliseconds) ms ago")"
        + " (\(node.heartbeatsReceived) received; refused: \(node.heartbeatsForged) forged, "
        + "\(node.heartbeatsReplayed) replayed, \(node.heartbeatsMalformed) malformed, "
        + "\(node.heartbeatsForeign) foreign)")
    if node.cloning {
      lines.append("  clone:      a new backup is being cloned")
    } else if node.lastCloneMilliseconds > 0 {
      lines.append(
        "  last clone: \(node.lastCloneMilliseconds) ms, paused \(node.lastClonePauseMicroseconds) µs, \(node.lastCloneBytes) bytes"
      )
    }
    return lines.joined(separator: "\n")
  }

  static func milliseconds(_ nanoseconds: UInt64) -> String {
    let tenths = nanoseconds / 100_000
    return "\(tenths / 10).\(tenths % 10)"
  }

  static func quote(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
      switch scalar {
      case "\"": out += "\\\""
      case "\\": out += "\\\\"
      case "\n": out += "\\n"
      case "\r": out += "\\r"
      case "\t": out += "\\t"
      default:
        if scalar.value < 0x20 {
          let hex = String(scalar.value, radix: 16)
          out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        } else {
          out.unicodeScalars.append(scalar)
        }
      }
    }
    return out + "\""
  }
}
