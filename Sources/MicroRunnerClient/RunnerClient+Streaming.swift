import CMicroRunnerShims
import Foundation
import MicroRunnerCrypto
import MicroRunnerProtocol
import MicroRunnerSystem

/// A local file's size and SHA-256, read once (1 MiB at a time, memory flat) and shared by every host it goes to.
///
/// ```swift
/// let digest = try LocalFileDigest(path: "build/app.tar.gz")  // read once, for every host
/// await Fleet.run(transports, runner: runner) { client in
///     try await client.putFile(contentsOf: digest, to: "/srv/app.tar.gz", mode: 0o644).changed
/// } onOutcome: { print($0.host, $0.result) }
/// ```
public struct LocalFileDigest: Sendable, Equatable {
    /// The file's path.
    public var path: String
    /// Its size in bytes.
    public var size: Int
    /// Its SHA-256, lowercase hex.
    public var sha256: String

    /// Reads `path` through SHA-256.
    /// - Throws: `ClientError` `.usage` when it cannot be read.
    public init(path: String) throws {
        let fd: Int32
        do {
            fd = try Sys.openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC)
        } catch {
            throw ClientError(.usage, "cannot read \(path): \(String(cString: strerror(error.code)))")
        }
        defer { Sys.close(fd) }
        // One 1 MiB buffer, read(2) into it again and again: a new 4 MiB Data per read (FileHandle) cost 1.4 s of
        // page faults a GiB here, more than the hash itself (~0.9 s with SHA-NI).
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
        defer { buffer.deallocate() }
        var hash = Crypto.SHA256()
        var size = 0
        while true {
            let n: Int
            do {
                n = try Sys.read(fd, into: buffer)
            } catch {
                throw ClientError(.usage, "cannot read \(path): \(String(cString: strerror(error.code)))")
            }
            if n == 0 { break }
            hash.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            size += n
        }
        self.path = path
        self.size = size
        self.sha256 = hash.finalizeHex()
    }

    /// Starts hashing `path` on a thread of its own, for `RunnerClient.putFile(contentsOf:to:...)`'s overload
    /// that takes the pending digest: the hosts are reached and asked for their copies, and a file known to
    /// differ is already sent, while the file is still being read. A thread, not a task: a gibibyte is ~0.7 s of
    /// one core, too long to hold one of the cooperative threads every host's session shares (two on a 2-core
    /// machine).
    ///
    /// ```swift
    /// let digest = LocalFileDigest.start(path: "build/app.tar.gz")   // hashing starts now
    /// // ... connect to the hosts, then in each one's session:
    /// let result = try await client.putFile(contentsOf: digest, to: "/srv/app.tar.gz")
    /// ```
    public static func start(path: String) -> PendingFileDigest {
        let task = Task {
            try await withCheckedThrowingContinuation { continuation in
                let thread = Thread { continuation.resume(with: Result { try LocalFileDigest(path: path) }) }
                thread.name = "mr-digest"
                thread.start()
            }
        }
        return PendingFileDigest(path: path, digest: task)
    }
}

/// A `LocalFileDigest` still being taken (`LocalFileDigest.start(path:)`), with the file's size as it was when
/// hashing started.
public struct PendingFileDigest: Sendable {
    /// The file's path.
    public let path: String
    /// Its size when hashing started (nil when it was not a regular file then); the digest's own size is checked
    /// against it wherever it is relied on.
    public let size: Int?
    let task: Task<LocalFileDigest, any Error>

    /// A digest of `path` being taken by `digest` (however the caller takes it); `size` is read now.
    public init(path: String, digest: Task<LocalFileDigest, any Error>) {
        var st = stat()
        self.path = path
        self.size = stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG ? Int(st.st_size) : nil
        self.task = digest
    }

    /// The digest, once the whole file has been read.
    /// - Throws: `ClientError` `.usage` when it cannot be read.
    public var value: LocalFileDigest {
        get async throws { try await task.value }
    }
}

