import MicroRunnerCrypto
import MicroRunnerHandlers
import MicroRunnerProtocol
import MicroRunnerSystem

/// How an agent is set up.
package struct AgentConfiguration: Sendable {
    /// The runner's version, sent in READY.
    package var version: String
    /// Lifetime in seconds, idle or busy; EXIT `ttl_expired` when it runs out.
    package var ttlSeconds: Double = 600
    /// Path of the runner's own executable, removed at exit unless `keepBinary`.
    package var selfPath: String?
    /// Device and inode of the file at `selfPath` when the runner started: at exit the path is unlinked only
    /// while it still names that file, never a new binary moved there since.
    package var selfIdentity: (device: UInt64, inode: UInt64)?
    /// Skip the self-delete (development).
    package var keepBinary = false
    /// Longest accepted input line (never less than 10 MiB, the Go peer's limit).
    package var maxLineBytes = 16 << 20
    /// Bytes of queued (pipelined) commands before the reader stops reading stdin.
    package var maxQueuedBytes = 64 << 20
    /// Where CMD lines come from.
    package var inputFD: Int32 = 0
    /// Where protocol lines go; nothing else is ever written there.
    package var outputFD: Int32 = 1
    /// Handlers by command type.
    package var handlers: [any CommandHandler] = Agent.defaultHandlers()
    /// The machine seam handlers use.
    package var host = Host()
    /// When set, only these command types are served; others answer UNSUPPORTED.
    package var allowedTypes: Set<CommandType>?
    /// Write diagnostics to stderr.
    package var verbose = false
    /// Ed25519 public key: when set, every CMD must be signed (PROTOCOL.md, Signatures).
    package var verifyKey: [UInt8]?
    /// Directory for the idempotency journal; `nil`: idempotency lives in memory only and nothing is written.
    package var stateDirectory: String?

    package init(version: String) {
        self.version = version
    }
}

