#if canImport(Glibc)
  import Glibc
#endif

/// Runs a system call, retrying it while it fails with EINTR, and throws a
/// ``SystemError`` naming `operation` when it fails otherwise.
///
/// Every system call in Lockstep goes through here (or through
/// ``systemCallAllowingInterrupt(_:_:)`` where EINTR is a result).
@inline(__always)
func systemCall<Result: FixedWidthInteger>(
  _ operation: @autoclosure () -> String,
  _ call: () -> Result
) throws(SystemError) -> Result {
  while true {
    let result = call()
    if result != -1 { return result }
    let error = errno
    if error == EINTR { continue }
    throw SystemError(operation(), errno: error)
  }
}

/// Like ``systemCall(_:_:)`` but returns `nil` on EINTR instead of retrying,
/// for calls such as KVM_RUN where an interruption is how a thread is kicked.
@inline(__always)
func systemCallAllowingInterrupt<Result: FixedWidthInteger>(
  _ operation: @autoclosure () -> String,
  _ call: () -> Result
) throws(SystemError) -> Result? {
  let result = call()
  if result != -1 { return result }
  let error = errno
  if error == EINTR || error == EAGAIN { return nil }
  throw SystemError(operation(), errno: error)
}
