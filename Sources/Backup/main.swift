// backup-vmm: joins a running VM as its backup and replays its log.
import ArgumentParser
import Lockstep
import Logging

@main
struct BackupCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "backup-vmm",
    abstract: "Join a running Lockstep VM as its backup: receive its log over TLS and replay it.",
    discussion: """
      Exit status: 0 when the primary's guest ended and this replay reached exactly its final state; \
      3 when the replay diverged or ended before the primary's guest did; 1 when the backup cannot start.
      """)

  @Option(help: "The VM's name (must match the primary's).")
  var vm: String

  @Option(help: "The guest image (must be the primary's, byte for byte).")
  var guest: String

  @Option(help: "The primary's replication address, HOST:PORT.")
  var primary: String

  @Option(help: "This node's certificate directory (from `lockstep certs init`), e.g. certs/node-b.")
  var tlsDir: String

  @Option(help: "The backup's own disk image (created with the primary's disk size if missing).")
  var disk: String?

  @Option(help: "Log level.")
  var logLevel: Logger.Level = .info

  mutating func validate() throws {
    guard HostPort(parsing: primary) != nil else {
      throw ValidationError("--primary '\(primary)' is not HOST:PORT (example: 127.0.0.1:7000)")
    }
  }

  func run() throws {
    let logger = ProcessLogging.bootstrap(executable: "backup-vmm", vm: vm, level: logLevel)
    do {
      let status = try BackupLauncher.run(
        vm: vm, guestPath: guest, primary: primary, tlsDirectory: tlsDir, disk: disk, logger: logger)
      throw ExitCode(status)
    } catch let error as ExitCode {
      throw error
    } catch {
      logger.error("\(error)")
      throw ExitCode(1)
    }
  }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
