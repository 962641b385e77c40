import Logging

/// How every Lockstep executable logs: to standard error, at one level,
/// with the VM's name as metadata.
public enum ProcessLogging {
  /// Sets up the process-wide logging system (call once, first thing in a
  /// command's `run()`) and returns the executable's logger.
  public static func bootstrap(executable: String, vm: String, level: Logger.Level) -> Logger {
    LoggingSystem.bootstrap { label in
      var handler = StreamLogHandler.standardError(label: label)
      handler.logLevel = level
      return handler
    }
    return Logger(label: executable).with(vm: vm)
  }
}
