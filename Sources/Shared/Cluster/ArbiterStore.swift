import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// The arbiter's durable records, one file per VM: `DIR/<vm>.record`
/// holding one frame (type ``recordFrameType``) with the record.
///
/// A decision is written to a temporary file, fsync'd, renamed over the
/// record file and the directory fsync'd before ``testAndSet(vm:expectedGeneration:node:serviceAddress:replicationAddress:)``
/// returns it, so once anyone has been told of a decision, a crash of the
/// arbiter (or of its host) cannot undo it. One lock covers check, write
/// and publish, so test-and-sets of any VMs are atomic and serialized.
public final class ArbiterStore: Sendable {
  /// The outcome of a test-and-set.
  public enum Decision: Sendable, Equatable {
    /// The caller won: this record (generation + 1, the caller holding it)
    /// is on disk.
    case granted(ArbiterRecord)
    /// The caller lost (its expected generation is not the current one):
    /// the current record, unchanged.
    case current(ArbiterRecord)
  }

  /// The frame type of a record file.
  public static let recordFrameType: UInt8 = 48
  /// The suffix of record files.
  public static let recordSuffix = ".record"
  /// The suffix of a record file being written (removed at start).
  public static let temporarySuffix = ".tmp"

  /// The state directory.
  public let directory: String

  private let records: Mutex<[String: ArbiterRecord]>

  /// Opens the state directory (created, mode 0700, if missing) and loads
  /// every record in it. Throws ``ArbiterError/Kind/corruptRecord`` naming
  /// the first record file that holds no valid record, and
  /// ``ArbiterError/Kind/storage`` when the directory cannot be read.
  public init(directory: String) throws(ArbiterError) {
    self.directory = directory
    var status = stat()
    if stat(directory, &status) != 0 {
      guard errno == ENOENT, mkdir(directory, 0o700) == 0 || errno == EEXIST else {
        throw ArbiterError(.storage, "cannot create the state directory \(directory): \(Self.reason(errno))")
      }
    } else if status.st_mode & S_IFMT != S_IFDIR {
      throw ArbiterError(.storage, "the state directory \(directory) is not a directory")
    }
    var loaded: [String: ArbiterRecord] = [:]
    for name in try Self.entries(of: directory) {
      let path = Self.join(directory, name)
      if name.hasSuffix(Self.recordSuffix + Self.temporarySuffix) {
        // A write that never reached its rename: nobody was answered.
        unlink(path)
        continue
      }
      guard name.hasSuffix(Self.recordSuffix), !name.hasPrefix(".") else { continue }
      let vm = String(name.dropLast(Self.recordSuffix.count))
      let record = try Self.load(path, vm: vm)
      loaded[vm] = record
    }
    records = Mutex(loaded)
  }

  /// Every record, by VM name.
  public var all: [String: ArbiterRecord] { records.withLock { $0 } }

  /// The record of `vm` (generation 0 and no holder when unknown).
  public func record(vm: String) -> ArbiterRecord {
    records.withLock { $0[vm] } ?? .unknown(vm: vm)
  }

  /// Grants `vm` to `node` at generation `expectedGeneration + 1` if its
  /// current generation is `expectedGeneration`, making the new record
  /// durable first; otherwise returns the current record. Throws
  /// ``ArbiterError/Kind/storage`` when the record cannot be made durable
  /// (then nothing was granted, unless the rename had happened: then the
  /// new record stands, as it may have reached the disk).
  public func testAndSet(
    vm: String, expectedGeneration: UInt64, node: String, serviceAddress: String, replicationAddress: String
  ) throws(ArbiterError) -> Decision {
    if let problem = ArbiterRecord.problem(vm: vm) { throw ArbiterError(.refused, problem) }
    return try records.withLock { (records) throws(ArbiterError) -> Decision in
      let current = records[vm] ?? .unknown(vm: vm)
      guard current.generation == expectedGeneration, expectedGeneration < UInt64.max else {
        return .current(current)
      }
      let next = ArbiterRecord(
        vm: vm, generation: expectedGeneration + 1, holder: node, serviceAddress: serviceAddress,
        replicationAddress: replicationAddress)
      try write(next) { records[vm] = next }
      return .granted(next)
    }
  }

