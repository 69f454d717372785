import Foundation

/// A value that arrives once, awaited by any number of tasks.
///
/// A timed wait ends only that wait: the promise stays open for every other waiter and for later waits (a
/// `waitForExit(timeout:)` that gives up must not make the next one return at once while the child still
/// runs). Waits end with `CancellationError` when their task is cancelled.
package final class Promise<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var result: Result<Value, any Error>?
    private var waiters: [UInt64: CheckedContinuation<Value, any Error>] = [:]
    private var nextWaiter: UInt64 = 0

    package init() {}

    /// Sets the outcome (only the first call counts).
    package func complete(_ outcome: Result<Value, any Error>) {
        let waiting: [CheckedContinuation<Value, any Error>] = lock.withLock {
            guard result == nil else { return [] }
            result = outcome
            defer { waiters = [:] }
            return Array(waiters.values)
        }
        for c in waiting { c.resume(with: outcome) }
    }

    /// Whether an outcome is set.
    package var isComplete: Bool { lock.withLock { result != nil } }

    /// Ends one wait (if it still waits) with `outcome`.
    private func end(_ id: UInt64, _ outcome: Result<Value, any Error>) {
        let c = lock.withLock { waiters.removeValue(forKey: id) }
        c?.resume(with: outcome)
    }

    /// Waits for the outcome (or for this task's cancellation).
    package func value() async throws -> Value {
        try await wait(timeout: nil, orFail: { CancellationError() })
    }

    /// Waits for the outcome; when `timeout` passes first, this wait alone fails with `error`.
    package func value(
        timeout: Duration,
        orFail error: @autoclosure @escaping @Sendable () -> any Error
    ) async throws -> Value {
        try await wait(timeout: timeout, orFail: error)
    }

    private func wait(timeout: Duration?, orFail error: @escaping @Sendable () -> any Error) async throws -> Value {
        let id: UInt64 = lock.withLock {
            nextWaiter += 1
            return nextWaiter
        }
        let timer: Task<Void, Never>? = timeout.map { timeout in
            Task { [self] in
                try? await Task.sleep(for: timeout)
                if !Task.isCancelled { end(id, .failure(error())) }
            }
        }
        defer { timer?.cancel() }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { c in
                let ready: Result<Value, any Error>? = lock.withLock {
                    if let result { return result }
                    if Task.isCancelled { return .failure(CancellationError()) }
                    waiters[id] = c
                    return nil
                }
                if let ready { c.resume(with: ready) }
            }
        } onCancel: {
            end(id, .failure(CancellationError()))
        }
    }
}
