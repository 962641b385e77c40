/// What an operator asks a primary to do (`lockstep poweroff`, `lockstep
/// failover`), message 23 of the logging channel's protocol.
public enum OperatorCommand: UInt8, Sendable, Equatable, CaseIterable {
  /// Stop the guest on both nodes, with no failover: the primary stops at
  /// an exit, logs the end, the backup replays to it and stops too.
  case powerOff = 1
  /// Hand the VM over to the backup: the primary stops at an exit, lets
  /// the backup acknowledge the whole log, tells it to take over and halts.
  case failover = 2
}
