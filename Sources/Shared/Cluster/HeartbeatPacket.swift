import CLockstepSSL

/// Why a heartbeat datagram was refused by ``HeartbeatPacket/decode(_:key:)``.
public struct HeartbeatPacketError: Error, Equatable, Sendable, CustomStringConvertible {
  /// The kind of defect.
  public enum Kind: String, Sendable, Equatable, CaseIterable {
    /// Too short, too long, or its fields do not add up.
    case length
    /// Not a Lockstep heartbeat (wrong magic).
    case magic
    /// A heartbeat of a version this build does not speak.
    case version
    /// A field holds an impossible value (e.g. a name that is not UTF-8).
    case field
    /// The HMAC does not verify: forged, corrupted, or another cluster's key.
    case badMAC
  }

  /// The kind of defect.
  public var kind: Kind
  /// What was wrong, for a log line.
  public var message: String

  /// Creates an error.
  public init(_ kind: Kind, _ message: String) {
    self.kind = kind
    self.message = message
  }

  public var description: String { "malformed heartbeat (\(kind.rawValue)): \(message)" }
}

/// Flags a heartbeat carries.
public struct HeartbeatFlags: OptionSet, Sendable, Hashable {
  public let rawValue: UInt8
  public init(rawValue: UInt8) { self.rawValue = rawValue }

  /// The sender runs the VM as primary (recording).
  public static let primary = HeartbeatFlags(rawValue: 1 << 0)
  /// The sender is stopping on purpose (poweroff): no failover wanted.
  public static let stopping = HeartbeatFlags(rawValue: 1 << 1)
}

/// One UDP heartbeat, authenticated with the cluster's heartbeat key.
///
/// Wire format (integers big-endian):
///
/// | bytes | field |
/// |---|---|
/// | 4 | magic `LSHB` |
/// | 1 | version (1) |
/// | 1 | flags (``HeartbeatFlags``) |
/// | 1 + n | VM name: length, UTF-8 bytes (1...``maximumNameLength``) |
/// | 1 + n | sender node name: length, UTF-8 bytes |
/// | 8 | generation (the arbiter's, as the sender knows it) |
/// | 8 | boot id: random per sender process start |
/// | 8 | sequence: strictly increasing per boot id, from 1 |
/// | 8 | sender's CLOCK_MONOTONIC in ns when sent (informative only) |
/// | 32 | HMAC-SHA256 over every byte before it |
public struct HeartbeatPacket: Sendable, Equatable {
  /// `LSHB`.
  public static let magic: [UInt8] = Array("LSHB".utf8)
  /// The format version this build writes and reads.
  public static let version: UInt8 = 1
  /// The longest VM or node name carried.
  public static let maximumNameLength = 64
  /// The MAC's length.
  public static let macLength = 32
  /// Bytes of everything but the names' contents.
  static let fixedLength = 4 + 1 + 1 + 1 + 1 + 8 * 4 + macLength
  /// The largest well-formed packet.
  public static let maximumLength = fixedLength + 2 * maximumNameLength

  /// The flags.
  public var flags: HeartbeatFlags
  /// The VM the sender replicates.
  public var vm: String
  /// The sender's node name.
  public var sender: String
  /// The generation the sender knows.
  public var generation: UInt64
  /// The sender process's random boot id.
  public var bootID: UInt64
  /// The sequence number within `bootID`.
  public var sequence: UInt64
  /// The sender's monotonic clock when sent (ns); not comparable across hosts.
  public var sentMonotonicNanoseconds: UInt64

  /// Creates a packet.
  public init(
    flags: HeartbeatFlags = [], vm: String, sender: String, generation: UInt64, bootID: UInt64, sequence: UInt64,
    sentMonotonicNanoseconds: UInt64
  ) {
    self.flags = flags
    self.vm = vm
    self.sender = sender
    self.generation = generation
    self.bootID = bootID
    self.sequence = sequence
    self.sentMonotonicNanoseconds = sentMonotonicNanoseconds
  }

