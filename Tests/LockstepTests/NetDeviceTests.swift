import Foundation
import Synchronization
import XCTest

@testable import Lockstep

/// The network device end to end: real sockets, the reactor, the rings,
/// the guest's echo server.
final class NetDeviceTests: XCTestCase {
  /// Runs the callcheck guest's echo server with `inputs`, drives it with
  /// a scripted client conversation, and returns the run.
  static func echoSession(
    inputs: @escaping @Sendable () throws -> any InputSource, disk: String, verifiesRegisters: Bool = false
  ) throws -> (report: MachineReport, console: String, clientErrors: [String]) {
    let control = try MachineControl()
    let network = try NetworkService(host: "127.0.0.1", port: 0, machineWakeup: control.wakeup)
    try network.start()
    defer { network.stop() }
    let port = network.port
    let errors = Synchronization.Mutex<[String]>([])
    let client = try NamedThread(name: "test-client") {
      do {
        try conversation(port: port)
      } catch {
        errors.withLock { $0.append("\(error)") }
        control.requestStop()
      }
    }
    let run = try GuestHarness.run(
      GuestHarness.configuration(
        "callcheck", arguments: "net", disk: disk, diskSize: 1 << 20, verifiesRegisters: verifiesRegisters),
      inputs: inputs,
      network: network, control: control)
    client.join()
    return (run.report, run.console, errors.withLock { $0 })
  }

  static func conversation(port: Int) throws {
    let first = try TestClient(port: port)
    try first.send("hello\n")
    guard try first.receive(count: 6) == Array("hello\n".utf8) else {
      throw TestClient.ClientError(description: "bad echo")
    }
    // Larger than the rings: split into messages, wrapped around the rings.
    let second = try TestClient(port: port)
    let big = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
    try second.send(big)
    guard try second.receive(count: big.count) == big else { throw TestClient.ClientError(description: "bad big echo") }
    try first.send("quit\n")
    guard try first.receive(count: 5) == Array("quit\n".utf8) else {
      throw TestClient.ClientError(description: "no quit echo")
    }
    guard first.receivesEOF() else { throw TestClient.ClientError(description: "quit did not close") }
    let last = try TestClient(port: port)
    try last.send("shutdown\n")
  }

  func testEchoThroughTheRings() throws {
    let disk = GuestHarness.temporaryPath("echo.img")
    defer { unlink(disk) }
    let session = try Self.echoSession(inputs: { LiveInputs() }, disk: disk)
    XCTAssertEqual(session.clientErrors, [])
    XCTAssertEqual(session.report.stop, .exited(code: 0), session.console)
    XCTAssertGreaterThan(session.report.rxMessages, 5)
    XCTAssertGreaterThan(session.report.txMessages, 5)
  }

  func testStopRequestEndsABlockingWait() throws {
    let control = try MachineControl()
    let network = try NetworkService(host: "127.0.0.1", port: 0, machineWakeup: control.wakeup)
    try network.start()
    defer { network.stop() }
    let stopper = try NamedThread(name: "test-stopper") {
      usleep(300_000)
      control.requestStop()
    }
    let run = try GuestHarness.run(
      GuestHarness.configuration("callcheck", arguments: "net"), network: network, control: control)
    stopper.join()
    XCTAssertEqual(run.report.stop, .stopped)
  }
}
