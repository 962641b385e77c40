// lockstep: the operator's command line.
import ArgumentParser
import CommandLineOptions
import Lockstep

#if canImport(Glibc)
  import Glibc
#endif

@main
struct LockstepCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "lockstep",
    abstract: "Operate Lockstep fault-tolerant virtual machines.",
    subcommands: [Status.self, PowerOff.self, Failover.self, Certs.self, Replay.self])

  /// Runs with the `LOCKSTEP_…` environment merged into the command line.
  static func main() { mainWithEnvironment() }
}

/// Where the cluster is: the flags every cluster command takes.
struct ClusterOptions: ParsableArguments {
  @Option(help: "The arbiter, HOST:PORT.")
  var arbiter: String

  @Option(help: "The VM's name.")
  var vm: String

  @Option(help: "An operator's (or a node's) certificate directory, e.g. certs/operator.")
  var tlsDir: String

  func validate() throws {
    guard HostPort(parsing: arbiter) != nil else {
      throw ValidationError("--arbiter '\(arbiter)' is not HOST:PORT (example: 127.0.0.1:7400)")
    }
  }

  var address: HostPort { HostPort(parsing: arbiter) ?? HostPort(host: arbiter, port: 0) }

  func credentials() throws -> NodeCredentials { try NodeCredentials(loadingFrom: tlsDir) }
}

/// `lockstep status`.
struct Status: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Show a VM's primary, backup, generation, protection, lag and log traffic.",
    discussion: "Exit status: 0 when the VM runs protected, 2 when it runs unprotected or is not running, 1 on error.")

  @OptionGroup var cluster: ClusterOptions

  @Flag(help: "Print JSON (vm, generation, primary, backup, protected, lag_ms, ...).")
  var json = false

  func run() throws {
    do {
      let status = try ClusterStatus.fetch(vm: cluster.vm, arbiter: cluster.address, credentials: cluster.credentials())
      print(json ? status.json : status.text)
      if status.node?.protected != true { throw ExitCode(2) }
    } catch let error as ExitCode {
      throw error
    } catch {
      printError("lockstep status: error: \(error)")
      throw ExitCode(1)
    }
  }
}

/// `lockstep poweroff`.
struct PowerOff: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "poweroff",
    abstract: "Stop a VM on its primary and its backup, with no failover.")

  @OptionGroup var cluster: ClusterOptions

  func run() throws {
    do {
      let node = try ClusterStatus.command(
        .powerOff, vm: cluster.vm, arbiter: cluster.address, credentials: cluster.credentials())
      print(
        "powering off VM \(cluster.vm) on \(node.node)\(node.backup.isEmpty ? "" : " and its backup \(node.backup)")")
    } catch {
      printError("lockstep poweroff: error: \(error)")
      throw ExitCode(1)
    }
  }
}

/// `lockstep failover`.
struct Failover: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Hand a VM over from its primary to its backup, which goes live (the primary stops).")

  @OptionGroup var cluster: ClusterOptions

  func run() throws {
    do {
      let node = try ClusterStatus.command(
        .failover, vm: cluster.vm, arbiter: cluster.address, credentials: cluster.credentials())
      print("VM \(cluster.vm): \(node.node) hands over to \(node.backup)")
    } catch {
      printError("lockstep failover: error: \(error)")
      throw ExitCode(1)
    }
  }
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

/// `lockstep certs`: make and inspect the cluster's certificates.
struct Certs: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Make and inspect the cluster's CA and node certificates (see docs/security.md).",
    subcommands: [CertsInit.self, CertsAdd.self, CertsShow.self])
}

/// The nodes named on a `certs init` or `certs add` command line.
struct NodeOptions: ParsableArguments {
  @Option(help: "VMM names, comma-separated (primary-vmm and backup-vmm hosts; they share the heartbeat key).")
  var vmms: String?

  @Option(help: "The arbiter's name.")
  var arbiter: String?

  @Option(help: "Operator names, comma-separated (users of the lockstep CLI).")
  var operators: String?

  @Option(help: "How many days the node certificates are valid.")
  var days: Int = ClusterCertificates.defaultDays

  func validate() throws {
    guard (1...ClusterCertificates.maximumDays).contains(days) else {
      throw ValidationError("--days must be from 1 to \(ClusterCertificates.maximumDays), not \(days)")
    }
  }

  @Option(help: "The cluster directory: DIR/ca holds the CA, DIR/NAME each node's credentials.")
  var dir: String

  @Flag(help: "Replace existing certificates.")
  var force = false

