import Foundation
import MicroRunnerCrypto
import MicroRunnerProtocol

extension RunnerClient {
    /// Runs one command of any type and decodes its result.
    /// - Parameters:
    ///   - type: the command type.
    ///   - params: its parameters.
    ///   - resultType: what DONE's result decodes to.
    ///   - timeout: how long the runner allows it (sent in whole seconds, rounded up).
    ///   - dryRun: report what would change, change nothing.
    ///   - idempotencyKey: run at most once per key (see PROTOCOL.md).
    ///   - onEvent: called for each EVENT.
    /// - Returns: the decoded result.
    /// - Throws: `CommandError` for an ERROR answer, `ClientError` when the runner is gone.
    public func run<P: WireEncodable & Sendable, R: WireDecodable>(
        _ type: CommandType,
        _ params: P,
        as resultType: R.Type,
        timeout: Duration = .seconds(300),
        dryRun: Bool = false,
        idempotencyKey: String? = nil,
        onEvent: (@Sendable (EventMessage) -> Void)? = nil
    ) async throws -> R {
        let command = CommandMessage(
            id: makeID(),
            type: type,
            timeout: Self.wireSeconds(timeout),
            params: WireEncoder().encodeToValue(params),
            idempotencyKey: idempotencyKey,
            dryRun: dryRun
        )
        let done = try await send(command, onEvent: onEvent).result()
        do {
            return try WireDecoder().decode(R.self, from: done.result)
        } catch {
            throw ClientError(.protocolViolation, "\(type) result from \(hostName): \(error)")
        }
    }

    /// `exec`. A non-zero exit status is a result, not an error.
    ///
    /// `params.streamBatch`: `onEvent` may get several lines of one stream in one EVENT, joined by `\n` (see
    /// `EventMessage.lines`); a 100 MB flood of short lines then costs ~6,100 EVENTs rather than 1.25 million.
    ///
    /// `dryRun`: the runner checks the command and answers without running it (`skipped` is true), as Ansible's
    /// check mode skips shell and command tasks; a runner that does not list the `dry_run` extension would run
    /// it for real, so it is refused here (`.unsupported`) before anything is sent.
    public func exec(
        _ params: ExecParams,
        timeout: Duration = .seconds(300),
        dryRun: Bool = false,
        onEvent: (@Sendable (EventMessage) -> Void)? = nil
    ) async throws -> ExecResult {
        var params = params
        // A handler for events means the caller wants the lines as they come: ask for them (a runner that does
        // not stream ignores it, and its final output still arrives in the result).
        if onEvent != nil { params.streamLines = true }
        // Several lines per EVENT only from a runner that says it batches (the rule for every extension), so a
        // handler that asked for batches may still get one line per EVENT and must split either way.
        if params.streamBatch && !supports(ExecParams.streamBatchExtension) { params.streamBatch = false }
        let result = try await run(
            .exec,
            params,
            as: ExecResult.self,
            timeout: timeout,
            dryRun: dryRun,
            onEvent: onEvent
        )
        // A runner that claims dry_run but ran it anyway (no `skipped`) is caught: what came back must match.
        if dryRun && result.skipped != true {
            throw ClientError(
                .verificationFailed,
                "exec: \(runnerDescription) was asked for a dry run and did not say it skipped the command"
            )
        }
        return result
    }

    /// Several `exec`s in order, typed: the CMDs are built here and each answer comes back decoded.
    ///
    /// `pipelined` sends them as one batch (``sendBatch(_:stopOnFailure:)``: about one round trip), and with
    /// `stopOnFailure` the commands after the first ERROR or non-zero exit come back as `CANCELLED` errors without
    /// having run; otherwise they go one at a time and the result ends at the first failure.
    /// - Returns: per command, its result or its ERROR.
    /// - Throws: `ClientError` when the runner is gone or answers something that is not an exec result.
    public func execBatch(
        _ commands: [ExecParams],
        stopOnFailure: Bool = false,
        pipelined: Bool = true,
        timeout: Duration = .seconds(300),
        dryRun: Bool = false
    ) async throws -> [Result<ExecResult, CommandError>] {
        var messages: [CommandMessage] = []
        for params in commands {
            messages.append(
                CommandMessage(
                    id: makeID(),
                    type: .exec,
                    timeout: Self.wireSeconds(timeout),
                    params: WireEncoder().encodeToValue(params),
                    dryRun: dryRun
                )
            )
        }
        var answers: [Answer] = []
        if pipelined && (!stopOnFailure || supports("run_if_succeeded")) {
            answers = try await sendBatch(messages, stopOnFailure: stopOnFailure)
        } else {
            for message in messages {
                let answer = try await send(message)
                answers.append(answer)
                if answer.failed && stopOnFailure { break }
            }
        }
        return try answers.map { answer -> Result<ExecResult, CommandError> in
            switch answer {
            case .done(let done):
                let result: ExecResult
                do {
                    result = try WireDecoder().decode(ExecResult.self, from: done.result)
                } catch {
                    throw ClientError(.protocolViolation, "exec result from \(hostName): \(error)")
                }
                if dryRun && result.skipped != true {
                    throw ClientError(
                        .verificationFailed,
                        "exec: \(runnerDescription) was asked for a dry run and did not say it skipped the command"
                    )
                }
                return .success(result)
            case .error(let e): return .failure(CommandError(e))
            }
        }
    }

