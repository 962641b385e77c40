import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// `lockstep replay`: re-runs a recorded log on this host's KVM, with the
/// guest's output discarded, and checks that the execution is the same.
public enum OfflineReplay {
  /// How a replay ended.
  public enum Verdict: Sendable, Equatable {
    /// Same exits, same final memory as the recording.
    case matched
    /// The recording was cut short; everything in it was reproduced.
    case reproducedPrefix(endsBefore: ExitPoint)
    /// The execution left the recording.
    case diverged(String)
  }

  /// The outcome of a replay.
  public struct Report: Sendable {
    public var verdict: Verdict
    public var machine: MachineReport
    public var inputsReplayed: UInt64

    /// Lines for the operator.
    public var summary: String {
      var lines = [
        "exits replayed: \(machine.exits)", "inputs replayed: \(inputsReplayed)",
        "final memory hash: \(String(machine.memoryDigest, radix: 16))",
        "exit trace hash: \(String(machine.traceDigest, radix: 16))", "guest: \(machine.stop)",
      ]
      switch verdict {
      case .matched: lines.append("result: identical to the recording")
      case .reproducedPrefix(let point):
        lines.append("result: the log ends before \(point) (recording cut short); everything recorded was reproduced")
      case .diverged(let reason): lines.append("result: DIVERGENCE: \(reason)")
      }
      return lines.joined(separator: "\n")
    }
  }

  /// Replays `logPath` with the guest at `guestPath`. `diskPath` is the
  /// replay's own disk (created with the recorded size if missing; a
  /// temporary one when nil). Throws when the log or the image cannot be
  /// used at all.
  public static func run(
    guestPath: String, logPath: String, diskPath: String?, consoleDescriptor: Int32? = nil
  ) throws -> Report {
    let header = try Replayer(reader: LogFileReader(path: logPath)).header
    let image = try PrimaryLauncher.readFile(guestPath)
    let temporaryDisk = header.diskSize > 0 && diskPath == nil ? "/tmp/lockstep-replay-\(getpid()).img" : nil
    defer { if let temporaryDisk { unlink(temporaryDisk) } }
    let disk = diskPath ?? temporaryDisk
    let configuration = MachineConfiguration(replaying: header, image: image, imagePath: guestPath, diskPath: disk)
    if let mismatch = header.mismatch(with: LogHeader(configuration: configuration, diskSize: header.diskSize)) {
      throw MachineSetupError("\(logPath) was not recorded with \(guestPath): \(mismatch)")
    }
    let control = try MachineControl()
    let outcome = Mutex<Result<Report, MachineSetupError>?>(nil)
    let thread = try NamedThread(name: "replay-vcpu") {
      let result: Result<Report, MachineSetupError>
      do {
        let replayer = try Replayer(reader: LogFileReader(path: logPath))
        let machine = try StandaloneVMM.runOnThisThread(
          configuration, replayer, DiscardingOutputs(consoleDescriptor: consoleDescriptor), nil, control
        ).get()
        result = .success(
          Report(verdict: try verdict(machine, replayer), machine: machine, inputsReplayed: replayer.replayed))
      } catch let error as MachineSetupError {
        result = .failure(error)
      } catch {
        result = .failure(MachineSetupError("\(logPath): \(error)"))
      }
      outcome.withLock { $0 = result }
    }
    thread.join()
    guard let result = outcome.withLock({ $0 }) else {
      throw MachineSetupError("the replay's vCPU thread ended without a result")
    }
    return try result.get()
  }

  static func verdict(_ machine: MachineReport, _ replayer: Replayer) throws -> Verdict {
    if let divergence = replayer.divergence { return .diverged(divergence.description) }
    if let point = replayer.exhaustedAt { return .reproducedPrefix(endsBefore: point) }
    if case .inputFailed(let reason, _) = machine.stop { return .diverged(reason) }
    if let left = try replayer.remainingInput(), case .input(let point, let kind, _) = left {
      return .diverged("the guest stopped (\(machine.stop)) but the log continues with \(kind) at \(point)")
    }
    guard case .end(let exits, let trace, let memory, let reason) = replayer.end else {
      return .diverged("the log has no end record after the last input")
    }
    if exits != machine.exits { return .diverged("the recording made \(exits) exits, the replay \(machine.exits)") }
    if trace != machine.traceDigest { return .diverged("the exit traces differ (hash \(String(trace, radix: 16)))") }
    if memory != machine.memoryDigest {
      return .diverged("the final memory differs (recorded hash \(String(memory, radix: 16)))")
    }
    if case .endOfRecording = machine.stop { return .matched }
    if reason != "\(machine.stop)" {
      return .diverged("the recording ended with '\(reason)', the replay with '\(machine.stop)'")
    }
    return .matched
  }
}
