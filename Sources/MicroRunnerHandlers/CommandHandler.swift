import MicroRunnerProtocol
import MicroRunnerSystem

/// Everything a handler may use while it serves one command.
package struct CommandContext: Sendable {
    /// The command being served.
    package var command: CommandMessage
    /// Monotonic nanoseconds by which the command must end (the earlier of its timeout and the runner's TTL).
    package var deadline: Int64
    /// Monotonic nanoseconds at which the runner's TTL ends.
    package var ttlDeadline: Int64
    /// Set when the controller cancels, the TTL runs out or the runner is told to stop.
    package var cancellation: CancellationToken
    /// Sends an EVENT for this command.
    package var emit: @Sendable (EventMessage) -> Void
    /// Where processes and files are reached.
    package var host: Host
    /// The raw bytes that followed the CMD line (ext `file.raw_content`), read whole by the stdin reader.
    package var content: [UInt8]?
    /// Raw bytes a handler answers with, written right after the DONE line (ext `file.raw_content`).
    package let trailing = TrailingContent()

    package init(
        command: CommandMessage,
        deadline: Int64,
        ttlDeadline: Int64 = .max,
        cancellation: CancellationToken,
        host: Host,
        content: [UInt8]? = nil,
        emit: @escaping @Sendable (EventMessage) -> Void
    ) {
        self.command = command
        self.content = content
        self.deadline = deadline
        self.ttlDeadline = ttlDeadline
        self.cancellation = cancellation
        self.host = host
        self.emit = emit
    }

    /// Sends an EVENT with this command's id.
    package func event(_ message: String, level: EventLevel = .info, metadata: [String: String]? = nil) {
        emit(EventMessage(commandID: command.id, level: level, message: message, metadata: metadata))
    }

    /// A line handler for `ProcessSpec.onLine` that sends each output line as an EVENT of this command
    /// (`metadata.stream` = `stdout` | `stderr`).
    /// - Parameter skipEmpty: drop empty lines (package manager chatter).
    /// `bytes` as text, invalid UTF-8 repaired as `String(decoding:as:)` does, copied in with one memcpy: the
    /// Embedded `-Osize` `String(decoding:)` copied byte by byte (3% of the runner's time in a 100 MB stream).
    static func text(_ bytes: ArraySlice<UInt8>) -> String {
        bytes.withUnsafeBytes { raw in
            String(unsafeUninitializedCapacity: raw.count) { buffer in
                guard let source = raw.baseAddress, let target = buffer.baseAddress else { return 0 }
                UnsafeMutableRawPointer(target).copyMemory(from: source, byteCount: raw.count)
                return raw.count
            }
        }
    }

    package func lineEvents(skipEmpty: Bool = false) -> @Sendable (OutputStream, ArraySlice<UInt8>) -> Void {
        let id = command.id
        let emit = self.emit
        return { stream, line in
            if skipEmpty && line.isEmpty { return }
            emit(
                EventMessage(
                    commandID: id,
                    level: .info,
                    message: Self.text(line),
                    metadata: ["stream": stream.rawValue]
                )
            )
        }
    }

    /// Runs a helper tool found in the host's PATH (visudo, sshd, systemctl, a package manager) with this
    /// command's deadline, TTL and cancellation. Stopping it is an error (`TIMEOUT`, `CANCELLED`); a non-zero
    /// exit is returned for the caller to judge.
    /// - Parameters:
    ///   - tool: a name looked up in PATH, or an absolute path.
    ///   - stream: send its output lines as EVENTs.
    ///   - environment: additions to the environment.
    package func runTool(
        _ tool: String,
        _ args: [String],
        stream: Bool = false,
        environment: [String: String] = [:]
    ) throws(RunnerError) -> ProcessOutcome {
        guard let path = host.which(tool) else {
            throw RunnerError(.notFound, "\(command.type): \(tool) is not installed")
        }
        var spec = ProcessSpec(executable: path, arguments: [tool] + args)
        spec.environment = environment
        spec.deadline = deadline
        spec.ttlDeadline = ttlDeadline
        spec.cancellation = cancellation
        spec.maxOutputBytes = 1 << 20
        if stream { spec.onLine = lineEvents(skipEmpty: true) }
        let out = try host.processes.run(spec)
        switch out.stoppedBy {
        case nil: return out
        case .deadline?:
            throw RunnerError(
                .timeout,
                "\(command.type): \(tool) did not finish within \(command.timeout)s",
                retryable: true
            )
        case .token(let reason)?:
            throw stopError(reason, what: "\(command.type): \(tool)")
        }
    }

    /// Decodes the command's params as `T`.
    /// - Throws: `RunnerError` `INVALID_CMD` naming the field.
    package func params<T: WireDecodable>(_ type: T.Type) throws(RunnerError) -> T {
        do {
            return try T(fields: WireFields(command.params, path: "params"))
        } catch {
            throw RunnerError.invalid("\(command.type): \(error)")
        }
    }
}

