import CLockstepKVM

/// The guest's network device: two rings in guest memory (rx: the VMM
/// produces inbound events; tx: the guest produces outbound data and
/// closes), registered by LS_OP_NET_ATTACH and touched only during exits.
///
/// All state lives in guest memory except where the rings are, so a clone
/// of guest memory plus ``attachment`` is the whole device.
public final class NetDevice {
  /// Where the rings are, once the guest attached them.
  public struct Attachment: Sendable, Equatable {
    public var rx: UInt64
    public var rxCapacity: UInt64
    public var tx: UInt64
    public var txCapacity: UInt64
  }

  /// The rings, or nil before LS_OP_NET_ATTACH.
  public private(set) var attachment: Attachment?
  let memory: GuestMemory

  /// Messages moved through the rings (for the benchmark and metrics).
  public private(set) var rxMessages: UInt64 = 0
  public private(set) var txMessages: UInt64 = 0
  /// The connections the guest was told are open and has not closed or
  /// been told are closed: what a new primary must close when it takes
  /// over (the clients' TCP connections ended with the old host).
  public private(set) var openConnections: Set<UInt32> = []
  /// The highest connection id the guest has seen (a new primary's ids
  /// start above it, so no id is ever reused).
  public private(set) var highestConnection: UInt32 = 0

  init(memory: GuestMemory) {
    self.memory = memory
  }

  /// What a clone needs besides guest memory.
  public struct State: Sendable, Equatable {
    public var attachment: Attachment?
    public var rxMessages: UInt64
    public var txMessages: UInt64
    public var openConnections: Set<UInt32>
    public var highestConnection: UInt32
  }

  /// The device's state now.
  public var state: State {
    State(
      attachment: attachment, rxMessages: rxMessages, txMessages: txMessages, openConnections: openConnections,
      highestConnection: highestConnection)
  }

  /// Takes over a cloned device's state.
  func restore(_ state: State) {
    attachment = state.attachment
    rxMessages = state.rxMessages
    txMessages = state.txMessages
    openConnections = state.openConnections
    highestConnection = state.highestConnection
  }

  static let headerSize = UInt64(MemoryLayout<ls_ring>.size)

  /// Validates and records the rings (LS_OP_NET_ATTACH). Returns LS_EINVAL
  /// for a capacity, alignment or overlap the ABI does not allow; throws
  /// when a ring lies outside guest memory.
  func attach(rx: UInt64, rxCapacity: UInt64, tx: UInt64, txCapacity: UInt64) throws(GuestError) -> Int32 {
    for (name, address, capacity) in [("rx", rx, rxCapacity), ("tx", tx, txCapacity)] {
      guard capacity >= LS_RING_MIN, capacity <= LS_RING_MAX, capacity.nonzeroBitCount == 1, address % 8 == 0
      else { return LS_EINVAL }
      do {
        _ = try memory.guestRange(address, count: Self.headerSize + capacity)
      } catch {
        throw GuestError("net.attach: \(name) ring \(error)")
      }
    }
    let rxEnd = rx + Self.headerSize + rxCapacity
    let txEnd = tx + Self.headerSize + txCapacity
    guard rxEnd <= tx || txEnd <= rx else { return LS_EINVAL }
    attachment = Attachment(rx: rx, rxCapacity: rxCapacity, tx: tx, txCapacity: txCapacity)
    return LS_OK
  }

  /// The rx ring's indices as the guest left them, validated.
  func rxCursor() throws(GuestError) -> RingCursor? {
    guard let attachment else { return nil }
    return try cursor(at: attachment.rx, capacity: attachment.rxCapacity, name: "rx")
  }

  private func cursor(at ring: UInt64, capacity: UInt64, name: String) throws(GuestError) -> RingCursor {
    do {
      let cursor = RingCursor(
        head: try memory.load(UInt64.self, at: ring), tail: try memory.load(UInt64.self, at: ring + 8),
        capacity: capacity)
      guard cursor.isValid else {
        throw GuestError(
          "net: \(name) ring indices head \(cursor.head), tail \(cursor.tail) are invalid for capacity \(capacity)")
      }
      return cursor
    } catch let error as GuestError {
      throw error
    } catch {
      throw GuestError("net: \(name) ring \(error)")
    }
  }

