import Foundation
import MicroRunnerProtocol

/// One piece of a streamed command's output, or its end.
public enum ExecOutput: Sendable, Equatable {
    /// A line the command wrote on standard output (without its newline).
    case stdout(String)
    /// A line the command wrote on standard error.
    case stderr(String)
    /// The command ended: its result (exit status, the output the runner kept, `signal`).
    case finished(ExecResult)
}

/// The output of one command as it comes (see `RunnerClient.execStream`). Leaving a `for try await` loop over
/// it early, or cancelling the task that iterates, stops the command on the host.
public struct ExecOutputStream: AsyncSequence, Sendable {
    public typealias Element = ExecOutput

    let stream: AsyncThrowingStream<ExecOutput, any Error>
    let stop: @Sendable () -> Void

    public func makeAsyncIterator() -> Iterator {
        Iterator(inner: stream.makeAsyncIterator(), guardian: Guardian(stop))
    }

    /// Reads the pieces in order.
    public struct Iterator: AsyncIteratorProtocol {
        var inner: AsyncThrowingStream<ExecOutput, any Error>.Iterator
        let guardian: Guardian

        public mutating func next() async throws -> ExecOutput? {
            let piece = try await inner.next()
            if piece == nil { guardian.disarm() }
            return piece
        }
    }

    /// Stops the command when the iterator goes away before the end: an AsyncThrowingStream's own termination
    /// fires only once every reference to it is gone, and the task feeding it holds one until the command ends.
    final class Guardian: @unchecked Sendable {
        private let lock = NSLock()
        private var stop: (@Sendable () -> Void)?
        init(_ stop: @escaping @Sendable () -> Void) { self.stop = stop }
        func disarm() { lock.withLock { stop = nil } }
        deinit { stop?() }
    }
}

extension RunnerClient {
    /// Runs a command and gives its output as it comes, line by line, ending with `.finished(result)`:
    ///
    /// ```swift
    /// for try await piece in await client.execStream(ExecParams(command: "apt-get -y upgrade")) {
    ///     switch piece {
    ///     case .stdout(let line): print(line)
    ///     case .stderr(let line): print("!", line)
    ///     case .finished(let result): print("exit", result.exitCode)
    ///     }
    /// }
    /// ```
    ///
    /// The sequence finishes when the command does (an ERROR answer is thrown from it). Leaving the loop early or
    /// cancelling the task that iterates stops the command on the host (CANCEL, or the session's end with a
    /// runner that does not speak it). Lines wait for a slow consumer in memory; the session itself reads at
    /// most 1 MiB ahead of the client.
    public func execStream(_ params: ExecParams, timeout: Duration = .seconds(300)) -> ExecOutputStream {
        var params = params
        params.streamLines = true
        params.streamBatch = supports(ExecParams.streamBatchExtension)
        let command = CommandMessage(
            id: makeID(),
            type: .exec,
            timeout: Self.wireSeconds(timeout),
            params: WireEncoder().encodeToValue(params)
        )
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: ExecOutput.self)
        let task = Task {
            do {
                let answer = try await send(command) { event in
                    let stderr = event.metadata?["stream"] == "stderr"
                    for line in event.lines { continuation.yield(stderr ? .stderr(line) : .stdout(line)) }
                }
                let result = try WireDecoder().decode(ExecResult.self, from: try answer.result().result)
                continuation.yield(.finished(result))
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        let id = command.id
        let stop: @Sendable () -> Void = { [weak self] in
            task.cancel()
            Task { try? await self?.cancel(id) }
        }
        continuation.onTermination = { termination in
            if case .cancelled = termination { stop() }
        }
        return ExecOutputStream(stream: stream, stop: stop)
    }
}
