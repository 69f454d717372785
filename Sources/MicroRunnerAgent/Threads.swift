import MicroRunnerHandlers

/// A mutex with a condition variable on the monotonic clock: the queue between the stdin reader
/// and the command worker.
final class ConditionLock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>

    init() {
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

    func withLock<R>(_ body: () throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// Waits (lock held) until signalled or until `deadline` (monotonic ns) passes.
    /// - Returns: false when the deadline passed.
    func wait(until deadline: Int64) -> Bool {
        if deadline == .max {
            pthread_cond_wait(condition, mutex)
            return true
        }
        var ts = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
        return pthread_cond_timedwait(condition, mutex, &ts) != ETIMEDOUT
    }

    func broadcast() { pthread_cond_broadcast(condition) }
}

/// Starts a detached OS thread. The runner's blocking reads (stdin, sigwait) live on their own threads so
/// that a CANCEL, EOF or signal is seen while the worker is busy in `poll(2)`; Swift's cooperative pool
/// (two threads on this machine) must never be blocked that way.
func startThread(stackBytes: Int = 1 << 20, _ body: @escaping @Sendable () -> Void) {
    final class Box: @unchecked Sendable {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    var attr = pthread_attr_t()
    pthread_attr_init(&attr)
    pthread_attr_setstacksize(&attr, stackBytes)
    pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    var thread = pthread_t()
    let rc = pthread_create(
        &thread,
        &attr,
        { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            box.body()
            return nil
        },
        box
    )
    pthread_attr_destroy(&attr)
    if rc != 0 {
        Unmanaged<Box>.fromOpaque(box).release()
        fatalError("micro-runner: cannot start a thread: \(errnoText(rc))")
    }
}
