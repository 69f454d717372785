import CMicroRunnerShims
import Foundation
import MicroRunnerSystem
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A local child process with its three standard streams as pipes (ssh, or a local runner).
///
/// Spawned with `posix_spawn` and close-on-exec pipes, not Foundation's `Process`: on Linux, `Process`
/// watches children through an inherited socket and reaps with a blocking `waitpid` on one monitor
/// thread, so a child that closes inherited descriptors (sshd, an ssh ControlMaster) stalls the reaping of
/// every other child. Its pipes are non-blocking and served by one process-wide poll thread (`ChildIOLoop`),
/// together with a pidfd for its exit: a child costs descriptors, not threads (`--forks 500` once meant
/// 2,000 threads), and async callers only await, so a 3 MB upload to an ssh that is still connecting never
/// holds one of the cooperative pool's few threads.
final class ChildProcess: @unchecked Sendable {
    let pid: pid_t
    private let lock = NSLock()
    // Descriptors, -1 once closed (guarded by `lock`; read and written by the I/O thread).
    private var stdinFD: Int32
    private var stdoutFD: Int32
    private var stderrFD: Int32
    private var pidFD: Int32
    private var stderrTail: [UInt8] = []
    private var stdoutPending: [UInt8] = []
    /// The I/O thread's read buffers for stdout, kept between wake-ups: allocated on each, the 64 KiB chunk and
    /// the bytes of one wake-up were page-faulted in again every time (a tenth of mrctl's time on a 100 MB
    /// stream).
    private var stdoutChunk = [UInt8](repeating: 0, count: 1 << 16)
    private var stdoutRead: [UInt8] = []
    /// Bytes of whole lines handed to `lines` and not yet taken (`consumed`): past `maxQueuedBytes` stdout is
    /// not read, so a runner that floods makes ssh, and then itself, wait instead of growing this process.
    private var queuedBytes = 0
    /// Why stdout was given up on (a line over `maxLineBytes`), for the client's error.
    private var stdoutFailureText: String?
    private var stdinCloseRequested = false
    private var status: Int32?
    private let exited = Promise<Int32>()
    private let stderrDone = Promise<Void>()
    /// Writes waiting for the I/O thread, in order; `offset` bytes of the first are written.
    private var writes: [(part: StdinPart, done: Promise<Void>)] = []
    private var writeOffset = 0
    /// The file of the first write ended before its count: the rest is written as zeros (the line before it
    /// announced that many bytes, and the stream must stay in step) and the write then fails.
    private var writeShort = false
    /// Set once the client has asked for an answer with raw bytes after it (ext `file.raw_content`): from then
    /// on a DONE line whose result has `content_length` is followed by that many bytes, kept with the line.
    private var rawAnswers = false
    /// An answer line with raw bytes after it, being filled: the line, `\n`, the bytes so far, with room for
    /// `rawNeeded` more. Bytes go straight here, not through `stdoutPending` (a 4 MiB fetch window was copied
    /// out of it and the rest moved down).
    private var rawItem: [UInt8]?
    private var rawNeeded = 0
    /// Whole stdout lines, without `\n`; finishes at EOF, or when a line is longer than `maxLineBytes`.
    let lines: AsyncStream<[UInt8]>
    /// The longest line accepted from a child: 16 MiB, above the 10 MiB of the Go decoder that every runner
    /// line stays under. A longer one fails the session instead of growing without end (a hostile host once
    /// took mrctl to 2 GB with one line that never ended).
    static let maxLineBytes = 16 << 20
    /// Lines read ahead of the client: 1 MiB. With the 64 KiB read chunk and one line in the client's hands,
    /// a host holds at most about 1 MiB + 2 lines here however fast it writes.
    static let maxQueuedBytes = 1 << 20
    private let linesContinuation: AsyncStream<[UInt8]>.Continuation

    /// Where a file's bytes go through this process when its file system cannot splice; used by the one I/O
    /// thread only, and never freed.
    nonisolated(unsafe) private static let scratch = UnsafeMutableRawBufferPointer.allocate(
        byteCount: 64 << 10,
        alignment: 16
    )
    /// The file system of a file part refused splice(2): read and written instead, for this child from then on.
    private var spliceUnsupported = false

