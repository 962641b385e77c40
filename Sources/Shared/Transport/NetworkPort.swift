/// The live network as the machine sees it: inbound events waiting for
/// the guest, and the way out for what the guest sends.
public protocol NetworkPort: AnyObject, Sendable {
  /// Removes and returns the pending inbound events that fit the rx ring
  /// described by `cursor` (splitting data that does not fit whole),
  /// advancing the cursor past them.
  func takeEvents(fitting cursor: inout RingCursor) -> [InboundEvent]
  /// Queues bytes for a connection.
  func send(_ bytes: UnsafeRawBufferPointer, connection: UInt32)
  /// Closes a connection once what was queued before is sent.
  func close(connection: UInt32)
  /// Makes the queued output go out (wakes the network thread once).
  func flush()
}