  /// The packet's bytes, MAC included. Names longer than
  /// ``maximumNameLength`` bytes are a programming error (node and VM names
  /// are validated long before).
  public func encode(key: [UInt8]) -> [UInt8] {
    let vmBytes = Array(vm.utf8)
    let senderBytes = Array(sender.utf8)
    precondition(
      (1...Self.maximumNameLength).contains(vmBytes.count)
        && (1...Self.maximumNameLength).contains(senderBytes.count),
      "heartbeat names must be 1...\(Self.maximumNameLength) bytes")
    var bytes = Self.magic
    bytes.reserveCapacity(Self.fixedLength + vmBytes.count + senderBytes.count)
    bytes.append(Self.version)
    bytes.append(flags.rawValue)
    bytes.append(UInt8(vmBytes.count))
    bytes += vmBytes
    bytes.append(UInt8(senderBytes.count))
    bytes += senderBytes
    for value in [generation, bootID, sequence, sentMonotonicNanoseconds] {
      withUnsafeBytes(of: value.bigEndian) { bytes += $0 }
    }
    bytes += Self.mac(key: key, over: bytes[...])
    return bytes
  }

  /// Decodes and authenticates `bytes`. Checks, in order: length, magic,
  /// version, layout, MAC (in constant time), then the fields' values, so
  /// a forged packet is told apart from garbage only by its MAC.
  public static func decode(_ bytes: [UInt8], key: [UInt8]) throws(HeartbeatPacketError) -> HeartbeatPacket {
    guard bytes.count >= fixedLength + 2 else {
      throw HeartbeatPacketError(.length, "\(bytes.count) bytes, at least \(fixedLength + 2) expected")
    }
    guard bytes.count <= maximumLength else {
      throw HeartbeatPacketError(.length, "\(bytes.count) bytes, at most \(maximumLength) expected")
    }
    guard Array(bytes[0..<4]) == magic else {
      throw HeartbeatPacketError(.magic, "not a Lockstep heartbeat")
    }
    guard bytes[4] == version else {
      throw HeartbeatPacketError(.version, "version \(bytes[4]), this build speaks \(version)")
    }
    let vmLength = Int(bytes[6])
    let senderLengthOffset = 7 + vmLength
    guard senderLengthOffset < bytes.count else {
      throw HeartbeatPacketError(.length, "the VM name's length \(vmLength) runs past the end")
    }
    let senderLength = Int(bytes[senderLengthOffset])
    guard bytes.count == fixedLength + vmLength + senderLength else {
      throw HeartbeatPacketError(
        .length,
        "\(bytes.count) bytes, but the names' lengths (\(vmLength), \(senderLength)) make "
          + "\(fixedLength + vmLength + senderLength)")
    }
    let macOffset = bytes.count - macLength
    let expected = mac(key: key, over: bytes[..<macOffset])
    let matches = expected.withUnsafeBytes { expectedBuffer in
      bytes[macOffset...].withUnsafeBytes { received in
        lsssl_constant_time_equal(expectedBuffer.baseAddress, received.baseAddress, macLength) == 1
      }
    }
    guard matches else {
      throw HeartbeatPacketError(.badMAC, "the HMAC does not verify (forged, or another cluster's key)")
    }
    guard (1...maximumNameLength).contains(vmLength), (1...maximumNameLength).contains(senderLength),
      let vm = String(validating: bytes[7..<senderLengthOffset], as: UTF8.self),
      let sender = String(
        validating: bytes[(senderLengthOffset + 1)..<(senderLengthOffset + 1 + senderLength)], as: UTF8.self)
    else {
      throw HeartbeatPacketError(.field, "a name is empty, longer than \(maximumNameLength) bytes or not UTF-8")
    }
    var offset = senderLengthOffset + 1 + senderLength
    func next() -> UInt64 {
      var value: UInt64 = 0
      for byte in bytes[offset..<(offset + 8)] { value = value << 8 | UInt64(byte) }
      offset += 8
      return value
    }
    let generation = next()
    let bootID = next()
    let sequence = next()
    let sent = next()
    guard sequence > 0 else { throw HeartbeatPacketError(.field, "sequence 0 (sequences start at 1)") }
    return HeartbeatPacket(
      flags: HeartbeatFlags(rawValue: bytes[5]), vm: vm, sender: sender, generation: generation, bootID: bootID,
      sequence: sequence, sentMonotonicNanoseconds: sent)
  }

  /// HMAC-SHA256 of `bytes` keyed with `key`.
  static func mac(key: [UInt8], over bytes: ArraySlice<UInt8>) -> [UInt8] {
    var digest = [UInt8](repeating: 0, count: macLength)
    let status = key.withUnsafeBytes { keyBuffer in
      bytes.withUnsafeBytes { buffer in
        digest.withUnsafeMutableBufferPointer { output in
          lsssl_hmac_sha256(
            keyBuffer.baseAddress, keyBuffer.count, buffer.baseAddress, buffer.count, output.baseAddress)
        }
      }
    }
    precondition(status == 1, "OpenSSL's HMAC-SHA256 failed")
    return digest
  }
}
