import Logging
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// Runs one VM with no backup: the vCPU on its own thread, the service
/// address on the network reactor, SIGINT/SIGTERM as a graceful stop.
/// What `primary-vmm --standalone` is.
public enum StandaloneVMM {
  /// Builds and runs the machine until it stops; returns its report.
  /// Throws only if it could not be started (the message says why).
  public static func run(
    configuration: MachineConfiguration, serve: HostPort?, logger: Logger, metrics: NodeMetrics? = nil,
    inputs: @escaping @Sendable () throws -> any InputSource = { LiveInputs() },
    outputs: @escaping @Sendable (_ network: (any NetworkPort)?) -> any OutputSink = { LiveOutputs(network: $0) }
  ) throws -> MachineReport {
    let control = try MachineControl()
    // Before any other thread starts, so that all of them block the signals.
    let stopper = try SignalStopper.install(control: control, logger: logger)
    metrics?.follow { [name = configuration.name] in
      var status = NodeStatus(
        node: name, role: "standalone", generation: 0, protected: false, backup: "", serviceAddress: "")
      status.exits = control.exits
      return status
    }
    let network = try serve.map { address throws(SystemError) in
      try NetworkService(host: address.host, port: address.port, machineWakeup: control.wakeup)
    }
    if let network, let serve {
      try network.start()
      logger.info("serving clients", metadata: ["address": "\(serve.host):\(network.port)"])
    }
    defer { network?.stop() }
    let outcome = Mutex<Result<MachineReport, MachineSetupError>?>(nil)
    let vcpu = try NamedThread(name: "vcpu-0") {
      let result: Result<MachineReport, MachineSetupError>
      do {
        result = runOnThisThread(configuration, try inputs(), outputs(network), network, control)
      } catch {
        result = .failure(MachineSetupError("\(error)"))
      }
      outcome.withLock { $0 = result }
    }
    withExtendedLifetime(stopper) { vcpu.join() }
    switch outcome.withLock({ $0 }) {
    case .success(let report): return report
    case .failure(let error): throw error
    case nil: throw MachineSetupError("the vCPU thread ended without a result")
    }
  }

  /// Creates the machine on the calling (vCPU) thread and runs it.
  public static func runOnThisThread(
    _ configuration: MachineConfiguration, _ inputs: any InputSource, _ outputs: any OutputSink,
    _ network: (any NetworkPort)?, _ control: MachineControl,
    takeover: ((Machine, ExitPoint) -> Takeover?)? = nil, prepare: ((Machine) throws -> Void)? = nil
  ) -> Result<MachineReport, MachineSetupError> {
    let machine: Machine
    do {
      machine = try Machine(
        configuration: configuration, inputs: inputs, outputs: outputs, network: network, control: control)
    } catch {
      return .failure(MachineSetupError("\(error)"))
    }
    machine.takeover = takeover
    do {
      try prepare?(machine)
    } catch {
      return .failure(MachineSetupError("\(error)"))
    }
    let start = ClockReading.monotonicNanoseconds()
    let stop = machine.run()
    let elapsed = ClockReading.monotonicNanoseconds() - start
    var report = MachineReport(
      stop: stop, exits: machine.exitCount, traceDigest: machine.trace.digest, trace: machine.trace,
      memoryDigest: machine.memoryDigest(), rxMessages: machine.net.rxMessages,
      txMessages: machine.net.txMessages, elapsedNanoseconds: elapsed)
    do {
      try machine.inputs.machineStopped(report)
    } catch {
      report.inputSourceError = "\(error)"
    }
    return .success(report)
  }
}
