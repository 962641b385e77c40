// backup-vmm: joins a running VM as its backup and replays its log.
import ArgumentParser
import CommandLineOptions
import Lockstep
import Logging

@main
struct BackupCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "backup-vmm",
    abstract: "Join a running Lockstep VM as its backup: receive its log over TLS and replay it.",
    discussion: """
      Exit status: 0 when the primary's guest ended and this replay reached exactly its final state; \
      3 when the replay diverged or ended before the primary's guest did; 4 when the arbiter gave \
      the VM to another node and this one halted; after going live, the guest's own status; 1 when \
      the backup cannot start.
      """)

  /// Runs with the `LOCKSTEP_…` environment merged into the command line.
  static func main() { mainWithEnvironment() }

  @Option(help: "The VM's name (must match the primary's).")
  var vm: String

  @Option(help: "The guest image (must be the primary's, byte for byte).")
  var guest: String

  @Option(help: "The primary's replication address, HOST:PORT (looked up at the arbiter when omitted).")
  var primary: String?

  @Option(help: "This node's certificate directory (from `lockstep certs init`), e.g. certs/node-b.")
  var tlsDir: String

  @Option(help: "The backup's own disk image (created with the primary's disk size if missing).")
  var disk: String?

  @Option(help: "The service address to serve clients on after going live, HOST:PORT (the primary's --serve).")
  var serve: String?

  @Option(help: "Where this node accepts a backup once it is the primary, HOST:PORT (recorded at the arbiter).")
  var replication: String?

  @OptionGroup(title: "Failover")
  var failover: FailoverOptions

  @OptionGroup(title: "Observability")
  var observability: MetricsOptions

  @Option(help: "Log level.")
  var logLevel: Logger.Level = .info

  mutating func validate() throws {
    if let primary, HostPort(parsing: primary) == nil {
      throw ValidationError("--primary '\(primary)' is not HOST:PORT (example: 127.0.0.1:7000)")
    }
    if primary == nil && failover.arbiter == nil {
      throw ValidationError("give --primary HOST:PORT, or --arbiter HOST:PORT to look the primary up")
    }
    if let serve, HostPort(parsing: serve) == nil {
      throw ValidationError("--serve '\(serve)' is not HOST:PORT (example: 127.0.0.1:6380)")
    }
    if let replication, HostPort(parsing: replication) == nil {
      throw ValidationError("--replication '\(replication)' is not HOST:PORT (example: 127.0.0.1:7001)")
    }
    if failover.arbiter != nil && replication == nil {
      throw ValidationError(
        "--arbiter needs --replication HOST:PORT: where this node answers operators (and, later, backups) once live")
    }
    if serve != nil && failover.arbiter == nil {
      throw ValidationError("--serve is where this backup serves after going live, which needs --arbiter")
    }
  }

  func run() throws {
    let logger = ProcessLogging.bootstrap(executable: "backup-vmm", vm: vm, level: logLevel)
    do {
      let (metrics, endpoint) = try observability.startNode(logger: logger)
      defer { endpoint?.close() }
      let status = try BackupLauncher.run(
        vm: vm, guestPath: guest, primary: primary, tlsDirectory: tlsDir, disk: disk, serve: serve,
        replication: replication, failover: try failover.settings, metrics: metrics, logger: logger)
      throw ExitCode(status)
    } catch let error as ExitCode {
      throw error
    } catch {
      logger.error("\(error)")
      throw ExitCode(1)
    }
  }
}