/// The runner's serve loop: READY, then commands one at a time in wire order, then EXIT.
///
/// Two threads: a reader that frames and parses stdin (so CANCEL and EOF are seen while a command
/// runs) and the caller's thread, which serves commands and writes every protocol line.
package final class Agent: @unchecked Sendable {
    /// The protocol version spoken.
    package static let protocolVersion = "1"
    /// The extensions of PROTOCOL.md this runner speaks, advertised in READY.
    package static let extensions = [
        "cancel", "dry_run", "exec.stdin", "exec.max_output_bytes", "exec.signal", "file.content_base64",
        "file.chunked_write", "file.read_offset", "file.changed", "file.digest", "file.raw_content", "signatures",
        "idempotency",
        "run_if_succeeded", "exec.stream_batch", "file.skip_checksum",
        "file.running_checksum",
    ]

    /// The handlers the runner ships with.
    package static func defaultHandlers() -> [any CommandHandler] {
        [
            ExecHandler(), FileWriteHandler(), FileReadHandler(), SudoersHandler(), PackageHandler(), SshdHandler(),
            ServiceHandler(),
        ]
    }

    let config: AgentConfiguration
    let queue: InputQueue
    let output: OutputChannel
    let handlers: [CommandType: any CommandHandler]
    let state = ConditionLock()
    /// The running command, for CANCEL and signals (guarded by `state`).
    var running: (id: String, token: CancellationToken)?
    /// CANCELs for ids not (yet) seen running or queued (guarded by `state`).
    var earlyCancels: Set<String> = []
    var commandsTotal = 0
    var ttlDeadline: Int64 = .max
    /// Keep the raw bytes of each CMD's params (needed only to check signatures).
    var keepRawParams: Bool { config.verifyKey != nil }
    /// 128 random bits, new at every start, bound into every signature (lowercase hex).
    let nonce: String
    /// Command ids seen in this session (signature mode: a reused id is a replay).
    var usedIDs: Set<String> = []
    /// Successful commands by idempotency key.
    let idempotency: IdempotencyStore
    /// Ids of the most recent commands that succeeded (DONE, and exit status 0 for exec), for
    /// `metadata.run_if_succeeded`: at most 4096 ids of at most 256 bytes (about 1 MiB).
    var succeeded = RecentIDs(capacity: 4096)

    /// - Throws: `RunnerError` when the state directory cannot be used.
    package init(configuration: AgentConfiguration) throws(RunnerError) {
        var config = configuration
        config.maxLineBytes = max(config.maxLineBytes, 10 << 20)
        self.config = config
        // Only signatures need it; without them, start-up skips libsodium's initialisation.
        self.nonce = config.verifyKey == nil ? "" : Crypto.hex(Crypto.randomBytes(16))
        self.idempotency = try IdempotencyStore(stateDirectory: config.stateDirectory)
        self.queue = InputQueue(maxQueuedBytes: config.maxQueuedBytes)
        self.output = OutputChannel(fd: config.outputFD)
        var byType: [CommandType: any CommandHandler] = [:]
        for h in config.handlers { byType[h.type] = h }
        self.handlers = byType
    }

    /// Whether this runner serves `type` on this host.
    package func capability(_ type: CommandType) -> Bool {
        guard let handler = handlers[type] else { return false }
        if let allowed = config.allowedTypes, !allowed.contains(type) { return false }
        return handler.isAvailable(on: config.host)
    }

    /// The READY message for this runner.
    package func readyMessage() -> ReadyMessage {
        var capabilities: [String: Bool] = [:]
        for type in CommandType.all { capabilities[type.rawValue] = capability(type) }
        #if arch(x86_64)
        let arch = "amd64"
        #elseif arch(arm64)
        let arch = "arm64"
        #elseif arch(arm)
        let arch = "arm"
        #else
        let arch = "unknown"
        #endif
        #if os(Linux) || MR_LINUX  // MR_LINUX: Linux through a bare-metal triple (the aarch64 Embedded build)
        let platform = "linux"
        #elseif os(macOS)
        let platform = "darwin"
        #else
        let platform = "unknown"
        #endif
        var metadata = [
            "ttl": GoDuration.format(seconds: config.ttlSeconds),
            "protocol": Self.protocolVersion,
            "extensions": Self.extensions.joined(separator: ","),
            "max_line_bytes": String(config.maxLineBytes),
            "idempotency": idempotency.isDurable ? "journal" : "memory",
        ]
        if config.verifyKey != nil {
            // Says that signatures are required and binds them to this start; the key itself is never sent.
            metadata["signatures"] = "required"
            metadata["nonce"] = nonce
        }
        if config.host.rootDirectory != nil { metadata["root_dir"] = "confined" }
        // Who the runner is, so a controller shows the identity before it changes anything (an extension:
        // older controllers ignore unknown metadata keys).
        metadata["uid"] = String(config.host.effectiveUID)
        if let entry = getpwuid(config.host.effectiveUID), let name = entry.pointee.pw_name {
            metadata["user"] = String(cString: name)
        }
        return ReadyMessage(
            version: config.version,
            platform: platform,
            arch: arch,
            pid: Int(getpid()),
            capabilities: capabilities,
            metadata: metadata
        )
    }

    /// Serves until stdin closes, the TTL runs out or a stop signal arrives.
    /// - Returns: the process exit code (also sent in EXIT).
    package func run() -> Int32 {
        let start = Monotonic.now()
        ttlDeadline = Monotonic.deadline(from: start, seconds: config.ttlSeconds)
        send(.ready, readyMessage())
        startReader()

        while true {
            guard let item = queue.pop(until: ttlDeadline) else {
                return finish(.ttlExpired, code: 124)
            }
            switch item {
            case .command(let command, let rawParams, _, let content):
                serve(command, rawParams: rawParams, content: content)
                if Monotonic.now() >= ttlDeadline { return finish(.ttlExpired, code: 124) }
            case .reject(let error, let id):
                sendError(error, commandID: id)
            case .endOfInput:
                return finish(.stdinClosed, code: 0)
            case .terminate(let signal):
                return finish(.error, code: 128 + signal)
            }
        }
    }

    /// Stops the running command and ends the runner (from a signal thread).
    package func terminate(signal: Int32) {
        state.withLock { running?.token.cancel(.shutdown) }
        queue.push(.terminate(signal: signal))
    }

    /// CANCEL: stops the command if it runs, or drops it if it waits in the queue.
    func cancel(id: String) {
        state.withLock {
            if let running, running.id == id {
                running.token.cancel(.cancelled)
            } else if !queue.cancelQueued(id: id) {
                if earlyCancels.count > 1024 { earlyCancels.removeAll() }
                earlyCancels.insert(id)
            }
        }
    }

    func serve(_ command: CommandMessage, rawParams: [UInt8]?, content: [UInt8]? = nil) {
        commandsTotal += 1
        let started = Monotonic.now()
        do throws(RunnerError) {
            try admit(command, rawParams: rawParams, content: content)
            var fingerprint: String?
            if let key = command.idempotencyKey, !command.dryRun {
                guard let fp = try lookUp(key, for: command) else { return }  // answered from the journal
                fingerprint = fp
            }
            let handler = try handler(for: command)
            if queue.takeCancelled(id: command.id) {
                throw RunnerError(.cancelled, "\(command.type) \(command.id): cancelled before it started")
            }
            let (result, trailing) = try run(handler, command, content: content, started: started)
            let duration = Monotonic.seconds(since: started)
            let metadata = remember(command, fingerprint: fingerprint, result: result, duration: duration, trailing)
            noteSuccess(command.id, result)
            output.send(
                .done,
                DoneMessage(commandID: command.id, result: result, duration: duration, metadata: metadata),
                trailing: trailing
            )
        } catch {
            sendError(error, commandID: command.id)
        }
    }

    /// The checks before anything runs: the CMD's own fields, raw content's rules, the signature, and a chain's
    /// `run_if_succeeded`.
    private func admit(_ command: CommandMessage, rawParams: [UInt8]?, content: [UInt8]?) throws(RunnerError) {
        try command.validate()
        if content != nil {
            try Self.checkRawContent(command, signed: config.verifyKey != nil)
        }
        if let key = config.verifyKey {
            try verifySignature(command, rawParams: rawParams, key: key)
        }
        // ext: a pipelined batch that must stop at the first failure chains its commands this way, so the
        // rule holds however fast the runner is (a CANCEL sent after a failure can arrive too late).
        if let earlier = command.metadata?["run_if_succeeded"], !succeeded.contains(earlier) {
            throw RunnerError(.cancelled, "\(command.type) \(command.id): skipped because \(earlier) did not succeed")
        }
    }

    /// An idempotency key's earlier answer: replayed here (`nil`: nothing more to do), a conflict thrown, or, for a
    /// key not seen yet, the fingerprint to record the result under.
    private func lookUp(_ key: String, for command: CommandMessage) throws(RunnerError) -> String? {
        let fingerprint = IdempotencyStore.fingerprint(command)
        switch idempotency.lookup(key, fingerprint: fingerprint) {
        case .replay(let earlier):
            noteSuccess(command.id, earlier.result)
            var metadata = ["idempotent_replay": "true", "original_command_id": earlier.commandID]
            if earlier.truncated { metadata["result_truncated"] = "true" }
            send(
                .done,
                DoneMessage(
                    commandID: command.id,
                    result: earlier.result,
                    duration: earlier.duration,
                    metadata: metadata
                )
            )
            return nil
        case .conflict(let earlier):
            throw RunnerError(
                .conflict,
                "idempotency_key \"\(key)\" was used by \(earlier.commandID) (\(earlier.type)) with different params"
            )
        case .miss:
            return fingerprint
        }
    }

    /// The handler for the command's type, when this runner has it and the allow-list lets it run.
    private func handler(for command: CommandMessage) throws(RunnerError) -> any CommandHandler {
        guard let handler = handlers[command.type] else {
            if CommandType.all.contains(command.type) {
                throw RunnerError(
                    .unsupported,
                    "\(command.type) is not implemented by this runner (READY capabilities say false)"
                )
            }
            throw RunnerError(.unsupported, "unknown command type \"\(command.type)\"")
        }
        guard capability(command.type) else {
            throw RunnerError(
                .unsupported,
                "\(command.type) is not available on this runner (READY capabilities say false)"
            )
        }
        return handler
    }

    /// Runs the handler as the command in progress (a CANCEL finds it by id): its result and any raw bytes that
    /// follow the DONE.
    private func run(
        _ handler: any CommandHandler,
        _ command: CommandMessage,
        content: [UInt8]?,
        started: Int64
    ) throws(RunnerError) -> (JSONValue, [UInt8]?) {
        let token = CancellationToken()
        state.withLock {
            running = (command.id, token)
            if earlyCancels.remove(command.id) != nil { token.cancel(.cancelled) }
        }
        defer { state.withLock { running = nil } }
        let output = self.output
        let context = CommandContext(
            command: command,
            deadline: Monotonic.deadline(from: started, seconds: command.timeout),
            ttlDeadline: ttlDeadline,
            cancellation: token,
            host: config.host,
            content: content,
            emit: { event in output.send(.event, event) }
        )
        if let reason = token.stopReason {
            throw stopError(reason, what: "\(command.type) \(command.id)")
        }
        let result = try handler.run(context)
        return (result, context.trailing.bytes)
    }

    /// Records a keyed success in the journal and says in the DONE's metadata when that failed. Only successes are
    /// remembered (PROTOCOL.md): an exec that exits non-zero is retried for real. An answer with raw bytes after it
    /// is not: a replay would announce bytes it does not have.
    private func remember(
        _ command: CommandMessage,
        fingerprint: String?,
        result: JSONValue,
        duration: Double,
        _ trailing: [UInt8]?
    ) -> [String: String]? {
        guard let key = command.idempotencyKey, let fingerprint, DoneMessage.succeeded(result), trailing == nil else {
            return nil
        }
        // Durable (journal written and fsynced) before the controller can see DONE; when the journal write fails
        // the DONE says so, since a replay after a restart would then run the command again.
        let durable = idempotency.record(
            .init(
                key: key,
                fingerprint: fingerprint,
                type: command.type.rawValue,
                commandID: command.id,
                result: result,
                duration: duration
            )
        )
        return durable ? nil : ["idempotency_journal": "write_failed"]
    }

    /// Raw content (ext `file.raw_content`) is for `file.write` only, and is bound by its SHA-256 wherever the
    /// params alone must stand for the command: a signature covers the params, not the bytes after the line, and
    /// an idempotency key's fingerprint is taken from the params.
    static func checkRawContent(_ command: CommandMessage, signed: Bool) throws(RunnerError) {
        guard command.type == .fileWrite else {
            throw .invalid("\(command.type) \(command.id): content_length (raw content) is for file.write only")
        }
        if signed || command.idempotencyKey != nil, command.params["content_sha256"]?.stringValue == nil {
            throw .invalid(
                "file.write \(command.id): raw content needs content_sha256 when \(signed ? "commands are signed" : "an idempotency_key is given")"
            )
        }
    }

    /// Remembers a success for `run_if_succeeded` (the rule the client shares: `DoneMessage.succeeded`).
    func noteSuccess(_ id: String, _ result: JSONValue) {
        if DoneMessage.succeeded(result) { succeeded.insert(id) }
    }

    func send<T: WireEncodable>(_ type: MessageType, _ message: T) {
        output.send(type, message)
    }

    /// The one place where errors become wire ERRORs.
    func sendError(_ error: RunnerError, commandID: String?) {
        if config.verbose, let cause = error.cause {
            log("\(commandID ?? "-"): \(error) (cause: \(cause))")
        }
        send(
            .error,
            ErrorMessage(
                commandID: commandID.flatMap { $0.isEmpty ? nil : $0 },
                code: error.code,
                // Bounded whatever path built it: no answer line grows with its input.
                message: RunnerError.echo(error.message, maxBytes: RunnerError.maxMessageBytes),
                details: error.details.isEmpty
                    ? nil : error.details.mapValues { RunnerError.echo($0, maxBytes: RunnerError.maxMessageBytes) },
                retryable: error.retryable,
                retryAfter: error.retryAfter
            )
        )
    }

    func finish(_ reason: ExitReason, code: Int32) -> Int32 {
        state.withLock { running?.token.cancel(.shutdown) }
        for handler in handlers.values { handler.cleanUpAtExit() }
        var deleted = false
        if !config.keepBinary, let path = config.selfPath {
            var now = stat()
            if let identity = config.selfIdentity, lstat(path, &now) == 0,
                UInt64(now.st_dev) != identity.device || UInt64(now.st_ino) != identity.inode
            {
                // Replaced while running (an in-place upgrade with mv): the new file is not this runner's.
                log("\(path) is no longer this runner's executable (replaced while it ran); left in place")
            } else {
                deleted = unlink(path) == 0
                if !deleted && config.verbose { log("cannot remove \(path): \(errnoText(errno))") }
            }
        }
        send(
            .exit,
            ExitMessage(reason: reason, exitCode: Int(code), selfDeleted: deleted, commandsTotal: commandsTotal)
        )
        return code
    }

    func log(_ text: String) {
        let line = "micro-runner: " + text + "\n"
        var copy = line
        copy.withUTF8 { _ = writeAll(2, UnsafeRawBufferPointer($0)) }
    }
}

