import Lockstep

#if canImport(Glibc)
  import Glibc
#endif

/// Arbiter requests: ``ArbiterMessage/decode(_:)`` over a connection's
/// bytes as the arbiter's server loop reads them, and the requests that
/// decode applied to a real ``ArbiterStore`` (in a scratch directory) with
/// the server's checks of names and addresses.
///
/// Input: a ``FrameStream`` (bits 1-7 of the mode byte are unused).
///
/// Checks: every message survives re-encoding; a granted record reads back
/// from its record file when the store is reopened; every answer decodes
/// on the client's side to what the server sent.
public enum ArbiterTarget: FuzzTarget {
  public static let name = "arbiter"
  nonisolated(unsafe) static var directory = ""
  /// Requests applied to the store per input (each may write a file).
  static let storeLimit = 4

  public static func setUp() -> Bool {
    directory = scratchPath("arbiter")
    atexit { ArbiterTarget.clear(removingDirectory: true) }
    return true
  }

  public static func run(_ data: [UInt8]) {
    let (_, bytes) = FrameStream.read(data)
    // The server's loop: decode what the buffer holds, else read more.
    var buffer = bytes[...]
    var requests: [ArbiterMessage] = []
    while true {
      do {
        guard let (message, size) = try ArbiterMessage.decode(buffer) else { break }
        expect(size >= LogFrame.overhead && size <= buffer.count, "message size \(size) of \(buffer.count)")
        expect(size <= ArbiterMessage.maximumBody + LogFrame.overhead, "a \(size)-byte message accepted")
        requests.append(message)
        buffer = buffer.dropFirst(size)
      } catch {
        expect(!error.reason.isEmpty, "an empty decoding error")
        break
      }
    }
    for request in requests { checkRoundTrip(request) }
    apply(requests.prefix(storeLimit))
  }

  static func checkRoundTrip(_ message: ArbiterMessage) {
    let bytes = message.encoded
    // A string of invalid UTF-8 grows when decoded (U+FFFD), so the
    // re-encoded message may exceed the limit the decoder enforces.
    guard bytes.count <= ArbiterMessage.maximumBody + LogFrame.overhead else { return }
    do {
      let again = try ArbiterMessage.decode(bytes[...])
      expect(again?.message == message, "\(message) re-encoded decodes as \(String(describing: again?.message))")
      expect(again?.size == bytes.count, "re-encoded size \(bytes.count), decoded \(String(describing: again?.size))")
    } catch {
      expect(false, "\(message) re-encoded does not decode: \(error)")
    }
  }

  /// The server's decisions, short of the TLS identity: a test-and-set
  /// names its caller, which must be a valid certificate name.
  static func apply(_ requests: ArraySlice<ArbiterMessage>) {
    guard requests.contains(where: \.isRequest) else { return }
    defer { clear(removingDirectory: false) }
    let store: ArbiterStore
    do {
      store = try ArbiterStore(directory: directory)
    } catch {
      fatalError("cannot open the scratch arbiter store \(directory): \(error)")
    }
    for request in requests {
      let answer: ArbiterMessage
      switch request {
      case .query(let vm):
        if let problem = ArbiterRecord.problem(vm: vm) {
          answer = .error(reason: problem)
        } else {
          answer = .current(store.record(vm: vm))
        }
      case .testAndSet(let vm, let expected, let node, let service, let replication):
        guard (try? NodeIdentity.validate(name: node)) != nil,
          service.utf8.count <= ArbiterRecord.maximumAddressLength,
          replication.utf8.count <= ArbiterRecord.maximumAddressLength
        else { continue }
        do {
          switch try store.testAndSet(
            vm: vm, expectedGeneration: expected, node: node, serviceAddress: service, replicationAddress: replication)
          {
          case .granted(let record):
            expect(ArbiterRecord.problem(vm: vm) == nil, "granted an invalid VM name '\(vm)'")
            expect(record.generation == expected + 1 && record.holder == node, "granted \(record)")
            checkDurable(record)
            answer = .granted(record)
          case .current(let record):
            answer = .current(record)
          }
        } catch {
          expect(ArbiterRecord.problem(vm: vm) != nil, "a valid test-and-set failed: \(error)")
          answer = .error(reason: error.message)
        }
      default:
        continue
      }
      // The client decodes the answer.
      do {
        let decoded = try ArbiterMessage.decode(answer.encoded[...])
        expect(decoded?.message == answer, "the answer \(answer) decodes as \(String(describing: decoded?.message))")
      } catch {
        expect(false, "the answer \(answer) does not decode: \(error)")
      }
    }
  }

  /// A granted record is on disk: a store opened afresh loads it.
  static func checkDurable(_ record: ArbiterRecord) {
    do {
      let reopened = try ArbiterStore(directory: directory)
      expect(reopened.record(vm: record.vm) == record, "the record file of \(record.vm) reads back differently")
    } catch {
      expect(false, "the store cannot reopen after granting \(record): \(error)")
    }
  }

  /// Removes every file of the scratch store.
  static func clear(removingDirectory: Bool) {
    guard let handle = opendir(directory) else { return }
    var names: [String] = []
    while let entry = readdir(handle) {
      let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
        String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
      }
      if name != "." && name != ".." { names.append(name) }
    }
    closedir(handle)
    for name in names { unlink(directory + "/" + name) }
    if removingDirectory { rmdir(directory) }
  }

  // MARK: Seeds

  static let record = ArbiterRecord(
    vm: "kv", generation: 4, holder: "vmm1", serviceAddress: "10.0.0.1:6379", replicationAddress: "10.0.0.1:7000")

  public static func seeds() -> [(name: String, bytes: [UInt8])] {
    let messages: [(String, ArbiterMessage)] = [
      (
        "test-and-set",
        .testAndSet(
          vm: "kv", expectedGeneration: 0, node: "vmm1", serviceAddress: "10.0.0.1:6379",
          replicationAddress: "10.0.0.1:7000")
      ),
      ("query", .query(vm: "kv")),
      ("query-bad-name", .query(vm: "../etc/passwd")),
      ("granted", .granted(record)),
      ("current", .current(record)),
      ("current-unknown", .current(.unknown(vm: "new-vm"))),
      ("error", .error(reason: "only a VMM may test-and-set")),
    ]
    var seeds: [(name: String, bytes: [UInt8])] = []
    for (name, message) in messages { seeds += FrameStream.seeds(name, message.encoded) }
    // A failover: the backup queries, then wins generation 1 and 2.
    var session = ArbiterMessage.query(vm: "kv").encoded
    session +=
      ArbiterMessage.testAndSet(
        vm: "kv", expectedGeneration: 0, node: "vmm2", serviceAddress: "[::1]:6379", replicationAddress: "[::1]:7000"
      ).encoded
    session +=
      ArbiterMessage.testAndSet(
        vm: "kv", expectedGeneration: 1, node: "vmm2", serviceAddress: "", replicationAddress: ""
      ).encoded
    session +=
      ArbiterMessage.testAndSet(
        vm: "kv", expectedGeneration: 0, node: "vmm1", serviceAddress: "", replicationAddress: ""
      ).encoded
    seeds += FrameStream.seeds("session", session)
    return seeds
  }
}