    /// 64 KiB of zeros, written in place of a file's bytes that were not there; never freed.
    nonisolated(unsafe) private static let zeros: UnsafeRawBufferPointer = {
        let zeros = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 16)
        zeros.initializeMemory(as: UInt8.self, repeating: 0)
        return UnsafeRawBufferPointer(zeros)
    }()

    /// Writing to a child that already exited raises SIGPIPE, which would end the controller; the client
    /// ignores it process-wide (once, before the first write to any child) and handles EPIPE instead.
    static let ignoreSIGPIPE: Void = {
        signal(SIGPIPE, SIG_IGN)
    }()

    init(executable: String, arguments: [String]) throws {
        Self.ignoreSIGPIPE
        (lines, linesContinuation) = AsyncStream.makeStream(of: [UInt8].self, bufferingPolicy: .unbounded)
        var request = SpawnRequest(
            executable: executable,
            arguments: [executable.split(separator: "/").last.map(String.init) ?? executable] + arguments
        )
        request.standardInput = .pipe
        request.standardOutput = .pipe
        request.standardError = .pipe
        let spawned: SpawnedProcess
        do throws(SpawnError) {
            spawned = try Spawn.startRetryingBusyText(request)
        } catch {
            let why = String(cString: strerror(error.code))
            throw ClientError(
                .transport,
                error.creatingPipes ? "cannot create pipes: \(why)" : "cannot start \(executable): \(why)"
            )
        }
        guard let stdinFD = spawned.standardInput, let stdoutFD = spawned.standardOutput,
            let stderrFD = spawned.standardError
        else { preconditionFailure("Spawn returns the pipes it was asked for") }
        let child = spawned.pid
        pid = child
        for fd in [stdinFD, stdoutFD, stderrFD] { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        // 1 MiB pipes instead of 64 KiB: a put's chunks and a read's answers cross in 16x fewer wake-ups of
        // this loop and of ssh (best effort: the limit is /proc/sys/fs/pipe-max-size).
        for fd in [stdinFD, stdoutFD] { _ = mr_set_pipe_size(fd, 1 << 20) }
        self.stdinFD = stdinFD
        self.stdoutFD = stdoutFD
        self.stderrFD = stderrFD
        // Linux 5.3+: the exit is one more descriptor in the poll set; older kernels are polled with WNOHANG.
        pidFD = mr_pidfd_open(child)
        ChildIOLoop.shared.add(self)
    }

    deinit {
        closeStdin()
    }

    // MARK: Served by the I/O thread

    /// What to poll for this child: (descriptor, events) pairs.
    func pollRequests() -> [(fd: Int32, events: Int16)] {
        lock.withLock {
            if stdinFD >= 0 && writes.isEmpty && stdinCloseRequested {
                close(stdinFD)
                stdinFD = -1
            }
            var out: [(Int32, Int16)] = []
            if stdoutFD >= 0 && queuedBytes < Self.maxQueuedBytes { out.append((stdoutFD, Int16(POLLIN))) }
            if stderrFD >= 0 { out.append((stderrFD, Int16(POLLIN))) }
            if stdinFD >= 0 && !writes.isEmpty { out.append((stdinFD, Int16(POLLOUT))) }
            if pidFD >= 0 && status == nil { out.append((pidFD, Int16(POLLIN))) }
            return out
        }
    }

    /// Whether the exit must be polled with WNOHANG (no pidfd).
    var needsReapPolling: Bool { lock.withLock { pidFD < 0 && status == nil } }

    /// Whether everything is done: output pipes at EOF and the child reaped (the loop then forgets it, closing
    /// stdin and failing writes still queued, since nobody will read them).
    var isFinished: Bool {
        var orphaned: [Promise<Void>] = []
        let done: Bool = lock.withLock {
            guard stdoutFD < 0 && stderrFD < 0 && status != nil else { return false }
            if stdinFD >= 0 {
                close(stdinFD)
                stdinFD = -1
            }
            orphaned = writes.map(\.done)
            writes = []
            return true
        }
        for w in orphaned { w.complete(.failure(ClientError(.runnerExited, "the runner exited before reading this"))) }
        return done
    }

    /// Serves a descriptor that poll reported ready.
    func serve(_ fd: Int32) {
        let which: Int = lock.withLock {
            if fd == stdoutFD { return 1 }
            if fd == stderrFD { return 2 }
            if fd == stdinFD { return 0 }
            if fd == pidFD { return 3 }
            return -1
        }
        switch which {
        case 1: readStdout()
        case 2: readStderr()
        case 0: writeStdin()
        case 3: reap()
        default: break
        }
    }

    /// Reads what `fd` has until it would block; at end of file closes it (through `closed`) and says so.
    /// - Returns: the bytes read, and whether the stream ended.
    /// Reads what `fd` has into `bytes` (emptied first, its capacity kept). - Returns: whether the stream ended.
    private func drain(_ fd: Int32, chunk: inout [UInt8], into bytes: inout [UInt8], closed: () -> Void) -> Bool {
        bytes.removeAll(keepingCapacity: true)
        // At most 1 MiB a wake-up: a child that writes as fast as it is read must not grow this without end.
        while bytes.count < 1 << 20 {
            // nil: nothing more for now; 0 (end of file) or an error: the stream is over.
            let n: Int? = chunk.withUnsafeMutableBytes { raw in
                do { return try Sys.readSome(fd, into: raw) } catch { return 0 }
            }
            guard let n else { return false }
            if n == 0 {
                lock.withLock(closed)
                return true
            }
            bytes += chunk[0..<n]
        }
        return false
    }

    /// From now on, answers may carry raw bytes after their DONE line (see `rawAnswers`).
    func expectRawAnswers() { lock.withLock { rawAnswers = true } }

    private func readStdout() {
        guard let fd = lock.withLock({ stdoutFD >= 0 ? stdoutFD : nil }) else { return }
        let ended = drain(fd, chunk: &stdoutChunk, into: &stdoutRead) {
            close(stdoutFD)
            stdoutFD = -1
        }
        var found: [[UInt8]] = []
        let tooLong: Bool = lock.withLock {
            var input = stdoutRead[...]
            if rawItem != nil {
                var item = rawItem.take()!
                let take = min(rawNeeded, input.count)
                item += input.prefix(take)
                rawNeeded -= take
                input = input.dropFirst(take)
                if rawNeeded > 0 {
                    rawItem = item
                    return false
                }
                queuedBytes += item.count
                found.append(item)
            }
            var scan = stdoutPending.count
            stdoutPending += input
            var start = 0
            while let nl = firstNewline(in: stdoutPending, from: scan) {
                if nl - start > Self.maxLineBytes { break }
                if rawAnswers, let length = RawAnswer.announcedLength(stdoutPending[start..<nl]) {
                    guard length <= Self.maxLineBytes else {
                        stdoutFailureText =
                            "announced \(length) raw bytes after an answer, more than \(Self.maxLineBytes) (16 MiB)"
                        stdoutPending = []
                        close(stdoutFD)
                        stdoutFD = -1
                        return true
                    }
                    // A line and its raw bytes go to the client as one item: the line, `\n`, the bytes.
                    let end = nl + 1 + length
                    if stdoutPending.count >= end {
                        found.append(Array(stdoutPending[start..<end]))
                        queuedBytes += end - start
                        start = end
                        scan = start
                        continue
                    }
                    var item: [UInt8] = []
                    item.reserveCapacity(end - start)
                    item += stdoutPending[start...]
                    rawItem = item
                    rawNeeded = end - stdoutPending.count
                    start = stdoutPending.count
                    break
                }
                found.append(Array(stdoutPending[start..<nl]))
                queuedBytes += nl - start
                start = nl + 1
                scan = start
            }
            if start > 0 { stdoutPending.removeFirst(start) }
            guard stdoutPending.count > Self.maxLineBytes, stdoutFD >= 0 else { return false }
            stdoutFailureText =
                "sent a line longer than \(Self.maxLineBytes) bytes (16 MiB), more than any runner sends"
            stdoutPending = []
            close(stdoutFD)
            stdoutFD = -1
            return true
        }
        for line in found { linesContinuation.yield(line) }
        if ended || tooLong { linesContinuation.finish() }
        if tooLong { terminate() }
    }

    /// The client took a line of `count` bytes from `lines`: reading resumes once under `maxQueuedBytes`.
    func consumed(_ count: Int) {
        let resume: Bool = lock.withLock {
            let wasFull = queuedBytes >= Self.maxQueuedBytes
            queuedBytes = max(0, queuedBytes - count)
            return wasFull && queuedBytes < Self.maxQueuedBytes
        }
        if resume { ChildIOLoop.shared.wake() }
    }

    /// The last `count` non-empty stdout lines (each cut to 512 bytes) of a child that is ending, read until its
    /// stdout closes or `timeout` passes: what a host printed before it closed a session nobody read yet (a
    /// ForceCommand's refusal arrives on stdout while the upload is still being written).
    func lastLines(_ count: Int, timeout: Duration) async -> [String] {
        await withTaskGroup(of: [String]?.self) { group in
            group.addTask { [self] in
                var kept: [String] = []
                for await line in lines {
                    consumed(line.count)
                    let text = String(decoding: line.prefix(512), as: UTF8.self)
                        .trimmingCharacters(in: .whitespacesAndNewlines)
                    if !text.isEmpty { kept = Array((kept + [text]).suffix(count)) }
                }
                return kept
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            var result: [String] = []
            while let finished = await group.next() {
                if let finished { result = finished }
                group.cancelAll()
            }
            return result
        }
    }

    /// Why stdout was given up on, if it was (a line longer than `maxLineBytes`).
    var stdoutFailure: String? { lock.withLock { stdoutFailureText } }

    private func readStderr() {
        var chunk = [UInt8](repeating: 0, count: 4096)
        var bytes: [UInt8] = []
        guard let fd = lock.withLock({ stderrFD >= 0 ? stderrFD : nil }) else { return }
        let ended = drain(fd, chunk: &chunk, into: &bytes) {
            close(stderrFD)
            stderrFD = -1
        }
        lock.withLock {
            stderrTail += bytes
            if stderrTail.count > 16384 { stderrTail.removeFirst(stderrTail.count - 16384) }
        }
        if ended { stderrDone.complete(.success(())) }
    }

    private func writeStdin() {
        while true {
            var completed: Promise<Void>?
            var shortFile: Promise<Void>?
            var failed: [Promise<Void>] = []
            var failure: Int32 = 0
            let more: Bool = lock.withLock {
                guard stdinFD >= 0, let first = writes.first else { return false }
                let written: Result<Int?, SystemError>
                switch first.part {
                case .bytes(let bytes):
                    written = bytes.withUnsafeBytes { raw in
                        Result { () throws(SystemError) in
                            try Sys.writeSome(stdinFD, UnsafeRawBufferPointer(rebasing: raw[writeOffset...]))
                        }
                    }
                case .file(let fd, let offset, let count):
                    written = Result { () throws(SystemError) in try writeFilePart(fd, at: offset, count: count) }
                }
                let n: Int
                switch written {
                case .success(nil): return false  // the pipe is full: poll says when it drains
                case .success(let count?): n = count
                case .failure(let error):
                    failure = error.code
                    failed = writes.map(\.done)
                    writes = []
                    writeOffset = 0
                    close(stdinFD)
                    stdinFD = -1
                    return false
                }
                writeOffset += n
                if writeOffset == first.part.count {
                    completed = first.done
                    if writeShort { shortFile = first.done }
                    writes.removeFirst()
                    writeOffset = 0
                    writeShort = false
                }
                return true
            }
            if let shortFile {
                shortFile.complete(
                    .failure(ClientError(.usage, "the file ended before the bytes announced were sent (it changed)"))
                )
            } else {
                completed?.complete(.success(()))
            }
            for f in failed {
                f.complete(
                    .failure(
                        ClientError(.runnerExited, "cannot write to the runner: \(String(cString: strerror(failure)))")
                    )
                )
            }
            if !more { return }
        }
    }

    /// Writes what is left of a file part (`writeOffset` of its `count` bytes are written) to stdin, called
    /// under `lock` by the I/O thread: spliced; read and written where the file system cannot splice; zeros once
    /// the file has ended early. The bytes written, or `nil` when the pipe is full.
    private func writeFilePart(_ fd: Int32, at offset: Int, count: Int) throws(SystemError) -> Int? {
        let left = count - writeOffset
        if !writeShort && !spliceUnsupported {
            var at = offset + writeOffset
            do throws(SystemError) {
                let moved = try Sys.splice(from: fd, offset: &at, to: stdinFD, count: left)
                if moved != 0 { return moved }
                writeShort = true
            } catch {
                // A file system without splice: read and written below. Anything else fails.
                guard error.code == EINVAL || error.code == ENOSYS else { throw error }
                spliceUnsupported = true
            }
        }
        if !writeShort {
            // Read again from the offset each time: a pipe that takes only part of it loses nothing.
            let scratch = Self.scratch
            let n = try Sys.pread(
                fd,
                into: UnsafeMutableRawBufferPointer(rebasing: scratch[..<min(scratch.count, left)]),
                at: offset + writeOffset
            )
            if n > 0 { return try Sys.writeSome(stdinFD, UnsafeRawBufferPointer(rebasing: scratch[..<n])) }
            writeShort = true
        }
        return try Sys.writeSome(stdinFD, UnsafeRawBufferPointer(rebasing: Self.zeros[..<min(Self.zeros.count, left)]))
    }

    /// Reaps the child if it exited.
    func reap() {
        guard let ended = try? Sys.wait(pid, block: false) else { return }
        let code = ended.shellStatus
        lock.withLock {
            status = code
            if pidFD >= 0 {
                close(pidFD)
                pidFD = -1
            }
        }
        exited.complete(.success(code))
    }

    // MARK: Callers

    /// Writes bytes to the child's stdin (on the I/O thread) and waits until they are written.
    func send(_ bytes: [UInt8]) async throws {
        try await send(parts: [bytes])
    }

    /// Writes the parts back to back, with nothing else between them (a CMD line and the raw content after it),
    /// without copying them into one buffer.
    func send(parts: [[UInt8]]) async throws {
        try await send(parts: parts.map { StdinPart.bytes($0) })
    }

    /// Writes the parts back to back, with nothing else between them: bytes, or a region of an open file moved
    /// into the pipe with splice(2) (no copy through this process). The file must stay open until this returns;
    /// if it ends early the rest goes as zeros, to keep the stream in step with the line that announced the
    /// count, and this throws.
    func send(parts: [StdinPart]) async throws {
        let done = Promise<Void>()
        let accepted: Bool = lock.withLock {
            if stdinCloseRequested || stdinFD < 0 || status != nil { return false }
            for part in parts.dropLast() where part.count > 0 { writes.append((part, Promise<Void>())) }
            writes.append((parts.last ?? .bytes([]), done))
            return true
        }
        guard accepted else { throw ClientError(.closed, "stdin of the runner is already closed") }
        ChildIOLoop.shared.wake()
        try await done.value()
    }

    /// Closes the child's stdin once everything queued is written (the runner then finishes and sends EXIT).
    func closeStdin() {
        lock.withLock { stdinCloseRequested = true }
        ChildIOLoop.shared.wake()
    }

    /// The last bytes the child wrote to stderr, as text.
    func stderrText() -> String {
        lock.withLock { String(decoding: stderrTail, as: UTF8.self) }
    }

    /// The rest of the first complete stderr line that starts with `prefix`, once it has arrived; `nil` when the
    /// child exits or closes stderr first, or after `timeout`. (Checked every 2 ms: it is waited for once per
    /// host, and a millisecond is nothing beside the network round trip it waits on.)
    func stderrLine(prefix: String, timeout: Duration) async -> String? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let (text, closed) = lock.withLock { (String(decoding: stderrTail, as: UTF8.self), stderrFD < 0) }
            for line in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
            where line.hasPrefix(prefix) {
                return String(line.dropFirst(prefix.count)).trimmingCharacters(in: .whitespacesAndNewlines)
            }
            if closed || !isRunning { return nil }
            try? await Task.sleep(for: .milliseconds(2))
            if Task.isCancelled { return nil }
        }
        return nil
    }

    /// stderr after the child closed it (or after `timeout`).
    func stderrTextAtEOF(timeout: Duration = .seconds(2)) async -> String {
        _ = try? await stderrDone.value(timeout: timeout, orFail: ClientError(.transport, "stderr still open"))
        return stderrText()
    }

    /// The exit status once the child exited (128+N for signal N).
    var exitStatus: Int32? { lock.withLock { status } }

    var isRunning: Bool { exitStatus == nil }

    /// Waits for the child to exit.
    /// - Returns: its status, or `nil` when `timeout` passed first.
    func waitForExit(timeout: Duration) async -> Int32? {
        if let s = exitStatus { return s }
        return try? await exited.value(timeout: timeout, orFail: ClientError(.transport, "still running"))
    }

    func terminate() {
        if isRunning { kill(pid, SIGKILL) }
    }

    /// Sends `signal` while the child runs.
    func send(signal: Int32) {
        if isRunning { kill(pid, signal) }
    }
}