extension RunnerClient {
    /// What the host has at `path`, without its content: size, SHA-256 (`fileChecksum`), mode, owner and group;
    /// nil when there is no file there. One round trip, however large the file (the runner hashes it in place).
    /// - Throws: `ClientError` `.unsupported` for a runner without the `file.digest` extension (an older one
    ///   would answer with up to 10 MiB of content instead).
    public func fileDigest(_ path: String, timeout: Duration = .seconds(300)) async throws -> FileReadResult? {
        guard supports("file.digest") else {
            throw ClientError(.unsupported, "file.read \(path): \(runnerDescription) does not speak file.digest")
        }
        do {
            let r = try await readFile(FileReadParams(path: path, digestOnly: true), timeout: timeout)
            guard r.fileChecksum != nil else {
                throw ClientError(.protocolViolation, "file.read \(path): no file_checksum in a digest answer")
            }
            return r
        } catch let error as CommandError where error.code == .notFound {
            return nil
        }
    }

    /// Puts a local file on the host, streamed from disk: never more than `window` chunks of `chunkSize` in
    /// flight, so memory stays flat for any size. Before anything is sent the host's copy is asked for
    /// (`file.digest`): when it already has these bytes with the mode asked for, and no owner or group is
    /// asked, nothing is sent and the result says `changed: false`. A dry run answers from that comparison
    /// alone for a file too large for one line, and otherwise as `putFile(_:to:)` does (with a diff).
    ///
    /// The final answer is checked against the local size and SHA-256, as every write is.
    public func putFile(
        contentsOf local: LocalFileDigest,
        to path: String,
        mode: FileMode? = nil,
        owner: String = "",
        group: String = "",
        backup: Bool = false,
        dryRun: Bool = false,
        chunkSize: Int = 4 << 20,
        window: Int = 4,
        timeout: Duration = .seconds(300)
    ) async throws -> FileWriteResult {
        try await putFile(
            contentsOf: local,
            hostCopy: await hostCopy(path, timeout: timeout),
            to: path,
            mode: mode,
            owner: owner,
            group: group,
            backup: backup,
            dryRun: dryRun,
            chunkSize: chunkSize,
            window: window,
            timeout: timeout
        )
    }

    /// `putFile(contentsOf:to:...)` for a local digest still being taken (`LocalFileDigest.start(path:)`): the
    /// host is asked for its copy at once, while the local file is read. For an unchanged file the two hashes
    /// (each ~0.7 s a GiB on this machine's CPU) then overlap instead of adding up.
    public func putFile(
        contentsOf pending: PendingFileDigest,
        to path: String,
        mode: FileMode? = nil,
        owner: String = "",
        group: String = "",
        backup: Bool = false,
        dryRun: Bool = false,
        chunkSize: Int = 4 << 20,
        window: Int = 4,
        timeout: Duration = .seconds(300)
    ) async throws -> FileWriteResult {
        async let there = hostCopy(path, timeout: timeout)
        let copy = await there
        // Known to differ before the local hash is done (no file there, or another size): the chunks go out while
        // the file is still being hashed, and only the final one, which carries the whole file's SHA-256, waits
        // for it. A 1 GiB put started sending ~1 s earlier (the local hash), and on this VM that also kept the
        // host's page-cache writes on memory it still backs (see docs/PERFORMANCE.md).
        if !dryRun, let size = pending.size, size > chunkSize, copy == nil || copy?.size != size,
            supports("file.raw_content"), supports("file.chunked_write"), supports("file.content_base64")
        {
            return try await streamChunks(
                of: pending.path,
                size: size,
                sha256: {
                    let local = try await pending.value
                    // Grown or shrunk since it was measured: what was sent is not the file that was hashed.
                    guard local.size == size else {
                        throw ClientError(
                            .usage,
                            "\(pending.path) changed while it was sent (\(size) -> \(local.size) bytes)"
                        )
                    }
                    return local.sha256
                },
                to: path,
                target: ChunkTarget(path: path, mode: mode, owner: owner, group: group, backup: backup),
                timeout: timeout,
                chunkSize: chunkSize,
                window: window
            )
        }
        let local = try await pending.value
        return try await putFile(
            contentsOf: local,
            hostCopy: copy,
            to: path,
            mode: mode,
            owner: owner,
            group: group,
            backup: backup,
            dryRun: dryRun,
            chunkSize: chunkSize,
            window: window,
            timeout: timeout
        )
    }

