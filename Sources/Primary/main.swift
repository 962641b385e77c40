// primary-vmm: boots a guest under KVM and serves its clients.
import ArgumentParser
import CommandLineOptions
import Lockstep
import Logging

#if canImport(Glibc)
  import Glibc
#endif

@main
struct PrimaryVMM: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "primary-vmm",
    abstract: "Run a Lockstep virtual machine under KVM and serve its clients.",
    discussion: """
      Exit status: the guest's exit code when it exits by itself; 0 after `lockstep failover` \
      handed the VM over; 4 when the arbiter gave the VM to another node and this one halted; \
      70 when the guest faults, aborts or breaks the ABI; 71 when KVM fails; 1 when the VM \
      cannot be started.
      """)

  /// Runs with the `LOCKSTEP_…` environment merged into the command line.
  static func main() { mainWithEnvironment() }

  @Option(help: "The VM's name.")
  var vm: String

  @Option(help: "The guest image (an ELF64 built with the Lockstep guest SDK).")
  var guest: String

  @Option(help: "The service address clients connect to, HOST:PORT.")
  var serve: String?

  @Option(help: "Guest RAM, e.g. 64M or 1G (a multiple of 2M).")
  var memory: String = "64M"

  @Option(help: "The VM's disk image.")
  var disk: String?

  @Option(help: "Create the disk with this size if it is missing, e.g. 16M; an existing disk must match.")
  var diskSize: String?

  @Option(help: "An argument string passed to the guest in its boot info.")
  var guestArgs: String = ""

  @Option(help: "Record every nondeterministic input to this log file (replay it with `lockstep replay`).")
  var recordFile: String?

  @Flag(help: "Record a hash of the registers with every input, so a replay stops at the first exit that differs.")
  var verifyRegisters = false

  @Option(help: "The KVM device.")
  var kvmDevice: String = "/dev/kvm"

  @Flag(help: "Run without a backup: fault tolerance OFF.")
  var standalone = false

  @Option(help: "Listen for the backup's logging channel on HOST:PORT (with --tls-dir).")
  var replication: String?

  @Option(help: "This node's certificate directory (from `lockstep certs init`), e.g. certs/node-a.")
  var tlsDir: String?

  @Option(help: "Slow the guest down when the backup's execution lags more than this many milliseconds.")
  var maxLag: Int = 100

  @OptionGroup(title: "Failover")
  var failover: FailoverOptions

  @OptionGroup(title: "Observability")
  var observability: MetricsOptions

  @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
  var logLevel: Logger.Level = .info

  mutating func validate() throws {
    guard standalone != (replication != nil) else {
      throw ValidationError(
        standalone
          ? "--standalone and --replication exclude each other"
          : "give --replication HOST:PORT --tls-dir DIR to run with a backup, or --standalone to run without one")
    }
    if let replication, HostPort(parsing: replication) == nil {
      throw ValidationError("--replication '\(replication)' is not HOST:PORT (example: 127.0.0.1:7000)")
    }
    if replication != nil && tlsDir == nil {
      throw ValidationError("--replication needs --tls-dir DIR (make one with `lockstep certs init`)")
    }
    guard maxLag > 0 else { throw ValidationError("--max-lag must be a positive number of milliseconds") }
    guard ByteCount.parse(memory) != nil else {
      throw ValidationError("--memory '\(memory)' is not a size (examples: 64M, 512M, 1G)")
    }
    if let diskSize, ByteCount.parse(diskSize) == nil {
      throw ValidationError("--disk-size '\(diskSize)' is not a size (examples: 16M, 1G)")
    }
    if diskSize != nil && disk == nil {
      throw ValidationError("--disk-size needs --disk PATH")
    }
    if failover.arbiter != nil && replication == nil {
      throw ValidationError("--arbiter needs --replication: failover is between a primary and its backup")
    }
    if let serve, HostPort(parsing: serve) == nil {
      throw ValidationError("--serve '\(serve)' is not HOST:PORT (example: 127.0.0.1:6380)")
    }
  }

  func run() throws {
    let logger = ProcessLogging.bootstrap(executable: "primary-vmm", vm: vm, level: logLevel)
    do {
      let (metrics, endpoint) = try observability.startNode(logger: logger)
      defer { endpoint?.close() }
      if let replication, let tlsDir {
        throw ExitCode(
          try PrimaryLauncher.runReplicated(
            vm: vm, guestPath: guest, memory: memory, serve: serve, disk: disk, diskSize: diskSize,
            guestArgs: guestArgs, replication: replication, tlsDirectory: tlsDir, maxLagMilliseconds: maxLag,
            verifyRegisters: verifyRegisters, failover: try failover.settings, metrics: metrics, logger: logger))
      }
      let report = try PrimaryLauncher.runStandalone(
        vm: vm, guestPath: guest, memory: memory, serve: serve, disk: disk, diskSize: diskSize,
        guestArgs: guestArgs, kvmDevice: kvmDevice, recordFile: recordFile, verifyRegisters: verifyRegisters,
        metrics: metrics, logger: logger)
      throw ExitCode(report.exitStatus)
    } catch let error as ExitCode {
      throw error
    } catch {
      logger.error("\(error)")
      throw ExitCode(1)
    }
  }
}