  /// The nodes, in command-line order: VMMs, the arbiter, operators.
  func nodes() throws(CertificateError) -> [NodeIdentity] {
    var nodes: [NodeIdentity] = []
    for name in Self.names(vmms) { nodes.append(try NodeIdentity(name: name, role: .vmm)) }
    for name in Self.names(arbiter) { nodes.append(try NodeIdentity(name: name, role: .arbiter)) }
    for name in Self.names(operators) { nodes.append(try NodeIdentity(name: name, role: .operator)) }
    return nodes
  }

  private static func names(_ list: String?) -> [String] {
    (list ?? "").split(separator: ",", omittingEmptySubsequences: false)
      .map { $0.trimmingCharacters(in: " ") }
      .filter { !$0.isEmpty }
  }

  /// Prints what was made and what to do with it.
  static func report(_ nodes: [NodeCredentials], directory: String) {
    for node in nodes {
      let role = "\(node.role)".padding(8)
      print(
        "  \(node.directory.padding(24)) \(role) CN=\(node.name) OU=\(node.role.organizationalUnit), "
          + "valid until \(CertificateValidity.utcText(node.validity.notAfter))")
    }
    print("Copy each DIR/NAME to the host that runs NAME and pass it as --tls-dir; keep \(directory)/ca off the nodes.")
  }
}

/// `lockstep certs init`: a new cluster CA and certificates for its nodes.
struct CertsInit: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "init",
    abstract: "Make a cluster CA and a certificate, key and (VMMs) heartbeat key for each node.",
    discussion: """
      Example: lockstep certs init --dir certs --vmms vmm1,vmm2 --arbiter arbiter --operators ops
      Refuses to replace an existing DIR/ca unless --force: a new CA invalidates every certificate \
      the old one issued.
      """)

  @OptionGroup var options: NodeOptions

  func validate() throws {
    guard !(options.vmms ?? "").isEmpty else { throw ValidationError("name the VMMs with --vmms NAME,…") }
  }

  func run() throws {
    do {
      let nodes = try ClusterCertificates.initialize(
        directory: options.dir, nodes: try options.nodes(), days: options.days, force: options.force)
      print("Made the cluster CA in \(options.dir)/ca and these node credentials:")
      NodeOptions.report(nodes, directory: options.dir)
    } catch {
      printError("lockstep certs init: error: \(error)")
      throw ExitCode(1)
    }
  }
}

/// `lockstep certs add`: certificates for more nodes from an existing CA.
struct CertsAdd: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "add",
    abstract: "Issue certificates for more nodes (or renew them with --force) with the cluster's existing CA.")

  @OptionGroup var options: NodeOptions

  func run() throws {
    do {
      let nodes = try ClusterCertificates.add(
        directory: options.dir, nodes: try options.nodes(), days: options.days, force: options.force)
      print("Issued with the CA in \(options.dir)/ca:")
      NodeOptions.report(nodes, directory: options.dir)
    } catch {
      printError("lockstep certs add: error: \(error)")
      throw ExitCode(1)
    }
  }
}

/// `lockstep certs show`: check a node's credentials directory.
struct CertsShow: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "show",
    abstract: "Check a node's credentials directory (what --tls-dir names) and say whose it is.")

  @Option(help: "The node's credentials directory, DIR/NAME.")
  var tlsDir: String

  func run() throws {
    do {
      let node = try NodeCredentials(loadingFrom: tlsDir)
      print("\(tlsDir): \(node.name), role \(node.role)")
      print("  valid from \(CertificateValidity.utcText(node.validity.notBefore))")
      print("  valid until \(CertificateValidity.utcText(node.validity.notAfter))")
      print("  heartbeat key: \(node.heartbeatKey == nil ? "none" : "present")")
    } catch {
      printError("lockstep certs show: error: \(error)")
      throw ExitCode(1)
    }
  }
}

extension String {
  /// The string padded with spaces to `width` characters.
  fileprivate func padding(_ width: Int) -> String {
    count >= width ? self : self + String(repeating: " ", count: width - count)
  }

  /// The string without leading and trailing `character`s.
  fileprivate func trimmingCharacters(in character: Character) -> String {
    String(drop { $0 == character }.reversed().drop { $0 == character }.reversed())
  }
}

extension Substring {
  fileprivate func trimmingCharacters(in character: Character) -> String {
    String(self).trimmingCharacters(in: character)
  }
}

func printError(_ text: String) {
  var line = text + "\n"
  line.withUTF8 { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) }
}
