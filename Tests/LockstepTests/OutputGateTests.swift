import Synchronization
import XCTest

@testable import Lockstep

/// The Output Rule's gate: output is held until the log that produced it
/// is acknowledged, and released in order.
final class OutputGateTests: XCTestCase {
  func testOutputIsReleasedOnlyWhenItsPositionIsAcknowledged() throws {
    var fds: [Int32] = [0, 0]
    XCTAssertEqual(pipe(&fds), 0)
    defer {
      close(fds[0])
      close(fds[1])
    }
    _ = fcntl(fds[0], F_SETFL, O_NONBLOCK)
    let announced = Synchronization.Mutex<[UInt64]>([])
    let gate = try OutputGate(network: nil, consoleDescriptor: fds[1]) { position in
      announced.withLock { $0.append(position) }
    }
    func emit(_ text: String, at sequence: UInt64) {
      Array(text.utf8).withUnsafeBytes {
        gate.console($0, at: ExitPoint(sequence: sequence, instructionPointer: 0x100000))
      }
      gate.flush(at: ExitPoint(sequence: sequence, instructionPointer: 0x100000))
    }
    func drain() -> String {
      var buffer = [UInt8](repeating: 0, count: 4096)
      let got = read(fds[0], &buffer, buffer.count)
      return got > 0 ? String(decoding: buffer[..<got], as: UTF8.self) : ""
    }
    emit("a", at: 3)
    emit("b", at: 5)
    emit("c", at: 9)
    XCTAssertEqual(announced.withLock { $0 }, [3, 5, 9])
    XCTAssertEqual(gate.held.count, 3)
    XCTAssertEqual(drain(), "", "output escaped before any acknowledgement")
    gate.acknowledge(upTo: 2)
    XCTAssertEqual(drain(), "")
    gate.acknowledge(upTo: 5)
    XCTAssertEqual(drain(), "ab")
    gate.acknowledge(upTo: 4)
    XCTAssertEqual(drain(), "", "an older acknowledgement released something")
    gate.acknowledge(upTo: 100)
    XCTAssertEqual(drain(), "c")
    XCTAssertEqual(gate.held.bytes, 0)
    gate.shut()
    emit("d", at: 101)
    gate.acknowledge(upTo: 200)
    XCTAssertEqual(drain(), "", "a shut gate released output")
  }

  func testFullGateBlocksTheProducerUntilAcknowledged() throws {
    let gate = try OutputGate(network: nil, consoleDescriptor: -1, limit: 10) { _ in }
    let big = [UInt8](repeating: 1, count: 8)
    big.withUnsafeBytes { gate.console($0, at: ExitPoint(sequence: 1, instructionPointer: 0)) }
    big.withUnsafeBytes { gate.console($0, at: ExitPoint(sequence: 2, instructionPointer: 0)) }
    let finished = Atomic<Bool>(false)
    let producer = try NamedThread(name: "producer") {
      big.withUnsafeBytes { gate.console($0, at: ExitPoint(sequence: 3, instructionPointer: 0)) }
      finished.store(true, ordering: .releasing)
    }
    usleep(100_000)
    XCTAssertFalse(finished.load(ordering: .acquiring), "the producer did not block on a full gate")
    gate.acknowledge(upTo: 2)
    producer.join()
    XCTAssertTrue(finished.load(ordering: .acquiring))
    XCTAssertEqual(gate.held.count, 1)
  }
}