    /// `file.write` of content that fits one line, checked against what was sent.
    ///
    /// `content_base64` goes out only to a runner that speaks `file.content_base64` (an older one would ignore
    /// it and write an empty file); otherwise the bytes go as text `content` when they are UTF-8 and fit a
    /// line, else the write is refused before anything is sent. After a real write, `bytes_written` and
    /// `checksum` must match the bytes sent.
    /// - Throws: `ClientError` `.unsupported` (refused before sending), `.verificationFailed` (the runner wrote
    ///   something else), `CommandError` for an ERROR answer.
    public func writeFile(
        _ params: FileWriteParams,
        timeout: Duration = .seconds(300),
        dryRun: Bool = false
    ) async throws
        -> FileWriteResult
    {
        var p = params
        let bytes: [UInt8]
        if let b64 = p.contentBase64 {
            guard let d = Data(base64Encoded: b64) else { throw ClientError(.usage, "content_base64 is not base64") }
            bytes = [UInt8](d)
        } else {
            bytes = Array(p.content.utf8)
        }
        if p.uploadID != nil && !supports("file.chunked_write") {
            throw ClientError(
                .unsupported,
                "file.write: \(runnerDescription) does not speak file.chunked_write; nothing was sent"
            )
        }
        if p.contentBase64 != nil && !supports("file.content_base64") {
            guard p.uploadID == nil, let text = String(validating: bytes, as: UTF8.self),
                JSONWriter.prefixLength(of: bytes, fittingEscaped: Self.maxTextContentBytes) == bytes.count
            else {
                throw ClientError(
                    .unsupported,
                    "file.write \(p.path): \(runnerDescription) does not speak file.content_base64, and these "
                        + "\(bytes.count) bytes are not UTF-8 text that fits one line; nothing was sent"
                )
            }
            p.content = text
            p.contentBase64 = nil
        }
        let result = try await run(.fileWrite, p, as: FileWriteResult.self, timeout: timeout, dryRun: dryRun)
        if !dryRun && p.uploadID == nil {
            try verify(result, wrote: bytes, to: p.path)
        }
        return result
    }

    /// Text content larger than this (escaped) would not fit a line a Go runner can read (10 MiB).
    static let maxTextContentBytes = 9 << 20

    /// Checks a file.write answer against the bytes sent: the runner must say it wrote them all (or, with
    /// `changed: false`, that the file already held them) and give their checksum.
    func verify(_ result: FileWriteResult, wrote bytes: [UInt8], to path: String) throws {
        var h = Crypto.SHA256()
        h.update(bytes)
        try verify(result, size: bytes.count, sha256: h.finalizeHex(), to: path)
    }

    /// The same check against a size and SHA-256 known without holding the bytes (a streamed put).
    func verify(_ result: FileWriteResult, size: Int, sha256 want: String, to path: String) throws {
        var got = result.checksum.lowercased()
        if got.hasPrefix("sha256:") { got.removeFirst(7) }
        let unchanged = result.changed == false
        if !unchanged && result.bytesWritten != size {
            throw ClientError(
                .verificationFailed,
                "file.write \(path): \(runnerDescription) wrote \(result.bytesWritten) of \(size) bytes; the file is not what was sent"
            )
        }
        if got != want {
            throw ClientError(
                .verificationFailed,
                "file.write \(path): \(runnerDescription) reports checksum \(got.isEmpty ? "(none)" : got), not the \(want) of the \(size) bytes sent"
            )
        }
    }