    /// The host's digest of `path` when it can be had: nil for no file, a runner without `file.digest`, or one
    /// that cannot tell (a directory there, a file it may not read); the write that follows says what is wrong.
    private func hostCopy(_ path: String, timeout: Duration) async -> FileReadResult? {
        guard supports("file.digest") else { return nil }
        return (try? await fileDigest(path, timeout: timeout)) ?? nil
    }

    private func putFile(
        contentsOf local: LocalFileDigest,
        hostCopy: FileReadResult?,
        to path: String,
        mode: FileMode?,
        owner: String,
        group: String,
        backup: Bool,
        dryRun: Bool,
        chunkSize: Int,
        window: Int,
        timeout: Duration
    ) async throws -> FileWriteResult {
        if let there = hostCopy, there.fileChecksum == local.sha256, there.size == local.size,
            mode.map({ there.mode == $0.description }) ?? true, owner.isEmpty, group.isEmpty
        {
            return FileWriteResult(bytesWritten: 0, created: false, checksum: local.sha256, changed: false)
        }
        let chunked = supports("file.chunked_write") && supports("file.content_base64")
        if dryRun && local.size > chunkSize && supports("file.digest") {
            // Known to differ (or to be missing) from the digest: no need to send a gigabyte to say so.
            return FileWriteResult(bytesWritten: local.size, created: false, checksum: local.sha256, changed: true)
        }
        guard local.size > chunkSize && chunked && !dryRun else {
            guard let data = FileManager.default.contents(atPath: local.path) else {
                throw ClientError(.usage, "cannot read \(local.path)")
            }
            return try await putFile(
                [UInt8](data),
                to: path,
                mode: mode,
                owner: owner,
                group: group,
                backup: backup,
                dryRun: dryRun,
                chunkSize: chunkSize,
                timeout: timeout
            )
        }
        return try await streamChunks(
            of: local.path,
            size: local.size,
            sha256: { local.sha256 },
            to: path,
            target: ChunkTarget(path: path, mode: mode, owner: owner, group: group, backup: backup),
            timeout: timeout,
            chunkSize: chunkSize,
            window: window
        )
    }

