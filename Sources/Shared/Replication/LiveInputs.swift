/// The input source of a VM that is neither recorded nor replayed: every
/// value is obtained live.
public final class LiveInputs: InputSource {
  /// Creates a live source.
  public init() {}

  public func input<Value: InputValue>(
    _ kind: InputKind, at point: ExitPoint, live: () throws -> Value
  ) throws -> Value {
    try live()
  }
}