  /// Appends inbound events to the rx ring. They must fit: the live source
  /// planned them with ``rxCursor()``; a replayed log that does not fit is
  /// a divergence.
  func deliver(_ events: [InboundEvent]) throws(GuestError) {
    guard !events.isEmpty else { return }
    guard let attachment, var cursor = try rxCursor() else {
      throw GuestError("net: events arrived before the guest attached its rings")
    }
    let data = attachment.rx + Self.headerSize
    do {
      for event in events {
        guard let place = cursor.reserve(payload: event.payloadCount) else {
          throw GuestError(
            "net: an inbound event of \(event.payloadCount) bytes does not fit the rx ring (divergence?)")
        }
        if place.paddingLength >= UInt64(LS_MSG_HEADER) {
          try writeHeader(
            at: data + place.padding, connection: 0, type: UInt16(LS_MSG_PAD),
            length: UInt32(place.paddingLength) - LS_MSG_HEADER)
        }
        let header = data + place.message
        switch event {
        case .opened(let connection, let peer):
          openConnections.insert(connection)
          highestConnection = max(highestConnection, connection)
          try writeHeader(
            at: header, connection: connection, type: UInt16(LS_MSG_OPEN), length: UInt32(peer.utf8.count))
          try memory.write(peer.utf8, at: header + UInt64(LS_MSG_HEADER))
        case .data(let connection, let bytes):
          try writeHeader(at: header, connection: connection, type: UInt16(LS_MSG_DATA), length: UInt32(bytes.count))
          try memory.write(bytes, at: header + UInt64(LS_MSG_HEADER))
        case .closed(let connection):
          openConnections.remove(connection)
          try writeHeader(at: header, connection: connection, type: UInt16(LS_MSG_CLOSED), length: 0)
        }
      }
      try memory.store(cursor.head, at: attachment.rx)
    } catch let error as GuestError {
      throw error
    } catch {
      throw GuestError("net: rx ring \(error)")
    }
    rxMessages &+= UInt64(events.count)
  }

  private func writeHeader(at address: UInt64, connection: UInt32, type: UInt16, length: UInt32)
    throws(GuestMemoryError)
  {
    try memory.store(connection, at: address)
    try memory.store(type, at: address + 4)
    try memory.store(UInt16(0), at: address + 6)
    try memory.store(length, at: address + 8)
    try memory.store(UInt32(0), at: address + 12)
  }

  /// Hands every message in the tx ring to `outputs` and frees the ring.
  /// Returns whether anything was sent.
  @discardableResult
  func drain(to outputs: any OutputSink, at point: ExitPoint) throws(GuestError) -> Bool {
    guard let attachment else { return false }
    var cursor = try cursor(at: attachment.tx, capacity: attachment.txCapacity, name: "tx")
    guard cursor.used > 0 else { return false }
    let data = attachment.tx + Self.headerSize
    let capacity = attachment.txCapacity
    do {
      while cursor.tail < cursor.head {
        let offset = cursor.tail & (capacity - 1)
        let contiguous = capacity - offset
        let available = cursor.head - cursor.tail
        if contiguous < UInt64(LS_MSG_HEADER) {
          guard available >= contiguous else { throw GuestError("net: tx ring ends inside a skipped tail") }
          cursor.tail += contiguous
          continue
        }
        guard available >= UInt64(LS_MSG_HEADER) else {
          throw GuestError("net: tx ring holds a truncated message header at \(cursor.tail)")
        }
        let header = data + offset
        let connection = try memory.load(UInt32.self, at: header)
        let type = try memory.load(UInt16.self, at: header + 4)
        let length = try memory.load(UInt32.self, at: header + 8)
        if type == UInt16(LS_MSG_PAD) {
          guard UInt64(length) + UInt64(LS_MSG_HEADER) == contiguous, available >= contiguous else {
            throw GuestError("net: tx PAD message of \(length) bytes does not reach the end of the ring")
          }
          cursor.tail += contiguous
          continue
        }
        let size = RingCursor.footprint(payload: Int(length))
        guard length <= LS_MSG_MAX_PAYLOAD, size <= contiguous, size <= available else {
          throw GuestError("net: tx message at \(cursor.tail) claims \(length) bytes, more than the ring holds")
        }
        switch Int32(type) {
        case Int32(LS_MSG_DATA):
          let bytes = try memory.guestRange(header + UInt64(LS_MSG_HEADER), count: UInt64(length))
          outputs.send(UnsafeRawBufferPointer(bytes), connection: connection, at: point)
        case Int32(LS_MSG_CLOSE):
          openConnections.remove(connection)
          outputs.close(connection: connection, at: point)
        default:
          throw GuestError("net: tx message at \(cursor.tail) has unknown type \(type)")
        }
        txMessages &+= 1
        cursor.tail += size
      }
      try memory.store(cursor.tail, at: attachment.tx + 8)
    } catch let error as GuestError {
      throw error
    } catch {
      throw GuestError("net: tx ring \(error)")
    }
    return true
  }
}