    /// Sends `size` bytes of the file at `source` in chunks, at most `window` in flight, and checks the answer.
    /// `sha256` is the whole file's digest: asked for only when the final chunk is sent (raw content: the runner
    /// checks the staged file against it) or after the last one (base64: compared with the hash taken here of
    /// what was sent), so a digest still being taken does not hold the first bytes back.
    private func streamChunks(
        of source: String,
        size: Int,
        sha256: () async throws -> String,
        to path: String,
        target: ChunkTarget,
        timeout: Duration,
        chunkSize: Int,
        window: Int
    ) async throws -> FileWriteResult {
        guard let handle = FileHandle(forReadingAtPath: source) else {
            throw ClientError(.usage, "cannot read \(source)")
        }
        defer { try? handle.close() }
        let uploadID = "u" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        let chain = supports("run_if_succeeded")
        // Raw bytes after the line: no base64 to make and check on either side and a third less through ssh
        // (a 1 GiB put on loopback: 20.2 s with base64, 7.6-8.6 s raw, with scp at 3.2-4.6 s in the same runs).
        let raw = supports("file.raw_content")
        // Raw and unsigned: each chunk goes from the page cache into ssh's pipe by splice(2), never read into
        // this process (a 1 GiB put spent ~1.2 s of mrctl's CPU reading chunks into fresh buffers, faulting them
        // in and copying them into the pipe). Signed chunks carry their hash, so they are read.
        #if os(Linux)
        let splice = raw && signer == nil
        #else
        let splice = false
        #endif
        var inFlight: [(Promise<Answer>, CommandMessage)] = []
        var offset = 0
        var previous: String?
        var last: DoneMessage?
        var hash = Crypto.SHA256()
        while offset < size {
            let count = min(chunkSize, size - offset)
            let end = offset + count
            // Raw: the bytes go to ssh as they are (spliced from the file, or read straight into the buffer that is
            // written). The runner checks the whole file against `sha256` (on the final chunk) before it replaces
            // anything, so no second hash is taken here; base64: each chunk is hashed here, to say the file
            // changed while it was sent.
            let fileSHA256 = raw && end == size ? try await sha256() : nil
            // Each chunk runs only if the one before succeeded: a failure stops the upload exactly.
            let chained = chain ? previous.map { ["run_if_succeeded": $0] } : nil
            var command: CommandMessage
            let promise: Promise<Answer>
            if splice {
                command = chunkCommand(
                    [],
                    of: target,
                    upload: uploadID,
                    at: offset,
                    final: end == size,
                    raw: true,
                    rawLength: count,
                    fileSHA256: fileSHA256,
                    timeout: timeout
                )
                command.metadata = chained
                promise = try await startSending(command, contentFile: (handle.fileDescriptor, offset, count))
            } else {
                // Held in memory only within the process-wide budget (many hosts at once must not each hold
                // chunks).
                try await ContentBudget.shared.acquire(count)
                defer { ContentBudget.shared.release(count) }
                let chunk = try Self.readChunk(handle.fileDescriptor, count: count, path: source, at: offset)
                if !raw { chunk.withUnsafeBytes { hash.update($0) } }
                command = chunkCommand(
                    chunk,
                    of: target,
                    upload: uploadID,
                    at: offset,
                    final: end == size,
                    raw: raw,
                    fileSHA256: fileSHA256,
                    timeout: timeout
                )
                command.metadata = chained
                // Once written to ssh, raw bytes are gone from memory as this block ends; base64, the line that
                // carried them too (params emptied below).
                promise = try await startSending(command, content: raw ? chunk : nil)
                // Kept for its id and timeout only: the sent chunk's 5.6 MB of base64 must not stay alive while the
                // window waits (4 of them took the peak RSS from ~60 to ~96 MB).
                command.params = .object(JSONObject())
            }
            previous = command.id
            inFlight.append((promise, command))
            offset = end
            if inFlight.count >= max(1, window) {
                let (promise, sent) = inFlight.removeFirst()
                last = try await awaitAnswer(promise, sent).result()
            }
        }
        for (promise, sent) in inFlight { last = try await awaitAnswer(promise, sent).result() }
        // The file changed under us while it was sent: what arrived is not what was hashed before.
        let expected = try await sha256()
        guard raw || hash.finalizeHex() == expected else {
            throw ClientError(
                .usage,
                "\(source) changed while it was sent; the host has its new bytes, not the old"
            )
        }
        guard let last else { throw ClientError(.protocolViolation, "file.write \(path): no answer") }
        let result: FileWriteResult
        do {
            result = try WireDecoder().decode(FileWriteResult.self, from: last.result)
        } catch {
            throw ClientError(.protocolViolation, "file.write result from \(hostName): \(error)")
        }
        try verify(result, size: size, sha256: expected, to: path)
        return result
    }
}

extension RunnerClient {
    /// Reads exactly `count` bytes of `fd` from where it is.
    static func readChunk(_ fd: Int32, count: Int, path: String, at offset: Int) throws -> [UInt8] {
        var failure: Int32 = 0
        let bytes = [UInt8](unsafeUninitializedCapacity: count) { buffer, filled in
            filled = 0
            while filled < count {
                let rest = UnsafeMutableRawBufferPointer(start: buffer.baseAddress! + filled, count: count - filled)
                let n: Int
                do throws(SystemError) { n = try Sys.read(fd, into: rest) } catch {
                    failure = error.code
                    break
                }
                if n == 0 { break }
                filled += n
            }
        }
        guard bytes.count == count else {
            throw ClientError(
                .usage,
                failure != 0
                    ? "cannot read \(path): \(String(cString: strerror(failure)))"
                    : "\(path) ended at \(offset + bytes.count) bytes while it was sent (it changed)"
            )
        }
        return bytes
    }
}

