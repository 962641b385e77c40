/// Where a replayer's log comes from: a file, or the replication channel.
public protocol LogSource: AnyObject {
  /// The next record; nil at the end of the log (a file's end, or a
  /// channel whose primary is gone).
  func next() throws -> LogRecord?
}

extension LogFileReader: LogSource {}
