import Foundation

/// What one host gave back.
public struct HostOutcome<T: Sendable>: Sendable {
    /// The host, as its transport names it.
    public var host: String
    /// The value, or why it failed.
    public var result: Result<T, any Error>
    /// Seconds from start to end, upload included.
    public var duration: Double
}

/// Runs the same work on many hosts at once, with a bound on how many run together.
///
/// Each host gets its own runner; one host's failure (unreachable, refused, an ERROR) is its outcome and
/// never stops the others. Outcomes are handed over as hosts finish. Cancelling the calling task stops every
/// host: each running command ends with its runner (the session is closed, the remote directory removed),
/// and hosts not yet started are not started.
public enum Fleet {
    /// Runs `body` on every transport, at most `forks` at a time.
    /// - Parameters:
    ///   - transports: one per host.
    ///   - runner: the runner binary to upload.
    ///   - arguments: runner flags.
    ///   - forks: how many hosts run at once (at least 1).
    ///   - startTimeout: per host, for upload, start and READY together.
    ///   - signer: signs every command, when set.
    ///   - body: what to do on each host.
    ///   - onOutcome: called as each host finishes (from one task at a time).
    public static func run<T: Sendable>(
        _ transports: [any Transport],
        runner: RunnerBinary,
        arguments: [String] = [],
        forks: Int,
        startTimeout: Duration = .seconds(60),
        signer: (any CommandSigning)? = nil,
        body: @escaping @Sendable (RunnerClient) async throws -> T,
        onOutcome: (HostOutcome<T>) async -> Void
    ) async {
        await withTaskGroup(of: HostOutcome<T>.self) { group in
            var next = 0
            func launch() {
                let transport = transports[next]
                next += 1
                group.addTask {
                    let start = ContinuousClock.now
                    let result: Result<T, any Error>
                    do {
                        result = .success(
                            try await RunnerClient.withRunner(
                                transport: transport,
                                runner: runner,
                                arguments: arguments,
                                startTimeout: startTimeout,
                                signer: signer,
                                body
                            )
                        )
                    } catch {
                        result = .failure(error)
                    }
                    let elapsed = ContinuousClock.now - start
                    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
                    return HostOutcome(host: transport.name, result: result, duration: seconds)
                }
            }
            while next < transports.count && next < max(1, forks) { launch() }
            while let outcome = await group.next() {
                await onOutcome(outcome)
                // Cancelled (Ctrl-C): hosts already started stop and clean up; no new host starts.
                if next < transports.count && !Task.isCancelled { launch() }
            }
        }
    }
}
