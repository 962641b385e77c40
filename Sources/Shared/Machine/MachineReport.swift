/// How a machine's run ended, with its counters.
public struct MachineReport: Sendable {
  /// Why it stopped.
  public var stop: MachineStop
  /// Exits handled.
  public var exits: UInt64
  /// Hash of the exit trace.
  public var traceDigest: UInt64
  /// The full trace, if the configuration kept it.
  public var trace: ExitTrace
  /// Hash of guest RAM at the end.
  public var memoryDigest: UInt64
  /// Messages delivered into the rx ring and taken from the tx ring.
  public var rxMessages: UInt64
  public var txMessages: UInt64
  /// Wall-clock nanoseconds the vCPU ran.
  public var elapsedNanoseconds: UInt64
  /// Why the input source could not finish (e.g. its log), if it could not.
  public var inputSourceError: String?

  /// One line for the log.
  public var summary: String {
    let seconds = Double(elapsedNanoseconds) / 1e9
    let perExit = exits > 0 ? Double(rxMessages + txMessages) / Double(exits) : 0
    return
      "\(stop); exits=\(exits) rx_messages=\(rxMessages) tx_messages=\(txMessages) messages_per_exit=\(String(format2: perExit)) seconds=\(String(format2: seconds)) trace=\(String(traceDigest, radix: 16)) memory=\(String(memoryDigest, radix: 16))"
  }
}

extension String {
  /// `value` with two decimals, without Foundation.
  init(format2 value: Double) {
    let scaled = (value * 100).rounded()
    guard scaled.isFinite, abs(scaled) < 1e17 else {
      self = "\(value)"
      return
    }
    let whole = Int(scaled) / 100
    let fraction = abs(Int(scaled) % 100)
    self = "\(whole).\(fraction < 10 ? "0" : "")\(fraction)"
  }
}
