import Foundation
import MicroRunnerSystem
import Synchronization

/// How a runner reaches a host: put the binary there, start it with stdin/stdout as the protocol
/// channel, and clean up afterwards.
///
/// Both shipped transports upload and start in one step (the runner's bytes, then the protocol, on the
/// same stdin), so a start costs one round trip, not one per step.
///
/// ```swift
/// let transport: any Transport = try HostSpec(parsing: host).transport(options: options, runners: runners)
/// ```
public protocol Transport: Sendable {
    /// A name for messages and results (`user@host:port`, `local`).
    var name: String { get }
    /// Uploads `runner` and starts it with `arguments`.
    /// - Returns: the running session; its stdout carries the protocol.
    /// - Throws: `ClientError` `.transport` when the host cannot be reached or the upload fails.
    func start(runner: RunnerBinary, arguments: [String]) async throws -> RunnerSession
    /// Removes whatever a session left behind (called after the runner exited, cleanly or not).
    func cleanup(_ session: RunnerSession) async
    /// Releases what the transport keeps between sessions (an ssh ControlMaster connection); called once when
    /// the caller is done with the host.
    func shutdown() async
    /// A one-line explanation of why a session ended, from what its process wrote on stderr.
    func explain(stderr: String) -> String
    /// The kind of a failure before READY, from what the session's process wrote on stderr (ssh's words, a
    /// container runtime's); the bootstrap's own failures are `.bootstrap` whatever this says.
    func failureKind(stderr: String) -> ClientError.Kind
}

extension Transport {
    /// Nothing to release.
    public func shutdown() async {}

    /// The last non-empty lines of the runner's stderr.
    public func explain(stderr: String) -> String {
        let lines = stderr.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        return lines.isEmpty ? "no message on stderr" : lines.suffix(3).joined(separator: "; ")
    }

    /// `.transport`: nothing more specific is known.
    public func failureKind(stderr: String) -> ClientError.Kind { .transport }
}

/// A started runner: the process that carries its stdin/stdout (the runner itself, or ssh).
public final class RunnerSession: Sendable {
    let child: ChildProcess
    /// The private directory the runner was placed in, when the transport knows it.
    public let remoteDirectory: String?
    /// The runner's process id on its host, from READY: a cleanup after a lost or killed connection stops the
    /// runner by it (the runner finishes its command when only its stdin closes).
    let runnerPID = Mutex<Int?>(nil)
    /// The identity the runner was started to take, if not the login user's.
    let become: Become?
    /// The runner's SHA-256 when the host was asked to keep it for later sessions (a kept connection).
    let keptSHA256: String?

    init(child: ChildProcess, remoteDirectory: String?, become: Become? = nil, keptSHA256: String? = nil) {
        self.child = child
        self.remoteDirectory = remoteDirectory
        self.become = become
        self.keptSHA256 = keptSHA256
    }
}

/// Runs the runner on this machine, from a private temporary directory (mode 0700).
///
/// ```swift
/// let user = try await RunnerClient.withRunner(transport: LocalTransport(), runner: runner) { client in
///     try await client.exec(ExecParams(command: "id -un")).stdout
/// }
/// ```
public struct LocalTransport: Transport {
    /// The name reports use (several local transports, e.g. with different runner arguments, can be told apart).
    public let name: String
    /// Run the runner as another user through sudo (see `Become`); nil: as this process's user.
    public let become: Become?

    /// Creates the transport.
    public init(name: String = "local", become: Become? = nil) {
        self.name = name
        self.become = become
    }

    /// Copies the runner into a private directory and starts it.
    public func start(runner: RunnerBinary, arguments: [String]) async throws -> RunnerSession {
        var template = Array((NSTemporaryDirectory() + "/micro-runner.XXXXXX").utf8CString)
        guard let dirPointer = mkdtemp(&template) else {
            throw ClientError(
                .transport,
                "local: cannot create a private directory: \(String(cString: strerror(errno)))"
            )
        }
        let dir = String(cString: dirPointer)
        let target = dir + "/micro-runner"
        // Copied through a close-on-exec descriptor: a child forked by another session while this file is open
        // for writing would otherwise hold it open and make exec fail with ETXTBSY ("Text file busy").
        guard let bytes = FileManager.default.contents(atPath: runner.path), Self.write(bytes, to: target) else {
            try? FileManager.default.removeItem(atPath: dir)
            throw ClientError(
                .transport,
                "local: cannot copy the runner to \(dir): \(String(cString: strerror(errno)))"
            )
        }
        do {
            let child = try ChildProcess(
                executable: target,
                arguments: (try become?.runnerArguments() ?? []) + arguments
            )
            if let line = become?.passwordLine(), !line.isEmpty {
                do { try await child.send(line) } catch { child.terminate() }
            }
            return RunnerSession(child: child, remoteDirectory: dir, become: become)
        } catch {
            try? FileManager.default.removeItem(atPath: dir)
            throw error
        }
    }

    /// Waits for the runner and removes its directory.
    public func cleanup(_ session: RunnerSession) async {
        if let dir = session.remoteDirectory { try? FileManager.default.removeItem(atPath: dir) }
    }

    /// Writes a new 0700 file with O_CLOEXEC.
    static func write(_ data: Data, to path: String) -> Bool {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o700)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return data.withUnsafeBytes { raw in (try? Sys.writeAll(fd, raw)) != nil }
    }
}