    /// Writes `bytes` to `path` on the host, in chunks of `chunkSize` (PROTOCOL.md chunked writes) when they
    /// would not fit one line and the runner speaks chunked writes: atomic at the end either way. The chunks go
    /// out pipelined (one round trip); the final answer is checked against all the bytes sent.
    ///
    /// To write where the login user may not (a file in `/etc`, owned by root), start the runner as root with
    /// `Become` (`SSHOptions.become`, `LocalTransport(become:)`): the whole session then writes as root. There
    /// is no per-write sudo here: our runner refuses `use_sudo` on a write when it is not root, so offering it
    /// would be a documented path that fails at run time (`FileWriteParams.useSudo` stays on the wire type for
    /// the Go runner, which writes through sudo itself).
    public func putFile(
        _ bytes: [UInt8],
        to path: String,
        mode: FileMode? = nil,
        owner: String = "",
        group: String = "",
        backup: Bool = false,
        dryRun: Bool = false,
        chunkSize: Int = 4 << 20,
        timeout: Duration = .seconds(300)
    ) async throws -> FileWriteResult {
        let chunked = supports("file.chunked_write") && supports("file.content_base64")
        if bytes.count <= chunkSize || dryRun || !chunked {
            var p = FileWriteParams(
                path: path,
                contentBase64: Data(bytes).base64EncodedString(),
                mode: mode?.description ?? ""
            )
            p.owner = owner
            p.group = group
            p.backup = backup
            return try await writeFile(p, timeout: timeout, dryRun: dryRun)
        }
        let uploadID = "u" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        let target = ChunkTarget(path: path, mode: mode, owner: owner, group: group, backup: backup)
        var commands: [CommandMessage] = []
        var offset = 0
        while offset < bytes.count {
            let end = min(bytes.count, offset + chunkSize)
            commands.append(
                chunkCommand(
                    Array(bytes[offset..<end]),
                    of: target,
                    upload: uploadID,
                    at: offset,
                    final: end == bytes.count,
                    timeout: timeout
                )
            )
            offset = end
        }
        let answers = try await sendBatch(commands, stopOnFailure: true)
        for answer in answers { _ = try answer.result() }
        let last = try answers.last!.result()
        let result = try WireDecoder().decode(FileWriteResult.self, from: last.result)
        try verify(result, wrote: bytes, to: path)
        return result
    }

    /// Where and how a chunked upload lands.
    struct ChunkTarget {
        var path: String
        var mode: FileMode?
        var owner: String
        var group: String
        var backup: Bool
    }

    /// The `file.write` CMD for one chunk of a chunked upload (PROTOCOL.md chunked writes).
    /// - Parameter raw: announce the chunk as raw content after the line (ext `file.raw_content`; the caller
    ///   sends the bytes with `startSending(_:content:)`) instead of carrying it as base64 in the line.
    /// - Parameter rawLength: with `raw`, the count of bytes that follow when they are not in `chunk` (sent from
    ///   the file with `startSending(_:contentFile:)`; never with a signer, whose hash needs the bytes).
    /// - Parameter fileSHA256: with `raw`, on the final chunk: the whole file's SHA-256, which the runner checks
    ///   before the file replaces anything.
    func chunkCommand(
        _ chunk: [UInt8],
        of target: ChunkTarget,
        upload uploadID: String,
        at offset: Int,
        final: Bool,
        raw: Bool = false,
        rawLength: Int? = nil,
        fileSHA256: String? = nil,
        timeout: Duration
    ) -> CommandMessage {
        var p = FileWriteParams(
            path: target.path,
            contentBase64: raw ? nil : Data(chunk).base64EncodedString(),
            mode: target.mode?.description ?? "",
            uploadID: uploadID,
            offset: offset,
            final: final
        )
        if raw {
            p.contentLength = rawLength ?? chunk.count
            p.fileSHA256 = final ? fileSHA256 : nil
            // A signature covers the params, not the bytes after the line: their hash binds them to it.
            if signer != nil {
                var h = Crypto.SHA256()
                chunk.withUnsafeBytes { h.update($0) }
                p.contentSHA256 = h.finalizeHex()
            }
        }
        p.owner = target.owner
        p.group = target.group
        p.backup = target.backup
        return CommandMessage(
            id: makeID(),
            type: .fileWrite,
            timeout: Self.wireSeconds(timeout),
            params: WireEncoder().encodeToValue(p)
        )
    }

    /// `file.read` of one window.
    public func readFile(_ params: FileReadParams, timeout: Duration = .seconds(300)) async throws -> FileReadResult {
        try await run(.fileRead, params, as: FileReadResult.self, timeout: timeout)
    }

    /// Reads a whole file (up to `limit` bytes), window by window, decoding base64 windows.
    /// - Returns: the bytes and the metadata of the last window.
    public func getFile(
        _ path: String,
        limit: Int = 1 << 30,
        timeout: Duration = .seconds(300)
    ) async throws -> (
        [UInt8], FileReadResult
    ) {
        var bytes: [UInt8] = []
        while true {
            let r = try await readFile(FileReadParams(path: path, offset: bytes.count), timeout: timeout)
            if r.encoding == .base64 {
                guard let d = Data(base64Encoded: r.content) else {
                    throw ClientError(.protocolViolation, "file.read from \(hostName): content is not base64")
                }
                bytes += d
            } else {
                bytes += Array(r.content.utf8)
            }
            if !r.truncated || bytes.count >= limit { return (bytes, r) }
        }
    }

    /// A `Duration` as the wire's whole seconds: rounded up, at least 1, at most the protocol's limit.
    package static func wireSeconds(_ d: Duration) -> Int {
        let (seconds, attoseconds) = d.components
        let whole = seconds + (attoseconds > 0 ? 1 : 0)
        return Int(max(1, min(Int64(CommandMessage.maxTimeout), whole)))
    }
}
