/// Where a recorder's log goes: a file, the replication channel, or both.
public protocol LogSink: AnyObject {
  /// Appends a record. May block (flow control) when the consumer is behind.
  func append(_ record: LogRecord) throws
  /// Writes what is buffered and makes it durable or delivered.
  func finish() throws
}

extension LogFileWriter: LogSink {}