extension RunnerClient {
    /// Copies a file from the host to `localPath`, window by window (one `file.read` of at most 10 MiB in memory
    /// at a time), into a private temporary file beside `localPath` that replaces it only once complete and
    /// verified: its size and SHA-256 must equal the host's whole-file digest (`file.digest`, asked before the
    /// first window; a runner without it has each window's checksum checked instead). A file that changed on the
    /// host while it was read fails, and nothing is left behind.
    /// - Returns: the host file's metadata (size, mode, owner, group, SHA-256 in `fileChecksum` when known).
    /// - Parameters:
    ///   - path: the file on the host.
    ///   - localPath: where it is saved here.
    ///   - windowBytes: bytes a `file.read` asks for (4 MiB).
    ///   - window: reads in flight at once, with a runner that speaks `file.digest`.
    ///   - timeout: how long each read may take on the host.
    public func fetchFile(
        _ path: String,
        to localPath: String,
        windowBytes: Int = 4 << 20,
        window: Int = 4,
        timeout: Duration = .seconds(300)
    ) async throws -> FileReadResult {
        let directory = URL(fileURLWithPath: localPath).deletingLastPathComponent().path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var template = Array((localPath + ".mrctl-fetch.XXXXXX").utf8CString)
        let fd = mkstemp(&template)
        guard fd >= 0 else {
            throw ClientError(.usage, "cannot create a file beside \(localPath): \(String(cString: strerror(errno)))")
        }
        let staging = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        var done = false
        defer {
            try? handle.close()
            if !done { unlink(staging) }
        }
        // In slices (`Sys.fileWriteSlice`): one 4 MiB write(2) per window cost seconds a GiB on a VM whose
        // balloon had taken the large blocks' memory back.
        var written = 0
        func save(_ bytes: some ContiguousBytes) throws {
            let failure: Int32? = bytes.withUnsafeBytes { raw in
                do throws(SystemError) {
                    try Sys.writeAll(fd, raw, slice: Sys.fileWriteSlice)
                    return nil
                } catch { return error.code }
            }
            if let failure {
                throw ClientError(.usage, "cannot write \(staging): \(String(cString: strerror(failure)))")
            }
            // On its way to the disk already: the fsync before the rename then waits for little (~0.5 s a GiB).
            let count = bytes.withUnsafeBytes { $0.count }
            Sys.startWriteback(fd, offset: written, count: count)
            written += count
        }
        var hash = Crypto.SHA256()
        var offset = 0
        var last: FileReadResult
        // With file.digest the size is known first, so `window` reads are in flight at once (each answered
        // while the next is read on the host and the one before is written here): a 1 GiB fetch took 21.9 s one
        // read at a time, scp 4.6 s. The digest taken first is what the bytes must hash to at the end.
        if supports("file.running_checksum") && supports("file.raw_content") {
            // No separate pass over the file on the host (the digest first took ~1 s a GiB there, with nothing
            // else moving): the runner hashes the windows as it sends them and the last one says the sum, which
            // must equal the hash of what arrived here; every window names the file as it found it, and a file
            // replaced or written to between them fails.
            last = try await fetchRunning(path, windowBytes: windowBytes, window: window, timeout: timeout) {
                got in
                got.withUnsafeBytes { hash.update($0) }
                try save(got)
                offset += got.count
            }
            guard last.fileChecksum == hash.finalizeHex(), last.size == offset else {
                throw ClientError(
                    .verificationFailed,
                    "\(path) on \(hostName) changed while it was read (\(offset) bytes read; the host read "
                        + "\(last.size) bytes, SHA-256 \(last.fileChecksum ?? "?")); nothing was saved"
                )
            }
        } else if supports("file.digest"), let whole = try await fileDigest(path, timeout: timeout) {
            var inFlight: [(Promise<Answer>, CommandMessage)] = []
            var next = 0
            // Raw bytes after each DONE: no base64 on either side and a quarter less through ssh.
            let raw = supports("file.raw_content")
            if raw { session.child.expectRawAnswers() }
            while offset < whole.size || !inFlight.isEmpty {
                while next < whole.size && inFlight.count < max(1, window) {
                    let command = CommandMessage(
                        id: makeID(),
                        type: .fileRead,
                        timeout: Self.wireSeconds(timeout),
                        params: WireEncoder().encodeToValue(
                            {
                                var p = FileReadParams(
                                    path: path,
                                    maxBytes: min(windowBytes, whole.size - next),
                                    offset: next
                                )
                                p.rawContent = raw
                                // The whole file's digest is checked here at the end: the host need not hash
                                // each window too (a second pass over every byte there, ~1 s a GiB).
                                p.skipChecksum = supports("file.skip_checksum")
                                return p
                            }()
                        )
                    )
                    inFlight.append((try await startSending(command), command))
                    next += windowBytes
                }
                guard !inFlight.isEmpty else { break }
                let (promise, sent) = inFlight.removeFirst()
                let r = try FileReadResult.decoded(from: try await awaitAnswer(promise, sent).result().result, hostName)
                // No window checksum here: the whole file's is checked below (one hash pass fewer, ~0.7 s a GiB).
                if r.encoding == .raw {
                    guard raw, let got = takeRawAnswer(sent.id), got.count == r.contentLength else {
                        throw ClientError(
                            .protocolViolation,
                            "file.read \(path) from \(hostName): raw content missing or not content_length bytes"
                        )
                    }
                    got.withUnsafeBytes { hash.update($0) }
                    try save(got)
                    offset += got.count
                    if got.isEmpty && offset < whole.size { break }
                    continue
                }
                let bytes = try checkedWindow(r, path: path, checksum: false)
                bytes.withUnsafeBytes { hash.update($0) }
                try save(bytes)
                offset += bytes.count
                // A file that shrank answers short: the hash check below says it changed.
                if bytes.isEmpty && offset < whole.size { break }
            }
            let got = hash.finalizeHex()
            guard whole.fileChecksum == got, whole.size == offset else {
                throw ClientError(
                    .verificationFailed,
                    "\(path) on \(hostName) changed while it was read (\(offset) bytes read, SHA-256 \(got); it was "
                        + "\(whole.size) bytes, \(whole.fileChecksum ?? "?") when the read began); nothing was saved"
                )
            }
            last = whole
        } else {
            while true {
                let r = try await readFile(FileReadParams(path: path, offset: offset), timeout: timeout)
                let bytes = try checkedWindow(r, path: path)
                bytes.withUnsafeBytes { hash.update($0) }
                try save(bytes)
                offset += bytes.count
                last = r
                if !r.truncated { break }
                if bytes.isEmpty {
                    throw ClientError(
                        .protocolViolation,
                        "file.read \(path) from \(hostName): an empty window before the end"
                    )
                }
            }
            last.fileChecksum = hash.finalizeHex()
        }
        try handle.synchronize()
        guard rename(staging, localPath) == 0 else {
            throw ClientError(
                .usage,
                "cannot move the fetched file to \(localPath): \(String(cString: strerror(errno)))"
            )
        }
        done = true
        last.size = offset
        return last
    }
}

