extension Duration {
  /// The duration in whole nanoseconds, for deadlines on the monotonic
  /// clock: negative durations count as zero, and more than 2^32 seconds
  /// (136 years) as 2^32 seconds.
  public var wholeNanoseconds: UInt64 {
    let (seconds, attoseconds) = components
    guard seconds >= 0, attoseconds >= 0 else { return 0 }
    return UInt64(min(seconds, 1 << 32)) * 1_000_000_000 + UInt64(attoseconds / 1_000_000_000)
  }
}
