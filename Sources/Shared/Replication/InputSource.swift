/// The one seam through which every nondeterministic value reaches the
/// guest: clock readings, entropy, network input (as wait outcomes) and
/// block reads. Device code asks for a value and says how to obtain it
/// live; the source decides where it really comes from:
///
/// - ``LiveInputs`` obtains it live (standalone),
/// - a recorder obtains it live and appends it to the log (primary),
/// - a replayer returns the logged value at the same exit (backup,
///   `lockstep replay`), checking that the exit point matches.
///
/// Devices never know which; record/replay never touches device code.
public protocol InputSource: AnyObject {
  /// Returns the value of input `kind` at exit `point`, calling `live` to
  /// obtain it if this source is live. A replaying source throws when the
  /// log does not have this kind at this point (a divergence).
  func input<Value: InputValue>(
    _ kind: InputKind, at point: ExitPoint, live: () throws -> Value
  ) throws -> Value

  /// The machine stopped (a recorder writes its end record here).
  func machineStopped(_ report: MachineReport) throws
}

extension InputSource {
  /// Nothing to do by default.
  public func machineStopped(_ report: MachineReport) throws {}
}
