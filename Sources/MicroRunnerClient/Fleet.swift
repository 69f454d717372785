import Foundation
import Logging

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
///
/// ```swift
/// var failed: [String] = []
/// await Fleet.run(transports, runner: runner, forks: 20, logger: logger) { client in
///     try await client.exec(ExecParams(command: "systemctl is-active nginx")).exitCode
/// } onOutcome: { outcome in
///     if case .failure = outcome.result { failed.append(outcome.host) }
/// }
/// ```
public enum Fleet {
    /// Runs `body` on every transport, at most `forks` at a time.
    /// - Parameters:
    ///   - transports: one per host.
    ///   - runner: the runner binary to upload.
    ///   - arguments: runner flags.
    ///   - forks: how many hosts run at once (at least 1).
    ///   - startTimeout: per host, for upload, start and READY together.
    ///   - isolation: the caller's actor (implicit): `onOutcome` runs there, so it can collect into the caller's
    ///     local state, also from an `@main` type's `main` (the main actor).
    ///   - signer: signs every command, when set.
    ///   - logger: where each host's start and end (`.debug`) and each retry of a host whose server turned the
    ///     connection away (`.notice`) are logged, with `host`; also passed to each session. `nil`: nothing.
    ///   - body: what to do on each host.
    ///   - onOutcome: called as each host finishes (from one task at a time).
    public static func run<T: Sendable>(
        _ transports: [any Transport],
        runner: RunnerBinary,
        arguments: [String] = [],
        forks: Int = 10,
        startTimeout: Duration = .seconds(60),
        signer: (any CommandSigning)? = nil,
        logger: Logger? = nil,
        isolation: isolated (any Actor)? = #isolation,
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
                    let result = await Self.runHost(
                        transport,
                        runner: runner,
                        arguments: arguments,
                        startTimeout: startTimeout,
                        signer: signer,
                        logger: logger,
                        body: body
                    )
                    let elapsed = ContinuousClock.now - start
                    let seconds = elapsed.inSeconds
                    logger?.debug(
                        "host finished",
                        metadata: [
                            "host": "\(transport.name)", "seconds": "\(seconds)",
                            "outcome": "\({ if case .failure(let e) = result { "\(e)" } else { "ok" } }())",
                        ]
                    )
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

    /// One host: the runner started, `body` run, the runner closed; a connection the server turned away before
    /// READY (busy, see `busyRetries`) is tried again, and when that keeps happening the error says what to do.
    static func runHost<T: Sendable>(
        _ transport: any Transport,
        runner: RunnerBinary,
        arguments: [String],
        startTimeout: Duration,
        signer: (any CommandSigning)?,
        logger: Logger? = nil,
        body: @escaping @Sendable (RunnerClient) async throws -> T
    ) async -> Result<T, any Error> {
        var attempt = 0
        while true {
            // The body runs only after READY: an error before it changed nothing on the host.
            let reachedBody = Flag()
            do {
                return .success(
                    try await RunnerClient.withRunner(
                        transport: transport,
                        runner: runner,
                        arguments: arguments,
                        startTimeout: startTimeout,
                        signer: signer,
                        logger: logger
                    ) { client in
                        reachedBody.set()
                        return try await body(client)
                    }
                )
            } catch {
                guard !reachedBody.isSet, isBusyServer(error), let e = error as? ClientError, !Task.isCancelled else {
                    return .failure(error)
                }
                guard attempt < busyRetries.count else {
                    return .failure(
                        ClientError(
                            e.kind,
                            e.message + " (the server turned the connection away \(attempt + 1) times: "
                                + "too many connections at once for its MaxStartups; lower --forks)"
                        )
                    )
                }
                let pause = busyRetries[attempt] + busyRetries[attempt] * Double.random(in: 0...0.5)
                logger?.notice(
                    "the server turned the connection away; trying again",
                    metadata: ["host": "\(transport.name)", "attempt": "\(attempt + 1)", "pause": "\(pause)"]
                )
                try? await Task.sleep(for: pause)
                attempt += 1
            }
        }
    }

    /// Waits before each retry of a host whose sshd turned the connection away under load (OpenSSH's
    /// `MaxStartups`, 10 unauthenticated connections by default, drops the rest with "kex_exchange_identification"):
    /// doubling, with up to half again of jitter so retried hosts do not arrive together again; about 10 s in
    /// all before giving up. Three retries over 4.3 s were not enough: 12 hosts at once against `MaxStartups 2`
    /// left one host turned away four times in one run of five.
    static let busyRetries: [Duration] = [
        .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2), .seconds(3), .seconds(3),
    ]

    /// Whether `error` is an ssh connection the server closed before the runner started (busy, not broken): its
    /// kind, decided once where ssh's words are read (`ClientError.sshFailureKind`), never from the message again.
    package static func isBusyServer(_ error: any Error) -> Bool {
        (error as? ClientError)?.kind == .busy
    }
}

/// A flag set once, read from another task.
final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.withLock { value = true } }
    var isSet: Bool { lock.withLock { value } }
}

/// The process's open-file limit, which bounds how many hosts one process can drive at once.
public enum OpenFileLimit {
    /// Descriptors each host in flight holds in this process (its ssh child's three pipes and pidfd, with margin).
    public static let perHost = 8

    /// Raises the soft limit to the hard one (many systems start processes at a soft 1024, or 256 on some)
    /// and returns the soft limit in force afterwards.
    @discardableResult
    public static func raise() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 256 }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        return limit.rlim_cur > UInt64(Int.max) ? Int.max : Int(limit.rlim_cur)
    }

    /// How many hosts can run at once within `limit` descriptors (64 kept for everything else), at least 1.
    public static func maxForks(within limit: Int) -> Int { max(1, (limit - 64) / perHost) }
}
