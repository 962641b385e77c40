// arbiter: decides, durably and atomically, which node holds each VM.
import ArgumentParser
import CommandLineOptions
import Lockstep
import Logging

#if canImport(Glibc)
  import Glibc
#endif

@main
struct ArbiterCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "arbiter",
    abstract: "Run the Lockstep arbiter: a durable, atomic test-and-set of each VM's generation over mutual TLS.",
    discussion: """
      VMMs call test-and-set before going live; operators may query. Every decision is fsync'd into \
      --state-dir before it is answered (docs/arbiter.md). Stops on SIGINT or SIGTERM. Exit status: 0 after \
      a signal; 1 when the arbiter cannot start (bad credentials, unusable or corrupt state, address in use).
      """)

  /// Runs with the `LOCKSTEP_…` environment merged into the command line.
  static func main() { mainWithEnvironment() }

  @Option(help: "The address to listen on, HOST:PORT (example: 127.0.0.1:7100).")
  var listen: String

  @Option(help: "The directory of the arbiter's records (created if missing); one file per VM.")
  var stateDir: String

  @Option(help: "The arbiter's certificate directory (from `lockstep certs init`), e.g. certs/arbiter.")
  var tlsDir: String

  @Option(help: "How long a connection may stay silent between requests, in seconds.")
  var idleTimeout: Int = 60

  @Option(help: "How many connections are served at once.")
  var maxConnections: Int = 64

  @OptionGroup(title: "Observability")
  var observability: MetricsOptions

  @Option(help: "Log level.")
  var logLevel: Logger.Level = .info

  mutating func validate() throws {
    guard HostPort(parsing: listen) != nil else {
      throw ValidationError("--listen '\(listen)' is not HOST:PORT (example: 127.0.0.1:7100)")
    }
    guard idleTimeout > 0 else { throw ValidationError("--idle-timeout must be at least 1 second") }
    guard maxConnections > 0 else { throw ValidationError("--max-connections must be at least 1") }
  }

  func run() throws {
    let logger = ProcessLogging.bootstrap(executable: "arbiter", vm: "-", level: logLevel)
    guard let address = HostPort(parsing: listen) else { throw ExitCode(1) }
    // Block the stop signals before any thread starts, then wait for them.
    var signals = sigset_t()
    sigemptyset(&signals)
    sigaddset(&signals, SIGINT)
    sigaddset(&signals, SIGTERM)
    pthread_sigmask(SIG_BLOCK, &signals, nil)
    let server: ArbiterServer
    let endpoint: MetricsEndpoint?
    do {
      server = try start(address, logger: logger)
      let metrics = ArbiterMetrics(server: server)
      endpoint = try observability.start(logger: logger, sample: { metrics.refresh() }, render: { metrics.render() })
    } catch let error as ExitCode {
      throw error
    } catch {
      logger.error("\(error)")
      throw ExitCode(1)
    }
    var received: Int32 = 0
    while sigwait(&signals, &received) != 0 {}
    logger.info("signal \(received) received, stopping the arbiter")
    endpoint?.close()
    server.close()
  }

  /// Loads the credentials and the records and starts serving.
  func start(_ address: HostPort, logger: Logger) throws -> ArbiterServer {
    let credentials = try NodeCredentials(loadingFrom: tlsDir)
    guard credentials.role == .arbiter else {
      let problem =
        "\(credentials.certificatePath) is the certificate of '\(credentials.name)', a \(credentials.role): "
        + "the arbiter needs an arbiter certificate (lockstep certs add --arbiter NAME)"
      logger.error("\(problem)")
      throw ExitCode(1)
    }
    let store = try ArbiterStore(directory: stateDir)
    let server = try ArbiterServer(
      host: address.host, port: address.port, credentials: credentials, store: store, logger: logger,
      idleTimeout: .seconds(idleTimeout), maximumConnections: maxConnections)
    try server.start()
    let listening = HostPort(host: address.host, port: server.port)
    logger.info(
      "arbiter \(credentials.name) listening on \(listening) with \(store.all.count) VM record(s) from \(stateDir)")
    return server
  }
}
