import Lockstep

/// The logging channel's wire frames: ``WireMessage/decode(_:at:)`` (log
/// records and ``ChannelMessage``s) over a stream read in pieces of
/// varying size, as the channel reader keeps partial messages.
///
/// Input: a ``FrameStream``; the mode byte also seeds the sizes of the
/// simulated reads. Checks: the pieces decode to exactly what the whole
/// stream decodes to (same messages, same error), and every message
/// survives re-encoding.
public enum WireTarget: FuzzTarget {
  public static let name = "wire"

  public static func run(_ data: [UInt8]) {
    let (mode, bytes) = FrameStream.read(data)
    let whole = decode(bytes, reads: nil)
    let pieces = decode(bytes, reads: SplitMix(state: UInt64(mode)))
    expect(whole.messages == pieces.messages, "read in pieces, the stream decodes to other messages")
    expect(
      whole.failure == pieces.failure,
      "read whole: \(String(describing: whole.failure)); in pieces: \(String(describing: pieces.failure))")
    for message in whole.messages {
      checkRoundTrip(message)
      switch message {
      case .control(.hello(let header, _, _, _)), .control(.welcome(let header, _, _, _)),
        .control(.join(let header, _, _)):
        // What a primary does with a backup's header.
        _ = LogStream.header.mismatch(with: header)
      default:
        break
      }
    }
  }

  struct Decoded {
    var messages: [WireMessage] = []
    var failure: LogDecodingError?
  }

  /// The channel reader's loop: append what one read returned to the
  /// inbox, decode every whole message, keep the rest.
  static func decode(_ bytes: [UInt8], reads: SplitMix?) -> Decoded {
    var decoded = Decoded()
    var sizes = reads
    var inbox: [UInt8] = []
    var consumed: UInt64 = 0
    var read = 0
    while read < bytes.count {
      var size = bytes.count
      if var generator = sizes {
        size = 1 + Int(generator.next() % 300)
        sizes = generator
      }
      let end = min(bytes.count, read + size)
      inbox.append(contentsOf: bytes[read..<end])
      read = end
      var offset = 0
      do {
        while let (message, size) = try WireMessage.decode(inbox[offset...], at: consumed + UInt64(offset)) {
          expect(size >= LogFrame.overhead && size <= inbox.count - offset, "message size \(size)")
          decoded.messages.append(message)
          offset += size
        }
      } catch {
        decoded.failure = error
        return decoded
      }
      inbox.removeFirst(offset)
      consumed += UInt64(offset)
    }
    return decoded
  }

  static func checkRoundTrip(_ message: WireMessage) {
    var bytes: [UInt8] = []
    switch message {
    case .record(let record): LogFrame.encode(record, into: &bytes)
    case .control(let control): control.encode(into: &bytes)
    }
    // Strings longer than 64 KiB are truncated by design.
    guard bytes.count < 65536 else { return }
    do {
      let again = try WireMessage.decode(bytes[...], at: 0)
      expect(again?.message == message, "\(message) re-encoded decodes as \(String(describing: again?.message))")
      expect(again?.size == bytes.count, "re-encoded size \(bytes.count), decoded \(String(describing: again?.size))")
    } catch {
      expect(false, "\(message) re-encoded does not decode: \(error)")
    }
  }

  // MARK: Seeds

