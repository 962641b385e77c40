/// What an ``ArbiterServer`` has done since it started (metrics).
public struct ArbiterCounters: Sendable, Equatable {
  /// Connections admitted (a valid cluster certificate of an allowed role).
  public var connections: UInt64 = 0
  /// Connections refused at the handshake: no certificate, one of another
  /// CA, an expired one, a role not allowed, or no TLS at all.
  public var refusedConnections: UInt64 = 0
  /// Connections closed because too many were open.
  public var busy: UInt64 = 0
  /// Queries answered.
  public var queries: UInt64 = 0
  /// Test-and-sets granted (a new generation) and lost (answered with the
  /// current record).
  public var granted: UInt64 = 0
  public var lost: UInt64 = 0
  /// Requests refused: an operator's (or another node's) attempt to change
  /// a record, or an invalid name or address.
  public var refusedRequests: UInt64 = 0
  /// Malformed requests (the connection is closed after each).
  public var malformed: UInt64 = 0

  /// No counts.
  public init() {}
}
