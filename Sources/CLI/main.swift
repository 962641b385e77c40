// lockstep: the operator's command line.
import ArgumentParser
import Lockstep

#if canImport(Glibc)
  import Glibc
#endif

@main
struct LockstepCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "lockstep",
    abstract: "Operate Lockstep fault-tolerant virtual machines.",
    subcommands: [Replay.self])
}

/// `lockstep replay`: re-run a recorded log offline and check determinism.
struct Replay: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Re-run a recorded log on this host's KVM and check that the execution is identical.",
    discussion: """
      Exit status: 0 identical to the recording, or the recording was cut short and all of it \
      was reproduced; 3 divergence; 1 the log or the guest cannot be used.
      """)

  @Option(help: "The guest image the log was recorded with.")
  var guest: String

  @Option(help: "The log written by primary-vmm --record-file.")
  var log: String

  @Option(help: "The replay's own disk (created with the recorded size if missing; a temporary one by default).")
  var disk: String?

  @Flag(help: "Show the guest's console output (on stderr).")
  var console = false

  func run() throws {
    do {
      let report = try OfflineReplay.run(
        guestPath: guest, logPath: log, diskPath: disk, consoleDescriptor: console ? STDERR_FILENO : nil)
      print(report.summary)
      if case .diverged = report.verdict { throw ExitCode(3) }
    } catch let error as ExitCode {
      throw error
    } catch {
      printError("lockstep replay: error: \(error)")
      throw ExitCode(1)
    }
  }
}

func printError(_ text: String) {
  var line = text + "\n"
  line.withUTF8 { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) }
}