extension RunnerClient {
    /// Reads `path` in raw windows with the runner's running checksum (ext `file.running_checksum`), `window` at
    /// once once the first answer has said the size, handing each window's bytes to `take` in order.
    /// - Returns: the first window's metadata, with `size` the bytes the host read and `fileChecksum` their
    ///   SHA-256 as the host computed it (asked for separately when the running sum was lost, e.g. to another
    ///   read of this session in between).
    /// - Throws: `.verificationFailed` when the file changed between windows (its identity differs).
    func fetchRunning(
        _ path: String,
        windowBytes: Int,
        window: Int,
        timeout: Duration,
        take: (ArraySlice<UInt8>) throws -> Void
    ) async throws -> FileReadResult {
        session.child.expectRawAnswers()
        var inFlight: [(Promise<Answer>, CommandMessage)] = []
        var first: FileReadResult?
        var sum: String?
        var next = 0
        var received = 0
        func command(at offset: Int, size: Int?) -> CommandMessage {
            var p = FileReadParams(
                path: path,
                maxBytes: min(windowBytes, size.map { $0 - offset } ?? windowBytes),
                offset: offset
            )
            p.rawContent = true
            p.skipChecksum = true
            p.runningChecksum = true
            return CommandMessage(
                id: makeID(),
                type: .fileRead,
                timeout: Self.wireSeconds(timeout),
                params: WireEncoder().encodeToValue(p)
            )
        }
        let opening = command(at: 0, size: nil)
        inFlight.append((try await startSending(opening), opening))
        next = windowBytes
        while !inFlight.isEmpty {
            let (promise, sent) = inFlight.removeFirst()
            let r = try FileReadResult.decoded(from: try await awaitAnswer(promise, sent).result().result, hostName)
            guard r.encoding == .raw, let got = takeRawAnswer(sent.id), got.count == r.contentLength else {
                throw ClientError(
                    .protocolViolation,
                    "file.read \(path) from \(hostName): raw content missing or not content_length bytes"
                )
            }
            if let first, r.identity != first.identity {
                throw ClientError(
                    .verificationFailed,
                    "\(path) on \(hostName) changed while it was read (it was \(first.identity ?? "?"), then "
                        + "\(r.identity ?? "?")); nothing was saved"
                )
            }
            if first == nil { first = r }
            try take(got)
            received += got.count
            if r.fileChecksum != nil { sum = r.fileChecksum }
            let size = first?.size ?? 0
            while next < size && inFlight.count < max(1, window) {
                let c = command(at: next, size: size)
                inFlight.append((try await startSending(c), c))
                next += windowBytes
            }
        }
        guard var result = first else {
            throw ClientError(.protocolViolation, "file.read \(path) from \(hostName): no answer")
        }
        if sum == nil, let whole = try await fileDigest(path, timeout: timeout) {
            guard whole.size == received else {
                throw ClientError(
                    .verificationFailed,
                    "\(path) on \(hostName) changed while it was read (\(received) bytes read, \(whole.size) now)"
                )
            }
            sum = whole.fileChecksum
        }
        result.size = received
        result.fileChecksum = sum
        return result
    }

