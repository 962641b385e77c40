import Synchronization

/// A VMM's (or operator's) connection to the arbiter (docs/arbiter.md):
/// one mutual TLS stream, opened at the first request and again after a
/// failure, every request and answer bounded by ``timeout``. Thread-safe:
/// requests from several threads take turns.
public final class ArbiterClient: Sendable {
  /// The outcome of a test-and-set.
  public enum Outcome: Sendable, Equatable {
    /// This node holds the VM at the record's generation.
    case granted(ArbiterRecord)
    /// Another node won first: the current record.
    case lost(ArbiterRecord)
  }

  /// The arbiter's address.
  public let address: HostPort
  /// How long a connection, and each request's answer, may take.
  public let timeout: Duration
  /// This node's name (its certificate's).
  public var localName: String { context.localName }

  private let context: TLSContext
  private let stream = Mutex<TLSStream?>(nil)

  /// A client of the arbiter at `address` with a client `context`.
  public init(address: HostPort, context: TLSContext, timeout: Duration = .seconds(5)) {
    self.address = address
    self.context = context
    self.timeout = timeout
  }

  /// A client of the arbiter at `address` with this node's `credentials`.
  public convenience init(address: HostPort, credentials: NodeCredentials, timeout: Duration = .seconds(5))
    throws(TLSError)
  {
    self.init(address: address, context: try TLSContext(credentials: credentials, side: .client), timeout: timeout)
  }

  /// Asks the arbiter to make this node (`node`, which must be this
  /// node's certificate name) the holder of `vm` at generation
  /// `expectedGeneration + 1`.
  ///
  /// A `current` answer whose holder is `node` at exactly
  /// `expectedGeneration + 1` is this node's own earlier win whose answer
  /// was lost (a retry after a broken connection), and is returned as
  /// granted. Throws ``ArbiterError`` when the arbiter cannot be reached
  /// (``ArbiterError/Kind/unreachable``: nothing is known, try again) or
  /// refuses (``ArbiterError/Kind/refused``).
  public func testAndSet(
    vm: String, expectedGeneration: UInt64, node: String? = nil, serviceAddress: String,
    replicationAddress: String
  ) throws(ArbiterError) -> Outcome {
    let node = node ?? localName
    let answer = try request(
      .testAndSet(
        vm: vm, expectedGeneration: expectedGeneration, node: node, serviceAddress: serviceAddress,
        replicationAddress: replicationAddress))
    switch answer {
    case .granted(let record) where record.vm == vm && record.holder == node:
      return .granted(record)
    case .current(let record) where record.vm == vm:
      if record.holder == node && expectedGeneration < UInt64.max && record.generation == expectedGeneration + 1 {
        return .granted(record)
      }
      return .lost(record)
    case .error(let reason):
      throw ArbiterError(.refused, "the arbiter at \(address) refused the test-and-set of \(vm): \(reason)")
    default:
      throw ArbiterError(
        .protocolViolation, "the arbiter at \(address) answered a test-and-set of \(vm) with \(answer.name)")
    }
  }

  /// The arbiter's record of `vm` (generation 0, no holder when unknown).
  public func query(vm: String) throws(ArbiterError) -> ArbiterRecord {
    let answer = try request(.query(vm: vm))
    switch answer {
    case .current(let record) where record.vm == vm:
      return record
    case .error(let reason):
      throw ArbiterError(.refused, "the arbiter at \(address) refused the query of \(vm): \(reason)")
    default:
      throw ArbiterError(.protocolViolation, "the arbiter at \(address) answered a query of \(vm) with \(answer.name)")
    }
  }

  /// Sends `message` and returns the answer. A failure closes the
  /// connection (the next request opens a new one).
  public func request(_ message: ArbiterMessage) throws(ArbiterError) -> ArbiterMessage {
    try send(message.encoded)
  }

  /// Sends raw `bytes` (tests: malformed requests) and reads one answer.
  /// A connection kept from an earlier request may have been closed by
  /// the arbiter meanwhile (idle timeout, restart): when it fails (but not
  /// when the arbiter merely did not answer in time: then a new connection
  /// would only double the wait), the request is sent once more on a new
  /// connection. That is safe for
  /// every request: a query changes nothing, and a test-and-set that did
  /// win the first time is recognised by ``testAndSet(vm:expectedGeneration:node:serviceAddress:replicationAddress:)``.
  func send(_ bytes: [UInt8]) throws(ArbiterError) -> ArbiterMessage {
    try stream.withLock { (current) throws(ArbiterError) -> ArbiterMessage in
      if let kept = current {
        let result = Result { () throws(ArbiterError) in try exchange(bytes, on: kept) }
        switch result {
        case .success(let answer):
          return answer
        case .failure(let error):
          kept.close()
          current = nil
          guard error.kind == .unreachable else { throw error }
        }
      }
      let connection: TLSStream
      do {
        connection = try TLSStream.connect(
          host: address.host, port: address.port, context: context, timeout: timeout, expecting: .arbiter)
      } catch {
        var failure = ArbiterError(.unreachable, "cannot reach the arbiter at \(address): \(error)")
        failure.requestMaySurvive = false
        throw failure
      }
      current = connection
      let result = Result { () throws(ArbiterError) in try exchange(bytes, on: connection) }
      if case .failure = result {
        connection.close()
        current = nil
      }
      return try result.get()
    }
  }

  private func exchange(_ bytes: [UInt8], on connection: TLSStream) throws(ArbiterError) -> ArbiterMessage {
    let deadline = ClockReading.monotonicNanoseconds() + timeout.wholeNanoseconds
    do {
      try connection.write(bytes)
      var buffer: [UInt8] = []
      var chunk = [UInt8](repeating: 0, count: 4096)
      while true {
        if let (answer, size) = try ArbiterMessage.decode(buffer[...]) {
          guard size == buffer.count else {
            throw ArbiterError(.protocolViolation, "the arbiter at \(address) sent more than one answer")
          }
          return answer
        }
        guard ClockReading.monotonicNanoseconds() < deadline else {
          throw ArbiterError(.timedOut, "the arbiter at \(address) did not answer within \(timeout)")
        }
        let got = try connection.read(into: &chunk)
        guard got > 0 else {
          throw ArbiterError(.unreachable, "the arbiter at \(address) closed the connection without an answer")
        }
        buffer.append(contentsOf: chunk[..<got])
      }
    } catch let error as ArbiterError {
      throw error
    } catch let error as TLSError where error.code == .timedOut {
      throw ArbiterError(.timedOut, "the arbiter at \(address) did not answer within \(timeout): \(error)")
    } catch let error as TLSError {
      throw ArbiterError(.unreachable, "the arbiter at \(address) is unreachable: \(error)")
    } catch let error as LogDecodingError {
      throw ArbiterError(.protocolViolation, "the arbiter at \(address) sent a malformed answer: \(error.reason)")
    } catch {
      throw ArbiterError(.unreachable, "the arbiter at \(address): \(error)")
    }
  }

  /// Closes the connection (a later request opens a new one).
  public func close() {
    stream.withLock { current in
      current?.close()
      current = nil
    }
  }
}
