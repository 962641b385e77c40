/// Entry points for the libFuzzer targets in `Fuzz/` (docs in Fuzz/README.md)
/// into code paths that are internal to the library: the heartbeat MAC and
/// receive path, the net device's rings and the hypercall dispatcher. Each
/// one only forwards to the real code; nothing here is used by the VMMs.
public enum FuzzHooks {
  // MARK: Heartbeats

  /// The HMAC-SHA256 a heartbeat carries over `bytes` (what
  /// ``HeartbeatPacket/encode(key:)`` appends), so a fuzzer can sign
  /// arbitrary packets and reach the checks after the MAC.
  public static func heartbeatMAC(key: [UInt8], over bytes: [UInt8]) -> [UInt8] {
    HeartbeatPacket.mac(key: key, over: bytes[...])
  }

  /// Hands `datagram`, received at `now` (monotonic ns), to `heartbeat`'s
  /// receive path (decode, VM, sender and boot id checks, replay check,
  /// counters), as its socket thread does.
  public static func accept(_ heartbeat: Heartbeat, datagram: [UInt8], at now: UInt64) {
    heartbeat.accept(datagram, at: now)
  }

  /// The per-sender boot id and sequence state an unpinned heartbeat
  /// endpoint keeps, driven by the endpoint's own replay check.
  public struct HeartbeatSenders {
    var senders: [String: Heartbeat.SenderState] = [:]

    /// An endpoint that has heard nobody.
    public init() {}

    /// How many senders are tracked.
    public var count: Int { senders.count }

    /// Checks and records `packet`: nil when fresh, else why it is a replay.
    public mutating func check(_ packet: HeartbeatPacket) -> String? {
      Heartbeat.checkSequence(packet, senders: &senders)
    }
  }

  // MARK: The net device

  /// A net device over `memory`, as a machine has one, with its
  /// hypercall-side operations.
  public final class NetRings {
    /// The device.
    public let device: NetDevice

    /// A device with no rings attached.
    public init(memory: GuestMemory) {
      device = NetDevice(memory: memory)
    }

    /// LS_OP_NET_ATTACH with these arguments.
    public func attach(rx: UInt64, rxCapacity: UInt64, tx: UInt64, txCapacity: UInt64) throws(GuestError) -> Int32 {
      try device.attach(rx: rx, rxCapacity: rxCapacity, tx: tx, txCapacity: txCapacity)
    }

    /// The rx ring's validated indices (nil before attach).
    public func rxCursor() throws(GuestError) -> RingCursor? {
      try device.rxCursor()
    }

    /// Appends `events` to the rx ring (LS_OP_WAIT's delivery).
    public func deliver(_ events: [InboundEvent]) throws(GuestError) {
      try device.deliver(events)
    }

    /// Hands the tx ring's messages to `outputs` (LS_OP_NET_FLUSH, WAIT, EXIT).
    @discardableResult
    public func drain(to outputs: any OutputSink, at point: ExitPoint) throws(GuestError) -> Bool {
      try device.drain(to: outputs, at: point)
    }

    /// Takes over a cloned device's state (what a joining backup does with
    /// the primary's ``MachineSnapshot``).
    public func restore(_ state: NetDevice.State) {
      device.restore(state)
    }

    /// Forgets the rings and counters (a device before LS_OP_NET_ATTACH).
    public func reset() {
      device.restore(FuzzHooks.detachedNetState)
    }
  }

  static let detachedNetState = NetDevice.State(
    attachment: nil, rxMessages: 0, txMessages: 0, openConnections: [], highestConnection: 0)

  // MARK: The hypercall dispatcher

  /// Handles one doorbell store of `descriptor` on `machine` (which must
  /// not be running), as its exit loop does; returns why the VM must stop,
  /// or nil when the call's results were written back.
  public static func hypercall(_ machine: Machine, descriptor: UInt64) -> MachineStop? {
    machine.hypercall(descriptor: descriptor)
  }

  /// Detaches `machine`'s net device (its state before LS_OP_NET_ATTACH),
  /// so one machine can serve many independent inputs.
  public static func resetNetDevice(of machine: Machine) {
    machine.net.restore(detachedNetState)
  }
}