    /// A window's bytes, checked against the window's own checksum unless `checksum` is false.
    func checkedWindow(_ r: FileReadResult, path: String, checksum: Bool = true) throws -> Data {
        let bytes: Data
        if r.encoding == .base64 {
            guard let d = Data(base64Encoded: r.content) else {
                throw ClientError(.protocolViolation, "file.read from \(hostName): content is not base64")
            }
            bytes = d
        } else {
            bytes = Data(r.content.utf8)
        }
        guard checksum else { return bytes }
        var window = Crypto.SHA256()
        bytes.withUnsafeBytes { window.update($0) }
        guard window.finalizeHex() == r.checksum.lowercased() else {
            throw ClientError(.verificationFailed, "file.read \(path) from \(hostName): a window's checksum is wrong")
        }
        return bytes
    }
}

extension FileReadResult {
    static func decoded(from value: JSONValue, _ hostName: String) throws -> FileReadResult {
        do {
            return try WireDecoder().decode(FileReadResult.self, from: value)
        } catch {
            throw ClientError(.protocolViolation, "file.read result from \(hostName): \(error)")
        }
    }
}

/// Process-wide memory settings for a program that moves large files.
public enum LargeBuffers {
    /// Makes glibc serve allocations of 256 KiB and more with mmap, returned to the kernel when freed, instead
    /// of a heap that does not shrink: with its sliding threshold, a 1 GiB put's 5.6 MB chunk lines moved into
    /// the heap and the peak RSS grew. The library never calls it by itself (it is the program's malloc);
    /// mrctl does at start. No effect off glibc.
    public static func returnToTheKernelWhenFreed() { mr_tune_malloc() }
}
