import Foundation
import Logging
import MicroRunnerProtocol

/// How a command ended: DONE with a result, or ERROR.
public enum Answer: Sendable, Equatable {
    case done(DoneMessage)
    case error(ErrorMessage)

    /// The command id.
    public var commandID: String? {
        switch self {
        case .done(let d): d.commandID
        case .error(let e): e.commandID
        }
    }

    /// The result, or the ERROR as a thrown `CommandError`.
    public func result() throws -> DoneMessage {
        switch self {
        case .done(let d): return d
        case .error(let e): throw CommandError(e)
        }
    }

    /// ERROR, or an exec whose exit status is not 0.
    public var failed: Bool {
        switch self {
        case .error: true
        case .done(let d): !d.succeeded
        }
    }
}

/// A session with one runner: typed commands, events, pipelining, cancel, close.
///
/// Works with any runner that speaks PROTOCOL.md (ours or the Go original). Use it through
/// `RunnerClient.withRunner`, which starts the runner, waits for READY, and always closes and cleans up.
///
/// ```swift
/// let result = try await RunnerClient.withRunner(transport: LocalTransport(), runner: runner) { client in
///     guard await client.supports("file.digest") else { throw MyError.oldRunner }
///     let r = try await client.exec(ExecParams(command: "id -un"))
///     return r.stdout
/// }
/// ```
public actor RunnerClient {
    /// The transport's name for the host.
    public nonisolated let hostName: String
    /// The identity the runner was started to take (`Become`), nil when it runs as the login user; READY's
    /// `metadata["user"]` and `["uid"]` say who it is.
    public nonisolated var become: Become? { session.become }
    /// READY as the runner sent it (empty until it arrived).
    public private(set) var ready = ReadyMessage(
        version: "",
        platform: "",
        arch: "",
        pid: 0,
        capabilities: [:],
        metadata: [:]
    )
    /// EXIT, once it arrived.
    public private(set) var exit: ExitMessage?
    /// Every EVENT of this session, in order, bounded in bytes: if nobody reads, the newest 256 are kept, each
    /// message cut to 4 KiB (about 1 MiB a host at most). A command's own `onEvent` gets every event whole.
    public nonisolated let events: AsyncStream<EventMessage>

    let session: RunnerSession
    let transport: any Transport
    private let eventsContinuation: AsyncStream<EventMessage>.Continuation
    private var waiters: [String: Promise<Answer>] = [:]
    /// Raw bytes that followed DONE lines (ext `file.raw_content`), by command id, until taken.
    private var rawAnswers: [String: ArraySlice<UInt8>] = [:]
    private var eventHandlers: [String: @Sendable (EventMessage) -> Void] = [:]
    private let readyPromise = Promise<Void>()
    private let exitPromise = Promise<Void>()
    private var outputEnded = false
    /// The session was closed to stop a command (a runner without CANCEL): closing it again is not an error.
    private var endedByCancel = false
    private var closed = false
    /// The last lines the host printed before READY that are not the protocol (a ForceCommand's or nologin's
    /// refusal, "Please login as the user ubuntu"): quoted when the session ends without READY. At most 3 lines
    /// of 512 bytes.
    private var textBeforeReady: [String] = []
    private var nextID = 0
    /// Signs each CMD when set (see `CommandSigner`).
    var signer: (any CommandSigning)?

    init(session: RunnerSession, transport: any Transport, signer: (any CommandSigning)?) {
        self.session = session
        self.transport = transport
        self.hostName = transport.name
        self.signer = signer
        (events, eventsContinuation) = AsyncStream.makeStream(
            of: EventMessage.self,
            bufferingPolicy: .bufferingNewest(Self.bufferedEvents)
        )
    }

    /// Starts a runner through `transport`, waits for READY, runs `body`, then closes the runner (stdin
    /// closed, EXIT read) and cleans up, also when `body` throws.
    /// - Parameters:
    ///   - transport: where and how to run it.
    ///   - runner: the binary to upload.
    ///   - arguments: runner flags (e.g. `--ttl 5m`).
    ///   - startTimeout: how long to wait for READY, upload included.
    ///   - signer: signs every CMD (for a runner started with `--verify-key`).
    ///   - logger: where the session's start (READY: version, architecture, milliseconds), end and failure are
    ///     logged at `.debug`, with `host`; `nil`: nothing is logged.
    ///   - body: what to do with the runner.
    /// - Returns: what `body` returns.
    /// - Throws: `ClientError` for transport and start failures, or what `body` throws.
    public static func withRunner<T: Sendable>(
        transport: any Transport,
        runner: RunnerBinary,
        arguments: [String] = [],
        startTimeout: Duration = .seconds(60),
        signer: (any CommandSigning)? = nil,
        logger: Logger? = nil,
        _ body: @Sendable (RunnerClient) async throws -> T
    ) async throws -> T {
        // One deadline for upload, start and READY together: a host that authenticates and then never reads
        // (a `sleep` in its rc) must not hold the caller for longer than it asked.
        let started = ContinuousClock.now
        let session = try await within(startTimeout, "\(transport.name): the runner was not started") {
            try await transport.start(runner: runner, arguments: arguments)
        }
        let client = RunnerClient(session: session, transport: transport, signer: signer)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.pump() }
            do {
                try await client.waitForReady(timeout: max(.zero, startTimeout - (ContinuousClock.now - started)))
                if let logger {
                    let ready = await client.ready
                    let elapsed = ContinuousClock.now - started
                    logger.debug(
                        "runner ready",
                        metadata: [
                            "host": "\(transport.name)", "version": "\(ready.version)", "arch": "\(ready.arch)",
                            "ms": "\(elapsed.inMilliseconds)",
                        ]
                    )
                }
                let value = try await body(client)
                try await client.close()
                try await group.waitForAll()
                logger?.debug("runner closed", metadata: ["host": "\(transport.name)"])
                return value
            } catch {
                logger?.debug(
                    "session ended by an error",
                    metadata: ["host": "\(transport.name)", "error": "\(error)"]
                )
                await client.abort()
                try? await group.waitForAll()
                throw error
            }
        }
    }

    /// `operation`'s value, or `ClientError.startTimeout` once `timeout` has passed (the operation is then
    /// cancelled: a transport's start stops its ssh).
    static func within<T: Sendable>(
        _ timeout: Duration,
        _ what: String,
        _ operation: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await operation() }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let value = first else {
                throw ClientError(.startTimeout, "\(what) within \(timeout) (upload included)")
            }
            return value
        }
    }

    // MARK: Receiving

    /// Where `{"type":` starts in `line`, if anywhere.
    static func envelopeStart(in line: [UInt8]) -> Int? {
        let marker = Array(#"{"type":"#.utf8)
        guard line.count >= marker.count else { return nil }
        return (0...(line.count - marker.count)).first { line[$0..<($0 + marker.count)].elementsEqual(marker) }
    }

    /// Reads the runner's output until it ends; dispatches each line.
    func pump() async {
        for await line in session.child.lines {
            session.child.consumed(line.count)
            receive(line)
        }
        outputEnded = true
        if let failure = session.child.stdoutFailure {
            failAll(ClientError(.protocolViolation, "the runner on \(hostName) \(failure); the session was ended"))
            return
        }
        let status = await session.child.waitForExit(timeout: .seconds(5))
        let rawStderr = await session.child.stderrTextAtEOF()
        let stderr = transport.explain(stderr: rawStderr)
        if exit == nil, ready.version.isEmpty, let become = session.become {
            // Before READY under become: sudo (or the launcher) refused; nothing ran on the host.
            failAll(ClientError(.becomeFailed, become.explainFailure(host: hostName, stderr: stderr)))
            return
        }
        if exit == nil, ready.version.isEmpty {
            // The host ended the session before the runner said READY: what it printed is the reason (sshd's
            // ForceCommand, nologin and cloud images print their refusals on stdout, and ssh's own on stderr).
            let said = textBeforeReady.isEmpty ? "" : "the host said: " + textBeforeReady.joined(separator: " / ")
            let both = [said, stderr == "no message on stderr" || stderr == "ssh failed" ? "" : stderr]
                .filter { !$0.isEmpty }.joined(separator: "; ")
            let kind: ClientError.Kind =
                rawStderr.contains("micro-runner-bootstrap:")
                ? .bootstrap : !textBeforeReady.isEmpty ? .refusedByHost : transport.failureKind(stderr: rawStderr)
            failAll(
                ClientError(
                    kind,
                    "\(hostName): the session ended before the runner started (status \(status.map(String.init) ?? "unknown")): "
                        + (both.isEmpty ? stderr : both)
                )
            )
            return
        }
        let why =
            exit != nil
            ? "runner on \(hostName) has exited (\(exit!.reason))"
            : "runner on \(hostName) exited unexpectedly (status \(status.map(String.init) ?? "unknown")): \(stderr)"
        failAll(ClientError(.runnerExited, why))
    }

    private func receive(_ received: [UInt8]) {
        var line = received
        // An answer with raw bytes after it arrives as one item: the line, `\n`, the bytes (ChildProcess). The
        // bytes stay where they are (a slice of the item): a 4 MiB copy per fetch window less.
        var raw: ArraySlice<UInt8>?
        if let nl = firstNewline(in: received, from: 0) {
            line = Array(received[..<nl])
            raw = received[(nl + 1)...]
        }
        // The bootstrap's empty line, which ends whatever a login rc printed without a newline.
        if line.isEmpty || line == [0x0D] { return }
        // Text a login rc printed just before the runner's first line (no newline in between): report it and
        // read the message that follows it.
        if line.first != UInt8(ascii: "{"), let start = Self.envelopeStart(in: line) {
            let junk = String(decoding: line[..<start], as: UTF8.self)
            eventsContinuation.yield(
                EventMessage(commandID: "", level: .warn, message: "text before the runner's output: \(junk)")
            )
            line = Array(line[start...])
        }
        let envelope: Envelope
        do {
            envelope = try Envelope.parse(line: line, keepRawParams: false)
        } catch {
            // Not the protocol: a shell banner, a host's refusal, or a runner writing garbage. Say so, keep the
            // host's last words before READY for the error, and keep reading.
            if ready.version.isEmpty {
                let text = String(decoding: line.prefix(512), as: UTF8.self).trimmingCharacters(
                    in: .whitespacesAndNewlines
                )
                if !text.isEmpty { textBeforeReady = Array((textBeforeReady + [text]).suffix(3)) }
            }
            eventsContinuation.yield(
                EventMessage(commandID: "", level: .warn, message: "unparseable line from runner: \(error.message)")
            )
            return
        }
        let decoder = WireDecoder()
        switch envelope.type {
        case .ready:
            if let r = try? decoder.decode(ReadyMessage.self, from: envelope.data) {
                ready = r
                session.runnerPID.withLock { $0 = r.pid > 0 ? r.pid : nil }
                readyPromise.complete(.success(()))
            }
        case .event:
            guard let e = try? decoder.decode(EventMessage.self, from: envelope.data) else { return }
            eventHandlers[e.commandID]?(e)
            eventsContinuation.yield(Self.bounded(e))
        case .done:
            guard let d = try? decoder.decode(DoneMessage.self, from: envelope.data) else { return }
            if let raw, waiters[d.commandID] != nil { rawAnswers[d.commandID] = raw }
            resolve(d.commandID, .done(d))
        case .error:
            guard let e = try? decoder.decode(ErrorMessage.self, from: envelope.data) else { return }
            if let id = e.commandID {
                resolve(id, .error(e))
            } else if waiters.count == 1, let only = waiters.keys.first {
                // An ERROR without an id while exactly one command is outstanding can only be about a line
                // we sent (e.g. too long): hand it to that command rather than hang.
                resolve(only, .error(e))
            }
        case .exit:
            exit = try? decoder.decode(ExitMessage.self, from: envelope.data)
            exitPromise.complete(.success(()))
        default:
            break
        }
    }

    /// How many events `events` keeps for a reader that does not keep up.
    static let bufferedEvents = 256
    /// The longest event message `events` keeps (a command's `onEvent` gets it whole).
    static let bufferedMessageBytes = 4096

    /// `event` with its message cut to `bufferedMessageBytes` (on a UTF-8 boundary), marked when cut.
    static func bounded(_ event: EventMessage) -> EventMessage {
        guard event.message.utf8.count > bufferedMessageBytes else { return event }
        var cut = event
        var end = event.message.utf8.index(event.message.utf8.startIndex, offsetBy: bufferedMessageBytes)
        while end > event.message.utf8.startIndex && end.samePosition(in: event.message.unicodeScalars) == nil {
            end = event.message.utf8.index(before: end)
        }
        cut.message = String(event.message[..<end]) + " …[cut: \(event.message.utf8.count) bytes]"
        return cut
    }

    /// The raw bytes that came after a command's DONE line (ext `file.raw_content`), once: taking them forgets them.
    func takeRawAnswer(_ id: String) -> ArraySlice<UInt8>? {
        rawAnswers.removeValue(forKey: id)
    }

    private func resolve(_ id: String, _ answer: Answer) {
        eventHandlers[id] = nil
        waiters.removeValue(forKey: id)?.complete(.success(answer))
    }

    private func failAll(_ error: ClientError) {
        for (_, w) in waiters { w.complete(.failure(error)) }
        waiters = [:]
        eventHandlers = [:]
        readyPromise.complete(.failure(error))
        exitPromise.complete(exit == nil ? .failure(error) : .success(()))
        eventsContinuation.finish()
    }

    func waitForReady(timeout: Duration) async throws {
        let name = hostName
        try await readyPromise.value(
            timeout: timeout,
            orFail: ClientError(.startTimeout, "no READY from \(name) within \(timeout)")
        )
    }

    // MARK: Negotiation

    /// The extensions READY listed (`metadata.extensions`; none for the Go original).
    public var extensions: Set<String> {
        Set((ready.metadata["extensions"] ?? "").split(separator: ",").map { String($0) })
    }

    /// Whether the runner speaks the PROTOCOL.md extension `name` (`dry_run`, `cancel`, `run_if_succeeded`,
    /// `file.content_base64`, `file.chunked_write`, ...). An older runner ignores what it does not know, so the
    /// client uses an extension only when it is listed.
    public func supports(_ name: String) -> Bool { extensions.contains(name) }

    /// `micro-runner 0.1.0 on web1`, for messages.
    var runnerDescription: String {
        "the runner on \(hostName) (version \(ready.version.isEmpty ? "unknown" : ready.version))"
    }

    /// Refuses, before anything is sent, a command the runner cannot serve or would misread.
    func check(_ command: CommandMessage) throws {
        guard ready.capabilities[command.type.rawValue] == true else {
            // The usual reason on a real fleet: the runner is the login user's, and these need root.
            let needsRoot: Set<CommandType> = [.pkgEnsure, .serviceReload, .sudoersEnsure, .sshdHarden]
            if needsRoot.contains(command.type), let uid = ready.metadata["uid"], uid != "0" {
                let who = ready.metadata["user"].map { "\($0), uid \(uid)" } ?? "uid \(uid)"
                throw ClientError(
                    .unsupported,
                    "\(command.type) needs root, and the runner on \(hostName) runs as \(who): start it as root with "
                        + "become (mrctl -b/--become, ansible_become=yes; SSHOptions.become in the library)"
                )
            }
            throw ClientError(
                .unsupported,
                "\(command.type): \(runnerDescription) does not offer it (READY capabilities: false or absent)"
            )
        }
        if command.dryRun && !supports("dry_run") {
            throw ClientError(
                .unsupported,
                "\(command.type): \(runnerDescription) does not speak dry_run and would run it for real; nothing was sent"
            )
        }
    }

    // MARK: Sending

    /// A new command id, unique in this session.
    public func makeID() -> String {
        nextID += 1
        return "c\(nextID)"
    }

    /// Sends one command and waits for its DONE or ERROR.
    /// - Parameters:
    ///   - command: the command (its `signature` is filled in when this client signs).
    ///   - onEvent: called for each EVENT of this command, in order.
    /// - Returns: how it ended.
    /// - Throws: `ClientError` when the runner is gone.
    public func send(
        _ command: CommandMessage,
        onEvent: (@Sendable (EventMessage) -> Void)? = nil
    ) async throws
        -> Answer
    {
        try check(command)
        let line = try encode(command)
        let promise = try register(command.id, onEvent)
        do {
            try await session.child.send(line)
        } catch {
            waiters[command.id] = nil
            throw explained(error)
        }
        return try await answer(promise, command)
    }

    /// Sends `command` and returns the promise of its answer without waiting for it (a pipeline keeps several
    /// in flight and waits for them in order with `awaitAnswer`).
    /// - Parameter content: raw content that follows the line (ext `file.raw_content`, announced by the command's
    ///   `content_length`); written with the line as one unit, so nothing else (a CANCEL) comes between them.
    func startSending(_ command: CommandMessage, content: [UInt8]? = nil) async throws -> Promise<Answer> {
        try await startSending(command, raw: content.map { .bytes($0) })
    }

    /// `startSending(_:content:)` with the raw content taken from an open file by splice(2): the bytes never pass
    /// through this process's memory. The file must stay open until this returns.
    func startSending(
        _ command: CommandMessage,
        contentFile: (fd: Int32, offset: Int, count: Int)
    ) async throws
        -> Promise<Answer>
    {
        try await startSending(
            command,
            raw: .file(fd: contentFile.fd, offset: contentFile.offset, count: contentFile.count)
        )
    }

    /// Writes the command's line and its raw content (ext `file.raw_content`) as one unit, and registers for the
    /// answer.
    private func startSending(_ command: CommandMessage, raw: StdinPart?) async throws -> Promise<Answer> {
        try check(command)
        let line = try encode(command)
        if let raw {
            guard supports("file.raw_content"), command.params["content_length"]?.intValue == raw.count else {
                throw ClientError(.usage, "raw content for \(command.id) without a matching content_length or runner")
            }
        }
        let promise = try register(command.id, nil)
        do {
            try await session.child.send(parts: [.bytes(line)] + (raw.map { [$0] } ?? []))
        } catch {
            waiters[command.id] = nil
            throw explained(error)
        }
        return promise
    }

    /// The answer to a command `startSending` sent, within its timeout and `answerGrace`.
    func awaitAnswer(_ promise: Promise<Answer>, _ command: CommandMessage) async throws -> Answer {
        try await answer(promise, command)
    }

    /// How long after a command's own timeout its answer may still take: the runner answers `TIMEOUT` itself
    /// about 0.5 s after the deadline (TERM, then KILL), and a 16 MiB answer crosses a slow link well within.
    static let answerGrace: Duration = .seconds(30)

    /// Waits for `command`'s answer, at most its timeout and `answerGrace`: a runner that keeps the session
    /// busy without answering (a flood of EVENTs, or nothing) is ended, and the command fails, instead of
    /// holding the caller past what it asked for.
    private func answer(_ promise: Promise<Answer>, _ command: CommandMessage) async throws -> Answer {
        let limit = Duration.seconds(max(1, command.timeout)) + Self.answerGrace
        let name = hostName
        do {
            return try await promise.value(
                timeout: limit,
                orFail: ClientError(
                    .answerTimeout,
                    "the runner on \(name) did not answer \(command.id) within \(limit) (its timeout and 30 s); the session was ended"
                )
            )
        } catch let error as ClientError where error.kind == .answerTimeout {
            waiters[command.id] = nil
            eventHandlers[command.id] = nil
            await abort()
            throw error
        }
    }

    /// Sends several commands and returns their answers in order.
    ///
    /// Without `stopOnFailure`, or with a runner that speaks `run_if_succeeded`, they go out at once (one write;
    /// the runner queues them in order), so a batch costs about one round trip plus run time; with
    /// `stopOnFailure` each command then names the one before it, and the runner skips the rest after a failure
    /// (`CANCELLED`), exactly, however fast it is. A runner without `run_if_succeeded` gets them one at a
    /// time, and the ones after a failure are not sent (their answers are `CANCELLED`, made here).
    /// - Parameters:
    ///   - commands: the commands, in the order they run (each with its own `id`).
    ///   - stopOnFailure: stop at the first ERROR or non-zero exec exit.
    public func sendBatch(_ commands: [CommandMessage], stopOnFailure: Bool = false) async throws -> [Answer] {
        for c in commands { try check(c) }
        if stopOnFailure && !supports("run_if_succeeded") {
            var answers: [Answer] = []
            for c in commands {
                if let failed = answers.last, failed.failed {
                    answers.append(
                        .error(
                            ErrorMessage(
                                commandID: c.id,
                                code: .cancelled,
                                message: "not sent: \(failed.commandID ?? "an earlier command") did not succeed"
                            )
                        )
                    )
                    continue
                }
                answers.append(try await send(c))
            }
            return answers
        }
        var commands = commands
        if stopOnFailure {
            for i in commands.indices.dropFirst() {
                commands[i].metadata = (commands[i].metadata ?? [:]).merging(["run_if_succeeded": commands[i - 1].id]) {
                    $1
                }
            }
        }
        var bytes: [UInt8] = []
        var promises: [Promise<Answer>] = []
        for c in commands {
            bytes += try encode(c)
            promises.append(try register(c.id, nil))
        }
        try await session.child.send(bytes)
        var answers: [Answer] = []
        for (promise, command) in zip(promises, commands) {
            answers.append(try await answer(promise, command))
        }
        return answers
    }

    /// `error`, or why the client ended the session when it did so for what the runner sent (a line or a raw
    /// answer over the limit): a write that failed because of it says that, not only that the runner is gone.
    private func explained(_ error: Error) -> Error {
        guard let failure = session.child.stdoutFailure else { return error }
        return ClientError(.protocolViolation, "the runner on \(hostName) \(failure); the session was ended")
    }

    private func register(_ id: String, _ onEvent: (@Sendable (EventMessage) -> Void)?) throws -> Promise<Answer> {
        if outputEnded || closed {
            throw closed
                ? ClientError(.closed, "runner on \(hostName) is gone")
                : explained(ClientError(.runnerExited, "runner on \(hostName) is gone"))
        }
        guard waiters[id] == nil else { throw ClientError(.usage, "command id \(id) is already in flight") }
        let promise = Promise<Answer>()
        waiters[id] = promise
        if let onEvent { eventHandlers[id] = onEvent }
        return promise
    }

    private func encode(_ command: CommandMessage) throws -> [UInt8] {
        var command = command
        if let signer {
            command.signature = try signer.signature(for: command, nonce: ready.metadata["nonce"] ?? "")
        }
        let data = WireEncoder().encodeToValue(command)
        return Envelope.line(type: .command, timestamp: Self.timestamp(), data: data)
    }

    static func timestamp() -> String {
        let now = Date().timeIntervalSince1970
        let seconds = Int(now.rounded(.down))
        return Timestamp.format(seconds: seconds, nanoseconds: Int((now - Double(seconds)) * 1e9))
    }

    /// Stops a running or queued command: CANCEL (ext) when the runner speaks it (the command then answers
    /// `CANCELLED`); otherwise, since an older runner ends the session on a message it does not know, the
    /// session is closed instead, which stops the command with the runner (its answer fails with
    /// `runnerExited`).
    public func cancel(_ commandID: String) async throws {
        guard supports("cancel") else {
            endedByCancel = true
            await abort()
            return
        }
        try await sendCancel(commandID)
    }

    private func sendCancel(_ commandID: String) async throws {
        var message = CancelMessage(commandID: commandID)
        if let signer {
            message.signature = try signer.cancelSignature(commandID: commandID, nonce: ready.metadata["nonce"] ?? "")
        }
        let data = WireEncoder().encodeToValue(message)
        try await session.child.send(Envelope.line(type: .cancel, timestamp: Self.timestamp(), data: data))
    }

    // MARK: Ending

    /// Closes stdin, waits for EXIT (the runner finishes the running command first), and cleans up.
    /// - Returns: EXIT.
    @discardableResult
    public func close(timeout: Duration = .seconds(660)) async throws -> ExitMessage {
        if endedByCancel {
            return exit ?? ExitMessage(reason: .error, exitCode: -1, selfDeleted: false, commandsTotal: 0)
        }
        if !closed {
            closed = true
            session.child.closeStdin()
        }
        let name = hostName
        try await exitPromise.value(
            timeout: timeout,
            orFail: ClientError(.runnerExited, "no EXIT from \(name) within \(timeout)")
        )
        await transport.cleanup(session)
        guard let exit else {
            throw ClientError(.runnerExited, "runner on \(hostName) ended without EXIT")
        }
        return exit
    }

    /// Ends the session: commands still running are stopped (CANCEL, when the runner speaks it: closing stdin
    /// alone would let it finish them), stdin is closed, the transport's process gets SIGTERM if the runner has
    /// not exited within 3 s and SIGKILL 2 s later, and the transport cleans up. SIGTERM first: a local runner
    /// stops its command's process group on it, while SIGKILL would leave the group running. Runs to its end
    /// even when the calling task was cancelled (Ctrl-C): the cleanup is what cancellation needs.
    func abort() async {
        guard !closed || session.child.isRunning else {
            await transport.cleanup(session)
            return
        }
        let pending = supports("cancel") && !closed ? Array(waiters.keys) : []
        closed = true
        let (session, transport) = (self.session, self.transport)
        await Task {
            for id in pending { try? await self.sendCancel(id) }
            session.child.closeStdin()
            if await session.child.waitForExit(timeout: .seconds(3)) == nil {
                session.child.send(signal: SIGTERM)
                if await session.child.waitForExit(timeout: .seconds(2)) == nil { session.child.terminate() }
            }
            await transport.cleanup(session)
        }.value
    }
}
