/// What the arbiter knows about one VM (docs/arbiter.md): which generation
/// of the VM is current and which node holds it, with the addresses where
/// that node serves clients and accepts a backup.
///
/// A VM the arbiter never heard of has generation 0 and no holder. Every
/// granted test-and-set raises the generation by one, so a generation
/// names one primary's reign exactly.
public struct ArbiterRecord: Sendable, Equatable, CustomStringConvertible {
  /// The VM's name.
  public var vm: String
  /// The current generation (0: never granted).
  public var generation: UInt64
  /// The node (its certificate's name) that won this generation; nil when
  /// none did.
  public var holder: String?
  /// Where the holder serves the VM's clients, `HOST:PORT` (empty when
  /// unknown).
  public var serviceAddress: String
  /// Where the holder accepts a backup's logging channel, `HOST:PORT`
  /// (empty when unknown).
  public var replicationAddress: String

  /// The longest VM name accepted.
  public static let maximumNameLength = 64
  /// The longest address accepted.
  public static let maximumAddressLength = 512

  /// Creates a record.
  public init(vm: String, generation: UInt64, holder: String?, serviceAddress: String, replicationAddress: String) {
    self.vm = vm
    self.generation = generation
    self.holder = holder
    self.serviceAddress = serviceAddress
    self.replicationAddress = replicationAddress
  }

  /// The record of a VM nothing was ever decided for.
  public static func unknown(vm: String) -> ArbiterRecord {
    ArbiterRecord(vm: vm, generation: 0, holder: nil, serviceAddress: "", replicationAddress: "")
  }

  public var description: String {
    "\(vm) generation \(generation) held by \(holder ?? "nobody")"
      + (serviceAddress.isEmpty ? "" : ", serving on \(serviceAddress)")
      + (replicationAddress.isEmpty ? "" : ", replicating on \(replicationAddress)")
  }

  /// Why `vm` cannot name a VM at the arbiter (its records are files named
  /// after it), or nil when it can: 1 to 64 characters from
  /// `A-Z a-z 0-9 . _ -`, not starting with a dot.
  public static func problem(vm: String) -> String? {
    let allowed = vm.utf8.allSatisfy { byte in
      (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
        || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: ".")
        || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
    }
    guard allowed, (1...maximumNameLength).contains(vm.utf8.count), !vm.hasPrefix(".") else {
      return "invalid VM name '\(vm)': use 1 to \(maximumNameLength) characters from A-Z a-z 0-9 . _ - "
        + "(not starting with a dot)"
    }
    return nil
  }

  /// Appends the record's encoding: vm, generation, holder (a u8 flag and,
  /// when 1, the name), service and replication addresses.
  func encode(into body: inout [UInt8]) {
    body.appendString(vm)
    body.append(littleEndian: generation)
    if let holder {
      body.append(1)
      body.appendString(holder)
    } else {
      body.append(0)
    }
    body.appendString(serviceAddress)
    body.appendString(replicationAddress)
  }

  /// Reads a record encoded by ``encode(into:)``.
  static func decode(from body: inout ByteReader, _ field: String) throws(LogDecodingError) -> ArbiterRecord {
    let vm = try body.readString("\(field).vm")
    let generation = try body.read(UInt64.self, "\(field).generation")
    let flag = try body.read(UInt8.self, "\(field).holder.flag")
    let holder: String?
    switch flag {
    case 0: holder = nil
    case 1: holder = try body.readString("\(field).holder")
    default: throw LogDecodingError("\(field).holder.flag: \(flag) is neither 0 nor 1")
    }
    return ArbiterRecord(
      vm: vm, generation: generation, holder: holder, serviceAddress: try body.readString("\(field).service"),
      replicationAddress: try body.readString("\(field).replication"))
  }
}
