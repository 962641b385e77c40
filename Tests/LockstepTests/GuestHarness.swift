import Foundation
import Synchronization
import XCTest

@testable import Lockstep

/// Runs the SDK's guests in-process on real KVM, capturing their console.
enum GuestHarness {
  /// The repository root (this file is Tests/LockstepTests/GuestHarness.swift).
  static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

  /// The bytes of Guest/build/NAME.elf; fails the test if it was not built.
  static func image(_ name: String) throws -> [UInt8] {
    let url = root.appendingPathComponent("Guest/build/\(name).elf")
    guard let data = FileManager.default.contents(atPath: url.path) else {
      throw XCTSkip("missing \(url.path): build the guests first (make build or make -C Guest)")
    }
    return [UInt8](data)
  }

  /// A configuration for guest `name`.
  static func configuration(
    _ name: String, arguments: String = "", memory: UInt64 = 64 << 20, disk: String? = nil,
    diskSize: UInt64? = nil, verifiesRegisters: Bool = false
  ) throws -> MachineConfiguration {
    MachineConfiguration(
      name: "test-\(name)", image: try image(name), imagePath: "Guest/build/\(name).elf", memorySize: memory,
      arguments: arguments, diskPath: disk, diskCreateSize: diskSize, keepsExitTrace: true,
      verifiesRegisters: verifiesRegisters)
  }

  /// Runs a machine on a fresh thread (as the VMM does) and returns its
  /// report and console text.
  static func run(
    _ configuration: MachineConfiguration,
    inputs: @escaping @Sendable () throws -> any InputSource = { LiveInputs() },
    network: NetworkService? = nil, control: MachineControl? = nil
  ) throws -> (report: MachineReport, console: String) {
    let control = try control ?? MachineControl()
    let result = Synchronization.Mutex<(Result<MachineReport, MachineSetupError>, String)?>(nil)
    let thread = try NamedThread(name: "test-vcpu") {
      let outputs = CapturingOutputs(network: network)
      let outcome: Result<MachineReport, MachineSetupError>
      do {
        outcome = StandaloneVMM.runOnThisThread(configuration, try inputs(), outputs, network, control)
      } catch {
        outcome = .failure(MachineSetupError("input source: \(error)"))
      }
      result.withLock { $0 = (outcome, outputs.consoleText) }
    }
    thread.join()
    guard let (outcome, console) = result.withLock({ $0 }) else {
      throw MachineSetupError("the vCPU thread produced no result")
    }
    return (try outcome.get(), console)
  }

  /// A temporary file path that does not exist yet.
  static func temporaryPath(_ name: String) -> String {
    let path = NSTemporaryDirectory() + "lockstep-test-\(getpid())-\(UUID().uuidString.prefix(8))-\(name)"
    try? FileManager.default.removeItem(atPath: path)
    return path
  }
}

/// Keeps console output in memory; network output goes to a live network.
final class CapturingOutputs: OutputSink {
  private(set) var console: [UInt8] = []
  let network: (any NetworkPort)?

  init(network: (any NetworkPort)?) {
    self.network = network
  }

  var consoleText: String { String(decoding: console, as: UTF8.self) }

  func console(_ bytes: UnsafeRawBufferPointer, at point: ExitPoint) {
    console.append(contentsOf: bytes)
  }

  func send(_ bytes: UnsafeRawBufferPointer, connection: UInt32, at point: ExitPoint) {
    network?.send(bytes, connection: connection)
  }

  func close(connection: UInt32, at point: ExitPoint) {
    network?.close(connection: connection)
  }

  func flush(at point: ExitPoint) {
    network?.flush()
  }
}

/// Records every input it obtains live, in order.
final class RecordingInputs: InputSource, Sendable {
  struct Entry: Sendable {
    var kind: InputKind
    var point: ExitPoint
    var encoded: [UInt8]
  }
  private let recorded = Synchronization.Mutex<[Entry]>([])

  var entries: [Entry] { recorded.withLock { $0 } }

  func input<Value: InputValue>(_ kind: InputKind, at point: ExitPoint, live: () throws -> Value) throws -> Value {
    let value = try live()
    var encoded: [UInt8] = []
    value.encode(into: &encoded)
    recorded.withLock { $0.append(Entry(kind: kind, point: point, encoded: encoded)) }
    return value
  }
}

/// Replays recorded inputs, failing on any mismatch of kind or exit point.
final class ReplayingInputs: InputSource {
  private var entries: [RecordingInputs.Entry]
  private var next = 0

  init(_ entries: [RecordingInputs.Entry]) {
    self.entries = entries
  }

  struct Divergence: Error, CustomStringConvertible {
    var description: String
  }

  func input<Value: InputValue>(_ kind: InputKind, at point: ExitPoint, live: () throws -> Value) throws -> Value {
    guard next < entries.count else { throw Divergence(description: "log ended before \(point)") }
    let entry = entries[next]
    next += 1
    guard entry.kind == kind, entry.point == point else {
      throw Divergence(description: "expected \(entry.kind) at \(entry.point), guest asked \(kind) at \(point)")
    }
    var reader = ByteReader(entry.encoded)
    let value = try Value.decode(from: &reader)
    try reader.expectEnd("\(kind)")
    return value
  }
}
