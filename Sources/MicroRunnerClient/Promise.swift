import Foundation

/// A value that arrives later, awaited by any number of tasks: registered before a line is sent, fulfilled
/// by the output pump, or failed by a timeout or the runner's end. Whichever comes first wins.
final class Promise<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var result: Result<Value, any Error>?
    private var continuations: [CheckedContinuation<Value, any Error>] = []

    /// Sets the outcome (only the first call counts).
    func complete(_ outcome: Result<Value, any Error>) {
        let waiting: [CheckedContinuation<Value, any Error>] = lock.withLock {
            guard result == nil else { return [] }
            result = outcome
            defer { continuations = [] }
            return continuations
        }
        for c in waiting { c.resume(with: outcome) }
    }

    /// Whether an outcome is set.
    var isComplete: Bool { lock.withLock { result != nil } }

    /// Waits for the outcome.
    func value() async throws -> Value {
        try await withCheckedThrowingContinuation { c in
            let ready: Result<Value, any Error>? = lock.withLock {
                if let result { return result }
                continuations.append(c)
                return nil
            }
            if let ready { c.resume(with: ready) }
        }
    }

    /// Waits for the outcome, failing it with `error` if `timeout` passes first.
    func value(timeout: Duration, orFail error: @autoclosure @escaping @Sendable () -> any Error) async throws -> Value
    {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { [self] in
                try await Task.sleep(for: timeout)
                complete(.failure(error()))
            }
            defer { group.cancelAll() }
            return try await value()
        }
    }
}