  /// Writes `record` durably; `renamed` runs as soon as the new file is in
  /// place (before the directory sync), so memory follows the disk.
  private func write(_ record: ArbiterRecord, renamed: () -> Void) throws(ArbiterError) {
    let path = Self.join(directory, record.vm + Self.recordSuffix)
    let temporary = path + Self.temporarySuffix
    var body: [UInt8] = []
    record.encode(into: &body)
    var bytes: [UInt8] = []
    LogFrame.frame(type: Self.recordFrameType, body: body, into: &bytes)
    do {
      let file = try FileDescriptorOwner(opening: temporary, flags: O_WRONLY | O_CREAT | O_TRUNC, mode: 0o600)
      let wrote = bytes.withUnsafeBytes { writeFully(file.rawValue, $0) }
      guard wrote else { throw SystemError("write(\(temporary))", errno: errno) }
      _ = try systemCall("fsync(\(temporary))") { fsync(file.rawValue) }
    } catch {
      unlink(temporary)
      throw ArbiterError(.storage, "cannot record \(record): \(error)")
    }
    guard rename(temporary, path) == 0 else {
      let reason = Self.reason(errno)
      unlink(temporary)
      throw ArbiterError(.storage, "cannot record \(record): rename(\(temporary), \(path)) failed: \(reason)")
    }
    renamed()
    do {
      let directoryFile = try FileDescriptorOwner(opening: directory, flags: O_RDONLY | O_DIRECTORY)
      _ = try systemCall("fsync(\(directory))") { fsync(directoryFile.rawValue) }
    } catch {
      throw ArbiterError(.storage, "cannot make the record \(record) durable: \(error)")
    }
  }

  /// Reads and checks the record file `path` of `vm`.
  static func load(_ path: String, vm: String) throws(ArbiterError) -> ArbiterRecord {
    func corrupt(_ why: String) -> ArbiterError {
      ArbiterError(
        .corruptRecord,
        "the record file \(path) is corrupt (\(why)); the arbiter will not start without every decision it made: "
          + "restore the file from a copy or, knowing the VM's true generation, remove it by hand")
    }
    let contents: [UInt8]?
    do {
      contents = try readAll(path, limit: ArbiterMessage.maximumBody + LogFrame.overhead)
    } catch {
      throw ArbiterError(.storage, "cannot read the record file \(path): \(error)")
    }
    guard let bytes = contents else { throw corrupt("longer than any record") }
    let unframed: (type: UInt8, body: ByteReader, size: Int)?
    do {
      unframed = try LogFrame.unframe(bytes[...])
    } catch {
      throw corrupt(error.reason)
    }
    guard let (type, body, size) = unframed else { throw corrupt("truncated after \(bytes.count) bytes") }
    guard size == bytes.count else { throw corrupt("\(bytes.count - size) bytes after the record") }
    guard type == recordFrameType else { throw corrupt("frame type \(type), not a record") }
    var reader = body
    let record: ArbiterRecord
    do {
      record = try ArbiterRecord.decode(from: &reader, "record")
      try reader.expectEnd("record")
    } catch {
      throw corrupt(error.reason)
    }
    guard record.vm == vm else { throw corrupt("it holds the record of VM '\(record.vm)'") }
    return record
  }

  /// The whole file at `path`, or nil when it is longer than `limit`.
  static func readAll(_ path: String, limit: Int) throws(SystemError) -> [UInt8]? {
    let file = try FileDescriptorOwner(opening: path, flags: O_RDONLY)
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
      let got = try chunk.withUnsafeMutableBytes { raw in
        Result { () throws(SystemError) in
          try systemCall("read(\(path))") { read(file.rawValue, raw.baseAddress, raw.count) }
        }
      }.get()
      if got == 0 { return bytes }
      bytes.append(contentsOf: chunk[..<got])
      if bytes.count > limit { return nil }
    }
  }

  /// The names in `directory`.
  static func entries(of directory: String) throws(ArbiterError) -> [String] {
    guard let handle = opendir(directory) else {
      throw ArbiterError(.storage, "cannot read the state directory \(directory): \(reason(errno))")
    }
    defer { closedir(handle) }
    var names: [String] = []
    while let entry = readdir(handle) {
      let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
        String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
      }
      if name != "." && name != ".." { names.append(name) }
    }
    return names.sorted()
  }

  static func join(_ directory: String, _ name: String) -> String {
    directory.hasSuffix("/") ? directory + name : directory + "/" + name
  }

  static func reason(_ code: Int32) -> String { CredentialFiles.reason(code) }
}