/// The one thread that serves every child's pipes and exit, with poll(2). Children register when spawned
/// and are forgotten once their pipes are closed and they are reaped.
final class ChildIOLoop: @unchecked Sendable {
    static let shared = ChildIOLoop()
    private let lock = NSLock()
    private var children: [ObjectIdentifier: ChildProcess] = [:]
    private let wakeFD: Int32

    private init() {
        wakeFD = mr_eventfd()
        let thread = Thread { [self] in run() }
        thread.name = "micro-runner child I/O"
        thread.start()
    }

    func add(_ child: ChildProcess) {
        lock.withLock { children[ObjectIdentifier(child)] = child }
        wake()
    }

    /// Makes the loop recompute what it polls for (new writes, a close request, a new child).
    func wake() {
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    private func run() {
        while true {
            let current = lock.withLock { Array(children.values) }
            var fds = [pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)]
            var owners: [ChildProcess] = []
            var reapPolling = false
            for child in current {
                for request in child.pollRequests() {
                    fds.append(pollfd(fd: request.fd, events: request.events, revents: 0))
                    owners.append(child)
                }
                if child.needsReapPolling { reapPolling = true }
            }
            // Without pidfds (Linux < 5.3) exits are noticed within 20 ms.
            if (try? Sys.poll(&fds, timeoutMs: reapPolling ? 20 : -1)) == nil { usleep(1000) }
            if fds[0].revents != 0 {
                var drained: UInt64 = 0
                _ = read(wakeFD, &drained, 8)
            }
            for (i, child) in owners.enumerated() where fds[i + 1].revents != 0 {
                child.serve(fds[i + 1].fd)
            }
            for child in current where child.needsReapPolling { child.reap() }
            lock.withLock {
                for child in current where child.isFinished { children[ObjectIdentifier(child)] = nil }
            }
        }
    }
}