/// The last `capacity` ids inserted (a ring), for membership tests: bounded in count, and so in bytes, since
/// every id is at most 256 bytes.
struct RecentIDs {
    let capacity: Int
    private var members: Set<String> = []
    private var ring: [String] = []
    private var next = 0

    init(capacity: Int) { self.capacity = capacity }

    func contains(_ id: String) -> Bool { members.contains(id) }

    mutating func insert(_ id: String) {
        guard !members.contains(id) else { return }
        if ring.count < capacity {
            ring.append(id)
        } else {
            members.remove(ring[next])
            ring[next] = id
            next = (next + 1) % capacity
        }
        members.insert(id)
    }
}

/// Writes whole protocol lines to the output descriptor, one writer at a time.
final class OutputChannel: @unchecked Sendable {
    let fd: Int32
    private let lock = ConditionLock()

    init(fd: Int32) {
        self.fd = fd
    }

    /// - Parameter trailing: raw bytes written right after the line, under the same lock, so no EVENT of another
    ///   thread lands between them (ext `file.raw_content`).
    func send<T: WireEncodable>(_ type: MessageType, _ message: T, trailing: [UInt8]? = nil) {
        let data = WireEncoder().encodeToValue(message)
        var line = Envelope.line(type: type, timestamp: wallClockTimestamp(), data: data)
        lock.withLock {
            // A write error means the controller is gone; stdin EOF will follow and end the runner.
            line.withUnsafeMutableBytes { _ = writeAll(fd, UnsafeRawBufferPointer($0)) }
            trailing?.withUnsafeBytes { _ = writeAll(fd, $0) }
        }
    }
}