  /// A snapshot as the primary sends it (built from its documented
  /// encoding, then decoded and re-encoded by the real code).
  static func snapshot(attached: Bool, open: [UInt32] = [3, 5]) -> MachineSnapshot? {
    var writer = FuzzWriter()
    writer.u64(1234)
    writer.u64(0xDEAD_BEEF)
    writer.u64(1234)
    if attached {
      writer.u8(1)
      for value: UInt64 in [0x20_0000, 65536, 0x22_0000, 65536] { writer.u64(value) }
    } else {
      writer.u8(0)
    }
    writer.u64(17)
    writer.u64(19)
    writer.u32(open.max() ?? 0)
    writer.u32(UInt32(open.count))
    for connection in open { writer.u32(connection) }
    writer.u64(UInt64(bitPattern: -5_000))
    writer.u64(77_000)
    writer.u8(1)
    writer.u64(70_000)
    writer.u64(1_790_000_000_000_000_000)
    // kvm_regs, kvm_sregs, kvm_fpu as x86-64 Linux lays them out.
    for size in [144, 312, 416] {
      writer.u32(UInt32(size))
      writer.raw([UInt8](repeating: 0, count: size))
    }
    var reader = ByteReader(writer.bytes)
    return try? MachineSnapshot.decode(from: &reader)
  }

  static func status() -> NodeStatus {
    var status = NodeStatus(
      node: "vmm1", role: "primary", generation: 7, protected: true, backup: "vmm2", serviceAddress: "10.0.0.1:6379",
      lagNanoseconds: 1_500_000, heldOutputs: 3, heldBytes: 120, logBytes: 1 << 20, logRecords: 4000,
      logBytesPerSecond: 9000, lastHeartbeatMilliseconds: 12, acknowledged: 4096)
    status.heartbeatsReceived = 100
    status.heartbeatsForged = 1
    status.cloning = true
    status.cloneRound = 2
    status.exits = 99_999
    return status
  }

  static func controlMessages() -> [(String, ChannelMessage)] {
    let header = LogStream.header
    var messages: [(String, ChannelMessage)] = [
      ("hello", .hello(header: header, resumeFrom: 4096, heartbeatPort: 7000, heartbeatBootID: 0xB007)),
      ("welcome", .welcome(header: header, startsAt: 0, generation: 3, heartbeatBootID: 0xB008)),
      ("refuse", .refuse(reason: "the log does not reach back to byte 4096")),
      ("ack", .ack(received: 8192, replayed: 4096)),
      ("handover", .handover(exits: 31337)),
      ("status-request", .statusRequest),
      ("status", .status(status())),
      ("join", .join(header: header, heartbeatPort: 7001, heartbeatBootID: 0xB009)),
      (
        "clone-pages",
        .clonePages([
          ClonePage(number: 256, data: nil), ClonePage(number: 257, data: [UInt8](repeating: 0x5A, count: 4096)),
        ])
      ),
      ("clone-disk", .cloneDisk(offset: 4096, bytes: [UInt8](repeating: 0x11, count: 1024))),
      ("clone-disk-zero", .cloneDiskZero(offset: 8192, count: 4096)),
    ]
    for command in OperatorCommand.allCases { messages.append(("command-\(command.rawValue)", .command(command))) }
    if let snapshot = snapshot(attached: true) { messages.append(("clone-state", .cloneState(snapshot))) }
    if let snapshot = snapshot(attached: false, open: []) {
      messages.append(("clone-state-detached", .cloneState(snapshot)))
    }
    return messages
  }

  public static func seeds() -> [(name: String, bytes: [UInt8])] {
    var seeds: [(name: String, bytes: [UInt8])] = []
    for (name, message) in controlMessages() {
      var bytes: [UInt8] = []
      message.encode(into: &bytes)
      seeds += FrameStream.seeds(name, bytes)
    }
    // A backup's session: hello, then the log interleaved with acks.
    var session: [UInt8] = []
    ChannelMessage.welcome(header: LogStream.header, startsAt: 0, generation: 1, heartbeatBootID: 1).encode(
      into: &session)
    for record in [
      LogRecord.header(LogStream.header), LogStream.input(0, .clock, ClockReading(monotonic: 1, wall: 2)),
      .progress(exits: 1),
    ] {
      LogFrame.encode(record, into: &session)
    }
    ChannelMessage.ack(received: 100, replayed: 50).encode(into: &session)
    ChannelMessage.handover(exits: 2).encode(into: &session)
    seeds += FrameStream.seeds("session", session)
    return seeds
  }
}
