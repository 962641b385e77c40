#if LOCKSTEP_TSAN_LOCKS
  import Synchronization

  #if canImport(Glibc)
    import Glibc
  #endif

  /// Only in ThreadSanitizer builds (`scripts/sanitize.sh thread` passes
  /// `-D LOCKSTEP_TSAN_LOCKS`): a lock with the API of `Synchronization.Mutex`
  /// that this module's code then uses instead, built on `pthread_mutex_t`,
  /// which ThreadSanitizer intercepts.
  ///
  /// Why: on Linux, the standard library's `Mutex` is a priority-inheritance
  /// futex; when a thread waits for it, the kernel hands the lock over inside
  /// `futex(FUTEX_LOCK_PI/FUTEX_UNLOCK_PI)` with no atomic operation in user
  /// space, so ThreadSanitizer sees no ordering between the two holders and
  /// reports every contended critical section as a race. With this lock the
  /// reports that remain are real. Release builds never compile this file's
  /// body.
  final class Mutex<Value: ~Copyable>: @unchecked Sendable {
    // @unchecked: `value` is only touched between pthread_mutex_lock and
    // pthread_mutex_unlock on `handle`.
    private let handle: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    init(_ initialValue: consuming sending Value) {
      handle = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
      handle.initialize(to: pthread_mutex_t())
      pthread_mutex_init(handle, nil)
      value = initialValue
    }

    deinit {
      pthread_mutex_destroy(handle)
      handle.deallocate()
    }

    func withLock<Result: ~Copyable, E: Error>(
      _ body: (inout sending Value) throws(E) -> sending Result
    ) throws(E) -> sending Result {
      pthread_mutex_lock(handle)
      defer { pthread_mutex_unlock(handle) }
      return try body(&value)
    }

    func withLockIfAvailable<Result: ~Copyable, E: Error>(
      _ body: (inout sending Value) throws(E) -> sending Result
    ) throws(E) -> sending Result? {
      guard pthread_mutex_trylock(handle) == 0 else { return nil }
      defer { pthread_mutex_unlock(handle) }
      return try body(&value)
    }
  }
#endif
