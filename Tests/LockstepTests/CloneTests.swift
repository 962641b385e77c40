import Foundation
import Synchronization
import XCTest

@testable import Lockstep

/// A machine's snapshot (memory plus the state between two exits) taken in
/// the middle of a run, installed in a freshly built machine, continues the
/// very same execution: the clone ends with the original's exits, trace
/// hash and memory hash.
final class CloneTests: XCTestCase {
  /// Replays entries and, at the entry for exit `at` or later, asks for a
  /// safepoint that copies all of memory and takes the snapshot.
  final class SnapshottingInputs: InputSource {
    let replaying: ReplayingInputs
    let control: MachineControl
    let at: UInt64
    let taken: LockedBox<(MachineSnapshot, [UInt8])?>
    var requested = false

    init(
      _ entries: [RecordingInputs.Entry], control: MachineControl, at: UInt64,
      taken: LockedBox<(MachineSnapshot, [UInt8])?>
    ) {
      replaying = ReplayingInputs(entries)
      self.control = control
      self.at = at
      self.taken = taken
    }

    func input<Value: InputValue>(_ kind: InputKind, at point: ExitPoint, live: () throws -> Value) throws -> Value {
      if !requested && point.sequence >= at {
        requested = true
        let taken = taken
        control.requestSafepoint { machine in
          do {
            let snapshot = try machine.snapshot()
            var memory: [UInt8] = []
            memory.reserveCapacity(Int(machine.pageCount * 4096))
            for page in 0..<machine.pageCount { memory += machine.copyPage(page) }
            taken.value = (snapshot, memory)
          } catch {
            XCTFail("snapshot: \(error)")
          }
        }
      }
      return try replaying.input(kind, at: point, live: live)
    }
  }

  func testSnapshotInstalledInAFreshMachineContinuesTheSameExecution() throws {
    let recorder = RecordingInputs()
    let first = try GuestHarness.run(GuestHarness.configuration("callcheck"), inputs: { recorder })
    XCTAssertEqual(first.report.stop, .exited(code: 0), first.console)
    let entries = recorder.entries
    let middle = try XCTUnwrap(entries.dropFirst(entries.count / 2).first).point.sequence

    // Run 2: the same inputs, a snapshot taken half-way.
    let taken = LockedBox<(MachineSnapshot, [UInt8])?>(nil)
    let control = try MachineControl()
    let second = try GuestHarness.run(
      GuestHarness.configuration("callcheck"),
      inputs: { SnapshottingInputs(entries, control: control, at: middle, taken: taken) }, control: control)
    XCTAssertEqual(second.report.traceDigest, first.report.traceDigest)
    let (snapshot, memory) = try XCTUnwrap(taken.value, "no snapshot was taken")
    XCTAssertGreaterThan(snapshot.exits, middle)

    // The snapshot's encoding round-trips.
    var encoded: [UInt8] = []
    snapshot.encode(into: &encoded)
    var reader = ByteReader(encoded)
    XCTAssertEqual(try MachineSnapshot.decode(from: &reader), snapshot)

    // Run 3: a fresh machine with that memory and state, and the inputs
    // from the snapshot's exit on.
    let rest = entries.filter { $0.point.sequence >= snapshot.exits }
    let result = LockedBox<MachineReport?>(nil)
    let thread = try NamedThread(name: "clone-vcpu") {
      do {
        let outcome = StandaloneVMM.runOnThisThread(
          try GuestHarness.configuration("callcheck"), ReplayingInputs(rest), CapturingOutputs(network: nil), nil,
          try MachineControl(),
          prepare: { machine in
            try machine.installMemory(memory, at: 0)
            try machine.restore(snapshot)
          })
        result.value = try outcome.get()
      } catch {
        XCTFail("\(error)")
      }
    }
    thread.join()
    let clone = try XCTUnwrap(result.value)
    XCTAssertEqual(clone.stop, .exited(code: 0))
    XCTAssertEqual(clone.exits, first.report.exits)
    XCTAssertEqual(clone.traceDigest, first.report.traceDigest)
    XCTAssertEqual(clone.memoryDigest, first.report.memoryDigest)
  }

  /// Live inputs; at the fifth input, a safepoint counts the dirty pages.
  final class CountingDirtyPages: InputSource {
    let control: MachineControl
    let counts: LockedBox<[Int]>
    var inputs = 0

    init(control: MachineControl, counts: LockedBox<[Int]>) {
      self.control = control
      self.counts = counts
    }

    func input<Value: InputValue>(_ kind: InputKind, at point: ExitPoint, live: () throws -> Value) throws -> Value {
      inputs += 1
      if inputs == 5 {
        let counts = counts
        control.requestSafepoint { machine in counts.value.append((try? machine.takeDirtyPages().count) ?? -1) }
      }
      return try live()
    }
  }

  func testDirtyPagesAreTrackedBetweenExits() throws {
    let control = try MachineControl()
    let counts = LockedBox<[Int]>([])
    let thread = try NamedThread(name: "dirty-vcpu") {
      do {
        let outcome = StandaloneVMM.runOnThisThread(
          try GuestHarness.configuration("callcheck"), CountingDirtyPages(control: control, counts: counts),
          CapturingOutputs(network: nil), nil, control,
          prepare: { machine in
            try machine.trackWrites()
            // Before the guest ran: nothing written since tracking began.
            counts.value.append(try machine.takeDirtyPages().count)
          })
        XCTAssertEqual(try outcome.get().stop, .exited(code: 0))
      } catch {
        XCTFail("\(error)")
      }
    }
    thread.join()
    XCTAssertEqual(counts.value.count, 2, "\(counts.value)")
    XCTAssertEqual(counts.value.first, 0)
    XCTAssertGreaterThan(counts.value.last ?? 0, 0, "the guest ran and wrote memory: pages must be dirty")
  }
}
