/// A mutex with a condition variable on the monotonic clock: the queue between the stdin reader
/// and the command worker.
package final class ConditionLock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>

    package init() {
        mutex = .allocate(capacity: 1)
        condition = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attr)
        pthread_condattr_destroy(&attr)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        condition.deallocate()
    }

    package func withLock<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// Waits (lock held) until signalled or until `deadline` (monotonic ns) passes.
    /// - Returns: false when the deadline passed.
    package func wait(until deadline: Int64) -> Bool {
        if deadline == .max {
            pthread_cond_wait(condition, mutex)
            return true
        }
        var ts = timespec(tv_sec: time_t(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
        return pthread_cond_timedwait(condition, mutex, &ts) != ETIMEDOUT
    }

    package func broadcast() { pthread_cond_broadcast(condition) }
}

/// A value behind a lock (Synchronization's `Mutex` is not in the Embedded stdlib).
package final class Locked<Value>: @unchecked Sendable {
    private let lock = ConditionLock()
    private var value: Value

    /// Creates the lock around `value`.
    package init(_ value: Value) { self.value = value }

    /// Runs `body` with the value, the lock held.
    package func withLock<R, E: Error>(_ body: (inout Value) throws(E) -> R) throws(E) -> R {
        try lock.withLock { () throws(E) -> R in try body(&value) }
    }
}

/// A thread's body on its way through `pthread_create`'s context pointer (file scope: Embedded Swift cannot
/// specialize a class declared inside a function used from another module).
final class ThreadBody: @unchecked Sendable {
    let body: @Sendable () -> Void
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }
}

/// Starts a detached OS thread. The runner's blocking reads (stdin, sigwait) live on their own threads so
/// that a CANCEL, EOF or signal is seen while the worker is busy in `poll(2)`; Swift's cooperative pool
/// (two threads on this machine) must never be blocked that way.
package func startThread(stackBytes: Int = 1 << 20, _ body: @escaping @Sendable () -> Void) {
    let box = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
    // pthread_t is an integer in glibc and a pointer in musl: the C side creates the thread and keeps it.
    let rc = mr_start_detached_thread(
        { raw in
            let box = Unmanaged<ThreadBody>.fromOpaque(raw!).takeRetainedValue()
            box.body()
            return nil
        },
        box,
        stackBytes
    )
    if rc != 0 {
        Unmanaged<ThreadBody>.fromOpaque(box).release()
        fatalError("micro-runner: cannot start a thread: \(errnoText(rc))")
    }
}