/// How the client finds an answer with raw bytes after it (ext `file.raw_content`).
package enum RawAnswer {
    /// The `content_length` of a DONE line that announces raw bytes after it. The key is matched with its quotes
    /// and colon, which only a key can have: inside a JSON string every quote is escaped.
    package static func announcedLength(_ line: ArraySlice<UInt8>) -> Int? {
        let done = Array(#"{"type":"DONE""#.utf8)
        guard line.starts(with: done) else { return nil }
        let key = Array(#""content_length":"#.utf8)
        var i = line.startIndex
        while i + key.count <= line.endIndex {
            if line[i] == key[0] && line[i..<(i + key.count)].elementsEqual(key) {
                var j = i + key.count
                var n = 0
                var digits = 0
                while j < line.endIndex, line[j] >= 0x30 && line[j] <= 0x39, digits < 10 {
                    n = n * 10 + Int(line[j] - 0x30)
                    digits += 1
                    j += 1
                }
                return digits > 0 ? n : nil
            }
            i += 1
        }
        return nil
    }
}

/// The index of the first `\n` in `bytes[from...]`.
func firstNewline(in bytes: [UInt8], from start: Int) -> Int? {
    bytes.withUnsafeBytes { firstIndex(of: 0x0A, in: $0, from: start) }
}

/// A part of what is written to a child's stdin.
enum StdinPart: Sendable {
    /// These bytes.
    case bytes([UInt8])
    /// `count` bytes of the open regular file `fd` from `offset`, moved with splice(2).
    case file(fd: Int32, offset: Int, count: Int)

    var count: Int {
        switch self {
        case .bytes(let b): b.count
        case .file(_, _, let count): count
        }
    }
}
