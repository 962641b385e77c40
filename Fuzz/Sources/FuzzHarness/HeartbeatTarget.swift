import Lockstep
import Logging

/// Heartbeats: ``HeartbeatPacket/decode(_:key:)`` with the cluster's key,
/// and a real ``Heartbeat`` endpoint's receive path (VM, sender, boot id
/// and replay checks, counters) fed the same datagrams.
///
/// Input: a mode byte (bit 7 clear: the endpoint is pinned to sender
/// bits 0-1 and boot id bits 2-6), then datagrams `[flags u8][length u8][bytes]`. Flags bit 0: the
/// bytes are a packet without its MAC, and the harness signs them with the
/// key (so the checks after the MAC are fuzzed too); bits 1-7: the time
/// since the previous datagram, in 10 ms.
///
/// Checks: a packet that decodes re-encodes to the same bytes and is
/// refused as forged under another key; a packet signed with the key is
/// never refused as forged; the endpoint counts every datagram once; its
/// counters go into the node's status and metrics.
public enum HeartbeatTarget: FuzzTarget {
  public static let name = "heartbeat"
  static let key: [UInt8] = (0..<32).map { UInt8($0) &* 37 &+ 11 }
  static let otherKey: [UInt8] = key.map { $0 ^ 0x80 }
  /// This endpoint: node `vmm2` of VM `kv`.
  static let vm = "kv"
  static let node = "vmm2"
  nonisolated(unsafe) static var timing = HeartbeatTiming.default
  static let metrics = NodeMetrics()

  public static func setUp() -> Bool {
    do {
      // One heartbeat an hour: the endpoint's thread stays out of the way.
      timing = try HeartbeatTiming(interval: .seconds(3600), failureTimeout: .seconds(7200))
      return true
    } catch {
      print("heartbeat: \(error)")
      return false
    }
  }

  /// A new endpoint for every input, so inputs do not depend on each other.
  static func endpoint() -> Heartbeat? {
    try? Heartbeat(
      Heartbeat.Configuration(
        vm: vm, node: node, bind: HostPort(host: "127.0.0.1", port: 0), peer: HostPort(host: "127.0.0.1", port: 9),
        key: key, timing: timing),
      logger: Logger(label: "fuzz-heartbeat", factory: { _ in SwiftLogNoOpLogHandler() }))
  }

  static func total(_ status: HeartbeatStatus) -> UInt64 {
    status.received + status.rejectedForged + status.rejectedReplayed + status.rejectedMalformed
      + status.rejectedForeign
  }

  public static func run(_ data: [UInt8]) {
    guard let endpoint = endpoint() else { return expect(false, "cannot create a heartbeat endpoint") }
    defer { endpoint.stop() }
    var reader = FuzzReader(data)
    let mode = reader.u8()
    // Mode bit 7 clear: pinned to a sender and boot id, as after the
    // logging channel's handshake; set: not yet pinned.
    if mode & 0x80 == 0 {
      endpoint.expect(peer: ["vmm1", "vmm2", "vmm3", ""][Int(mode & 3)], bootID: UInt64(mode >> 2))
    }
    var senders = FuzzHooks.HeartbeatSenders()
    var now: UInt64 = 1_000_000_000
    var count: UInt64 = 0
    while !reader.isEmpty && count < 32 {
      let flags = reader.u8()
      var datagram = reader.bytes(Int(reader.u8()))
      let signed = flags & 1 != 0
      if signed { datagram += FuzzHooks.heartbeatMAC(key: key, over: datagram) }
      let packet = check(datagram, signed: signed, senders: &senders)
      // HB-1: the count of missed heartbeats overflows (a trap) when
      // sequence gaps add up past 2^64; HB-2: the metrics trap once it is
      // over Int64.max.
      if KnownBugs.avoid, let packet, packet.sequence >= 1 << 58 { continue }
      now += UInt64(flags >> 1) * 10_000_000
      FuzzHooks.accept(endpoint, datagram: datagram, at: now)
      count += 1
    }
    let beats = endpoint.status
    expect(total(beats) == count, "\(count) datagrams, \(total(beats)) counted")
    export(beats)
  }

