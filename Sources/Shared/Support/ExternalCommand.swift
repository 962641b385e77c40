import CLockstepLinux

#if canImport(Glibc)
  import Glibc
#endif

/// Runs a system tool (`ip`, `arping`) and waits for it, bounded in time.
/// Its standard error is captured for the error message.
public enum ExternalCommand {
  /// The outcome of a run.
  public struct Outcome: Sendable {
    /// The exit status (-1 when killed or not started).
    public var status: Int32
    /// What it wrote to standard error (at most 4 KiB).
    public var errorOutput: String
  }

  /// Runs `arguments[0]` (looked up in PATH) with the rest as arguments;
  /// kills it after `timeout`.
  public static func run(_ arguments: [String], timeout: Duration = .seconds(5)) -> Outcome {
    guard let program = arguments.first else { return Outcome(status: -1, errorOutput: "no command given") }
    var pipeEnds: [Int32] = [-1, -1]
    guard pipe(&pipeEnds) == 0 else { return Outcome(status: -1, errorOutput: "pipe: errno \(errno)") }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
    posix_spawn_file_actions_adddup2(&actions, pipeEnds[1], 2)
    posix_spawn_file_actions_addclose(&actions, pipeEnds[0])
    var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
    argv.append(nil)
    defer { argv.forEach { free($0) } }
    var pid: pid_t = 0
    let spawned = posix_spawnp(&pid, program, &actions, nil, argv, environ)
    close(pipeEnds[1])
    let reader = FileDescriptorOwner(taking: pipeEnds[0])
    guard spawned == 0 else {
      return Outcome(status: -1, errorOutput: "cannot run \(program): \(String(cString: strerror(spawned)))")
    }
    var errorBytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1024)
    let deadline = ClockReading.monotonicNanoseconds() + timeout.wholeNanoseconds
    while ClockReading.monotonicNanoseconds() < deadline {
      let ready = lslinux_wait_readable(reader.rawValue, 50_000_000)
      guard ready > 0 else { continue }
      let got = read(reader.rawValue, &chunk, chunk.count)
      if got <= 0 { break }
      if errorBytes.count < 4096 { errorBytes.append(contentsOf: chunk[..<got]) }
    }
    var status: Int32 = 0
    if ClockReading.monotonicNanoseconds() >= deadline { kill(pid, SIGKILL) }
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let exited = (status & 0x7f) == 0
    return Outcome(
      status: exited ? (status >> 8) & 0xff : -1,
      errorOutput: String(decoding: errorBytes, as: UTF8.self).trimmingTrailingNewlines)
  }
}

extension String {
  fileprivate var trimmingTrailingNewlines: String {
    var text = self
    while text.last == "\n" { text.removeLast() }
    return text
  }
}