/// Serves one command type. Class-bound: the agent keeps handlers of different types in one table, and the
/// Embedded runner allows existentials only of class-bound protocols.
package protocol CommandHandler: AnyObject, Sendable {
    /// The command type served.
    var type: CommandType { get }
    /// Whether this host can serve it (READY's capability).
    func isAvailable(on host: Host) -> Bool
    /// Serves one command.
    /// - Returns: the result object for DONE.
    /// - Throws: `RunnerError` for every failure; the agent maps it to ERROR.
    func run(_ context: CommandContext) throws(RunnerError) -> JSONValue
    /// Removes what must not outlive the runner (e.g. unfinished upload staging files); called at EXIT.
    func cleanUpAtExit()
}

extension CommandHandler {
    /// Nothing to clean up.
    package func cleanUpAtExit() {}

    /// Encodes a result for DONE.
    package func encodeResult<T: WireEncodable>(_ result: T) -> JSONValue {
        WireEncoder().encodeToValue(result)
    }
}

/// The seam between handlers and the machine: process spawning and the paths handlers touch.
/// Tests point these at their own roots instead of the system's.
package struct Host: Sendable {
    /// Spawns processes.
    package var processes = ProcessRunner()
    /// PATH used to find tools (apt-get, systemctl, visudo, sshd, ...); `nil` uses the runner's PATH.
    package var searchPath: String? = nil
    /// The effective user id of the runner (0: root).
    package var effectiveUID: UInt32 = geteuid()
    /// Resolves the paths of file.read and file.write: once, through descriptors, and confined to --root-dir
    /// when the runner was started with it.
    package var resolver = PathResolver()
    /// The confinement root (resolved, absolute), when file commands are confined.
    package var rootDirectory: String? { resolver.root?.path }
    /// Pass pkg.ensure `options` to the manager as given (`--unsafe-pkg-options`); else they must pass an
    /// allow-list.
    package var rawPackageOptions = false
    /// Where sudoers.ensure installs rules (sudo's `@includedir`).
    package var sudoersDirectory = "/etc/sudoers.d"
    /// The sshd configuration sshd.harden edits (`MICRO_RUNNER_SSHD_CONFIG` overrides it, for hosts that keep
    /// it elsewhere).
    package var sshdConfigPath = "/etc/ssh/sshd_config"

    package init() {
        if let p = getenv("PATH") { searchPath = String(cString: p) }
        if let p = getenv("MICRO_RUNNER_SSHD_CONFIG") { sshdConfigPath = String(cString: p) }
    }

    /// Under --root-dir, refuses a regular file with more than one hard link: another name for it may lie
    /// outside the root (a link made by someone who could read it there).
    /// - Throws: `RunnerError` `PERMISSION_DENIED`.
    package func refuseHardLinks(_ st: stat, path: String, what: String) throws(RunnerError) {
        guard let root = rootDirectory, (st.st_mode & S_IFMT) == S_IFREG, st.st_nlink > 1 else { return }
        throw RunnerError(
            .permissionDenied,
            "\(what): \(path) has \(st.st_nlink) hard links; under --root-dir \(root) only files with one name are served"
        )
    }

    /// The absolute path of a tool on this host, if installed.
    package func which(_ tool: String) -> String? {
        ProcessRunner.resolveExecutable(tool, path: searchPath)
    }
}

/// Raw bytes a handler leaves for the runner to write right after its DONE line (ext `file.raw_content`); the
/// result must say how many (`content_length`).
package final class TrailingContent: @unchecked Sendable {
    /// Set once, by the handler, on the worker thread that then writes the DONE.
    package var bytes: [UInt8]?

    package init() {}
}