  /// The endpoint's counters as a backup reports them (its ``NodeStatus``)
  /// and exports them (``NodeMetrics``, sampled from that status).
  static func export(_ beats: HeartbeatStatus) {
    var status = NodeStatus(
      node: node, role: "backup", generation: 0, protected: true, backup: "", serviceAddress: "",
      lastHeartbeatMilliseconds: beats.lastHeard == nil ? .max : 0)
    status.heartbeatsReceived = beats.received
    status.heartbeatsSent = beats.sent
    status.heartbeatsMissed = beats.missed
    status.heartbeatsForged = beats.rejectedForged
    status.heartbeatsReplayed = beats.rejectedReplayed
    status.heartbeatsMalformed = beats.rejectedMalformed
    status.heartbeatsForeign = beats.rejectedForeign
    // Following a new source, the counters add from zero: all of this
    // input's counts are exported (Prometheus counters wrap, they do not
    // trap, so one registry serves every input).
    let sample = status
    metrics.follow { sample }
    metrics.refresh()
  }

  /// Checks the decoder on `datagram`; returns the packet if it decodes.
  static func check(_ datagram: [UInt8], signed: Bool, senders: inout FuzzHooks.HeartbeatSenders)
    -> HeartbeatPacket?
  {
    let packet: HeartbeatPacket
    do {
      packet = try HeartbeatPacket.decode(datagram, key: key)
    } catch {
      expect(!signed || error.kind != .badMAC, "a packet signed with the key was refused as forged")
      expect(!error.message.isEmpty, "an empty heartbeat error")
      return nil
    }
    expect(packet.encode(key: key) == datagram, "\(packet) re-encodes to other bytes")
    expect(packet.sequence > 0, "sequence 0 accepted")
    do {
      _ = try HeartbeatPacket.decode(datagram, key: otherKey)
      expect(false, "a packet was accepted under another key")
    } catch {
      expect(error.kind == .badMAC, "under another key: \(error)")
    }
    _ = senders.check(packet)
    expect(senders.count <= 16, "\(senders.count) senders tracked")
    return packet
  }

  // MARK: Seeds

  static func packet(
    vm: String = vm, sender: String = "vmm1", bootID: UInt64 = 5, sequence: UInt64, flags: HeartbeatFlags = [.primary]
  ) -> HeartbeatPacket {
    HeartbeatPacket(
      flags: flags, vm: vm, sender: sender, generation: 3, bootID: bootID, sequence: sequence,
      sentMonotonicNanoseconds: 1_000_000 * sequence)
  }

  /// A datagram as the harness signs it (flags 1, no MAC), `gap` 10 ms after
  /// the previous one.
  static func signed(_ packet: HeartbeatPacket, gap: UInt8 = 5) -> [UInt8] {
    let bytes = Array(packet.encode(key: key).dropLast(HeartbeatPacket.macLength))
    return [1 | gap << 1, UInt8(bytes.count)] + bytes
  }

  /// A datagram as it came off the wire (flags 0).
  static func raw(_ bytes: [UInt8], gap: UInt8 = 5) -> [UInt8] {
    [gap << 1, UInt8(bytes.count)] + bytes
  }

  public static func seeds() -> [(name: String, bytes: [UInt8])] {
    // Mode 0x14: pinned to vmm1 with boot id 5.
    let pinned: UInt8 = 0 | 5 << 2
    var seeds: [(name: String, bytes: [UInt8])] = []
    seeds.append(("sequence", [pinned] + (1...4).flatMap { signed(packet(sequence: $0)) }))
    seeds.append(
      ("replayed", [pinned] + [3, 1, 2, 2, 3].flatMap { signed(packet(sequence: $0)) }))
    seeds.append(
      ("wire", [pinned] + raw(packet(sequence: 1).encode(key: key)) + raw(packet(sequence: 2).encode(key: key))))
    seeds.append(("forged", [pinned] + raw(packet(sequence: 1).encode(key: otherKey))))
    seeds.append(("stopping", [pinned] + signed(packet(sequence: 9, flags: [.primary, .stopping]))))
    seeds.append(("foreign-vm", [pinned] + signed(packet(vm: "other", sequence: 1))))
    seeds.append(("reflected", [pinned] + signed(packet(sender: node, sequence: 1))))
    seeds.append(
      (
        "new-boot",
        [pinned] + signed(packet(sequence: 1)) + signed(packet(bootID: 6, sequence: 1))
          + signed(packet(bootID: 5, sequence: 2))
      ))
    seeds.append(
      (
        "long-names",
        [pinned]
          + signed(
            packet(vm: String(repeating: "v", count: 64), sender: String(repeating: "s", count: 64), sequence: 1))
      ))
    // Not pinned: two boot ids of one sender, and two senders.
    seeds.append(
      (
        "unpinned",
        [0x80] + signed(packet(sequence: 1)) + signed(packet(bootID: 9, sequence: 4))
          + signed(packet(sender: "vmm3", sequence: 2))
      ))
    seeds.append(("garbage", [pinned] + raw(Array("LSHB".utf8) + [1, 0, 2] + Array("kv".utf8))))
    return seeds
  }
}
