/// What a running primary reports to `lockstep status` (docs/protocol.md,
/// message 22): its role and generation, whether a backup protects it, and
/// how the logging channel is doing.
public struct NodeStatus: Sendable, Equatable {
  /// The reporting node's name.
  public var node: String
  /// `primary` (with a backup attached), `primary-alone` (went on alone
  /// after losing its backup, or waiting for the first one), `stopping`.
  public var role: String
  /// The generation this node holds at the arbiter (0 without an arbiter).
  public var generation: UInt64
  /// Whether a backup is attached and output waits for it.
  public var protected: Bool
  /// The attached backup's node name (empty when none).
  public var backup: String
  /// Where the VM serves clients (empty when it does not).
  public var serviceAddress: String
  /// How far the backup's execution lags, ns.
  public var lagNanoseconds: UInt64
  /// Outputs held by the Output Rule now, and their bytes.
  public var heldOutputs: UInt64
  public var heldBytes: UInt64
  /// Log bytes and records since the start, and bytes per second lately.
  public var logBytes: UInt64
  public var logRecords: UInt64
  public var logBytesPerSecond: UInt64
  /// Milliseconds since the backup's last heartbeat (`UInt64.max`: never).
  public var lastHeartbeatMilliseconds: UInt64
  /// The log position the backup has acknowledged.
  public var acknowledged: UInt64
  /// Heartbeats accepted, and refused as forged (bad MAC), replayed (old
  /// sequence), malformed, or foreign (another VM, sender or boot id).
  public var heartbeatsReceived: UInt64 = 0
  public var heartbeatsForged: UInt64 = 0
  public var heartbeatsReplayed: UInt64 = 0
  public var heartbeatsMalformed: UInt64 = 0
  public var heartbeatsForeign: UInt64 = 0
  /// Whether a clone into a new backup is under way, and how the last one
  /// went (0 when none finished).
  public var cloning = false
  public var lastCloneMilliseconds: UInt64 = 0
  public var lastClonePauseMicroseconds: UInt64 = 0
  public var lastCloneBytes: UInt64 = 0
  /// Guest exits the machine handled (the exit count of its execution).
  public var exits: UInt64 = 0
  /// Heartbeats sent, and the peer's heartbeats that never arrived (gaps
  /// in its sequence).
  public var heartbeatsSent: UInt64 = 0
  public var heartbeatsMissed: UInt64 = 0
  /// Times this node took over after its peer failed: a backup going live
  /// (1 from then on) plus a primary going on alone.
  public var failovers: UInt64 = 0
  /// Clones finished; during a clone its round (0: the first copy of
  /// memory), bytes sent so far and the share of the first copy done, ‰.
  public var clones: UInt64 = 0
  public var cloneRound: UInt64 = 0
  public var cloneBytes: UInt64 = 0
  public var cloneFirstCopyPermille: UInt64 = 0
  /// Connections to the logging channel refused at the TLS handshake (no,
  /// foreign or expired certificate, a role not allowed, not TLS).
  public var connectionsRefused: UInt64 = 0

  /// Creates a status.
  public init(
    node: String, role: String, generation: UInt64, protected: Bool, backup: String, serviceAddress: String,
    lagNanoseconds: UInt64 = 0, heldOutputs: UInt64 = 0, heldBytes: UInt64 = 0, logBytes: UInt64 = 0,
    logRecords: UInt64 = 0, logBytesPerSecond: UInt64 = 0, lastHeartbeatMilliseconds: UInt64 = .max,
    acknowledged: UInt64 = 0
  ) {
    self.node = node
    self.role = role
    self.generation = generation
    self.protected = protected
    self.backup = backup
    self.serviceAddress = serviceAddress
    self.lagNanoseconds = lagNanoseconds
    self.heldOutputs = heldOutputs
    self.heldBytes = heldBytes
    self.logBytes = logBytes
    self.logRecords = logRecords
    self.logBytesPerSecond = logBytesPerSecond
    self.lastHeartbeatMilliseconds = lastHeartbeatMilliseconds
    self.acknowledged = acknowledged
  }

  func encode(into body: inout [UInt8]) {
    body.appendString(node)
    body.appendString(role)
    body.append(littleEndian: generation)
    body.append(protected ? 1 : 0)
    body.appendString(backup)
    body.appendString(serviceAddress)
    for value in [
      lagNanoseconds, heldOutputs, heldBytes, logBytes, logRecords, logBytesPerSecond, lastHeartbeatMilliseconds,
      acknowledged, heartbeatsReceived, heartbeatsForged, heartbeatsReplayed, heartbeatsMalformed,
      heartbeatsForeign, cloning ? 1 : 0, lastCloneMilliseconds, lastClonePauseMicroseconds, lastCloneBytes,
      exits, heartbeatsSent, heartbeatsMissed, failovers, clones, cloneRound, cloneBytes, cloneFirstCopyPermille,
      connectionsRefused,
    ] {
      body.append(littleEndian: value)
    }
  }

  static func decode(from body: inout ByteReader) throws(LogDecodingError) -> NodeStatus {
    let node = try body.readString("status.node")
    let role = try body.readString("status.role")
    let generation = try body.read(UInt64.self, "status.generation")
    let flag = try body.read(UInt8.self, "status.protected")
    guard flag <= 1 else { throw LogDecodingError("status.protected: \(flag) is neither 0 nor 1") }
    let backup = try body.readString("status.backup")
    let service = try body.readString("status.service")
    var values: [UInt64] = []
    for name in [
      "lag", "held", "heldBytes", "logBytes", "logRecords", "logRate", "heartbeat", "acknowledged", "hbReceived",
      "hbForged", "hbReplayed", "hbMalformed", "hbForeign", "cloning", "cloneMs", "clonePause", "cloneBytes",
      "exits", "hbSent", "hbMissed", "failovers", "clones", "cloneRound", "cloneSent", "cloneFirstCopy",
      "refused",
    ] {
      values.append(try body.read(UInt64.self, "status.\(name)"))
    }
    var status = NodeStatus(
      node: node, role: role, generation: generation, protected: flag == 1, backup: backup, serviceAddress: service,
      lagNanoseconds: values[0], heldOutputs: values[1], heldBytes: values[2], logBytes: values[3],
      logRecords: values[4], logBytesPerSecond: values[5], lastHeartbeatMilliseconds: values[6],
      acknowledged: values[7])
    status.heartbeatsReceived = values[8]
    status.heartbeatsForged = values[9]
    status.heartbeatsReplayed = values[10]
    status.heartbeatsMalformed = values[11]
    status.heartbeatsForeign = values[12]
    status.cloning = values[13] != 0
    status.lastCloneMilliseconds = values[14]
    status.lastClonePauseMicroseconds = values[15]
    status.lastCloneBytes = values[16]
    status.exits = values[17]
    status.heartbeatsSent = values[18]
    status.heartbeatsMissed = values[19]
    status.failovers = values[20]
    status.clones = values[21]
    status.cloneRound = values[22]
    status.cloneBytes = values[23]
    status.cloneFirstCopyPermille = values[24]
    status.connectionsRefused = values[25]
    return status
  }
}
