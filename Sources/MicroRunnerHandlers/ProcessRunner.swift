import CMicroRunnerShims
import MicroRunnerProtocol
import MicroRunnerSystem

/// Which output stream a line or chunk came from.
package enum OutputStream: String, Sendable {
    case stdout
    case stderr
}

/// What to run and how.
package struct ProcessSpec: Sendable {
    /// Absolute path of the executable (see `ProcessRunner.resolveExecutable`).
    package var executable: String
    /// argv, argv[0] included.
    package var arguments: [String]
    /// Environment additions and overrides on top of the runner's own environment.
    package var environment: [String: String] = [:]
    /// Working directory; empty keeps the runner's.
    package var workingDirectory: String = ""
    /// Bytes written to the child's stdin, then closed; `nil` gives it /dev/null.
    package var standardInput: [UInt8]? = nil
    /// Keep stdout (else it goes to /dev/null, unless lines are streamed).
    package var captureOutput = true
    /// Keep stderr.
    package var captureError = true
    /// Bytes kept per stream; the rest is read and dropped (the child never blocks on a full pipe).
    package var maxOutputBytes = 1 << 20
    /// Called for each complete output line (without `\n`) while the child runs; lines longer than
    /// `maxLineBytes` arrive in pieces.
    package var onLine: (@Sendable (OutputStream, ArraySlice<UInt8>) -> Void)? = nil
    /// Longest line piece handed to `onLine`.
    package var maxLineBytes = 64 * 1024
    /// `onLine` gets the lines of one read at once, joined by `\n` (exec's `stream_batch`): one EVENT per read
    /// rather than per line.
    package var batchLines = false
    /// Monotonic nanoseconds after which the whole process group is stopped.
    package var deadline: Int64 = .max
    /// Monotonic nanoseconds at which the runner's TTL ends (stops the group with `.token(.ttlExpired)`).
    package var ttlDeadline: Int64 = .max
    /// Stops the whole process group when cancelled.
    package var cancellation: CancellationToken? = nil

    package init(executable: String, arguments: [String]) {
        self.executable = executable
        self.arguments = arguments
    }
}

/// Why the runner stopped the process group, when it did.
package enum StoppedBy: Sendable, Equatable {
    case deadline
    case token(StopReason)
}

/// What a finished process left behind.
package struct ProcessOutcome: Sendable {
    package var termination: Termination
    package var stdout: [UInt8]
    package var stderr: [UInt8]
    package var stdoutTruncated: Bool
    package var stderrTruncated: Bool
    /// Set when the runner ended the process (timeout or cancellation) rather than the process itself.
    package var stoppedBy: StoppedBy?
    /// Seconds from spawn to the end.
    package var duration: Double

    /// The exit status, or -1 for a signal death (the wire convention).
    package var exitCode: Int {
        switch termination {
        case .exited(let code): Int(code)
        case .signaled: -1
        }
    }

    /// The last `lines` lines of stderr (or of stdout when stderr is empty), for error messages.
    package func tail(_ lines: Int = 15) -> String {
        ASCII.lines(stderr.isEmpty ? stdout : stderr).suffix(lines).map { ASCII.string($0) }.joined(separator: "\n")
    }

    /// The signal that ended the process, if one did.
    package var signal: Int32? {
        if case .signaled(let s) = termination { return s }
        return nil
    }
}

/// Runs child processes with `posix_spawn`, in their own process group, with bounded capture,
/// line streaming, deadlines and cancellation.
///
/// `posix_spawn` rather than swift-subprocess: measured here (EXEC-FACTS.md) it costs ~0.6 ms a spawn
/// against ~1.0-1.3 ms, and it leaves process-group teardown and stdin feeding to us, which we need
/// to control exactly anyway (TERM, grace, KILL to the group; a child that stops reading its input).
package struct ProcessRunner: Sendable {
    /// Time between TERM and KILL when the runner stops a process group.
    package var killGrace: Int64 = 500_000_000
    /// After the leader exits, how long to keep draining pipes that a background grandchild still holds.
    package var drainAfterExit: Int64 = 250_000_000

    package init() {}

    /// Finds an executable the way `execvp` would, in `path` (or the default search path).
    /// - Returns: the absolute path, or `nil` when none is found.
    package static func resolveExecutable(_ name: String, path: String?) -> String? {
        if name.contains("/") { return name }
        let search = path ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        for dir in search.split(separator: ":", omittingEmptySubsequences: false) {
            let candidate = (dir.isEmpty ? "." : String(dir)) + "/" + name
            var st = stat()
            if stat(candidate, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG && access(candidate, X_OK) == 0 {
                return candidate
            }
        }
        return nil
    }

    /// Runs a process to its end (or until the deadline or cancellation stops its group).
    /// - Throws: `RunnerError` when the process cannot be started (`NOT_FOUND`, `PERMISSION_DENIED`,
    ///   `EXEC_FAILED`). A non-zero exit is a result, not an error.
    package func run(_ spec: ProcessSpec) throws(RunnerError) -> ProcessOutcome {
        if !spec.workingDirectory.isEmpty {
            var st = stat()
            if stat(spec.workingDirectory, &st) != 0 {
                let e = errno
                throw RunnerError(
                    e == ENOENT ? .notFound : e == EACCES ? .permissionDenied : .execFailed,
                    "work_dir \(spec.workingDirectory): \(errnoText(e))"
                )
            }
            if (st.st_mode & S_IFMT) != S_IFDIR {
                throw RunnerError(.invalidCommand, "work_dir \(spec.workingDirectory): not a directory")
            }
        }

        let wantOut = spec.captureOutput || spec.onLine != nil
        let wantErr = spec.captureError || spec.onLine != nil
        var request = SpawnRequest(executable: spec.executable, arguments: spec.arguments)
        request.environment = spec.environment
        request.standardInput = spec.standardInput != nil ? .pipe : .null
        request.standardOutput = wantOut ? .pipe : .null
        request.standardError = wantErr ? .pipe : .null
        request.workingDirectory = spec.workingDirectory
        // Own process group, so the whole tree can be signalled; no ignored or blocked signals inherited (the
        // runner ignores SIGPIPE and blocks its termination signals; children must not).
        request.newProcessGroup = true
        request.defaultSignals = [SIGPIPE, SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGCHLD]

        let start = Monotonic.now()
        let spawned: SpawnedProcess
        do throws(SpawnError) {
            spawned = try Spawn.start(request)
        } catch let error where error.creatingPipes {
            throw RunnerError(.execFailed, "exec: cannot create pipes: \(errnoText(error.code))")
        } catch let error where error.workingDirectoryUnsupported {
            // Never run in the wrong directory: a libc without the chdir action is an error, not a fallback.
            throw RunnerError(.execFailed, "exec: work_dir \(spec.workingDirectory): \(errnoText(error.code))")
        } catch {
            let rc = error.code
            let what = spec.arguments.first ?? spec.executable
            switch rc {
            case ENOENT: throw RunnerError(.notFound, "exec: \(what): executable not found (\(spec.executable))")
            case EACCES: throw RunnerError(.permissionDenied, "exec: \(what): permission denied (\(spec.executable))")
            default: throw RunnerError(.execFailed, "exec: \(what): cannot start: \(errnoText(rc))")
            }
        }
        // Spawn closed the child's ends once it had its copies: EOF arrives when it (and its children) finish.
        var pipes = Pipes(out: spawned.standardOutput, err: spawned.standardError, input: spawned.standardInput)
        defer { pipes.closeAll() }
        return supervise(pid: spawned.pid, spec: spec, pipes: &pipes, start: start)
    }

    private func supervise(pid: pid_t, spec: ProcessSpec, pipes: inout Pipes, start: Int64) -> ProcessOutcome {
        let pidfd = mr_pidfd_open(pid)
        defer { if pidfd >= 0 { close(pidfd) } }
        var out = Capture(limit: spec.captureOutput ? spec.maxOutputBytes : 0, stream: .stdout, spec: spec)
        var err = Capture(limit: spec.captureError ? spec.maxOutputBytes : 0, stream: .stderr, spec: spec)
        var input = InputFeed(bytes: spec.standardInput ?? [])
        if let w = pipes.input {
            _ = fcntl(w, F_SETFL, fcntl(w, F_GETFL) | O_NONBLOCK)
            if input.bytes.isEmpty { pipes.closeInput() }
        }
        var termination: Termination?
        var timing = Supervision(
            deadline: spec.deadline,
            ttlDeadline: spec.ttlDeadline,
            killGrace: killGrace,
            drainAfterExit: drainAfterExit
        )
        // Only a command with pipes needs a read buffer. 16 KiB, not 64: a streamed batch is at most one read,
        // and musl maps and unmaps each allocation of a 64 KiB batch's size (its String and its line): 57,000
        // page faults and 0.55 s for 100 MB of streamed lines, against 3,500 and 0.45 s with 16 KiB reads.
        var buffer = [UInt8](repeating: 0, count: pipes.out != nil || pipes.err != nil ? 16384 : 0)

        while true {
            let now = Monotonic.now()
            if let signal = timing.signal(at: now, requested: spec.cancellation?.stopReason) {
                Self.signalGroup(pid, signal, leaderReaped: termination != nil)
            }
            if termination == nil && pidfd < 0 {
                termination = reap(pid, block: false)
                if termination != nil { timing.leaderExited(at: now) }
            }
            if timing.readingIsOver(at: now, pipesOpen: pipes.out != nil || pipes.err != nil) { break }

            var fds: [pollfd] = []
            if let r = pipes.out { fds.append(pollfd(fd: r, events: Int16(POLLIN), revents: 0)) }
            if let r = pipes.err { fds.append(pollfd(fd: r, events: Int16(POLLIN), revents: 0)) }
            if let w = pipes.input { fds.append(pollfd(fd: w, events: Int16(POLLOUT), revents: 0)) }
            if termination == nil && pidfd >= 0 { fds.append(pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)) }
            if timing.stoppedBy == nil, let token = spec.cancellation, token.fd >= 0 {
                fds.append(pollfd(fd: token.fd, events: Int16(POLLIN), revents: 0))
            }
            let wakeAt = timing.wakeAt(
                now: now,
                pollingForExit: pidfd < 0,
                pollingForCancel: spec.cancellation.map { $0.fd < 0 } ?? false
            )
            let timeoutMs = Supervision.pollTimeout(until: wakeAt, now: now)

            let ready: Int
            do throws(SystemError) {
                ready = try Sys.poll(&fds, timeoutMs: timeoutMs)
            } catch {
                break
            }
            if ready == 0 { continue }

            for pfd in fds where pfd.revents != 0 {
                if pfd.fd == pipes.out {
                    if Self.read(pfd.fd, into: &out, buffer: &buffer) { pipes.closeOut() }
                } else if pfd.fd == pipes.err {
                    if Self.read(pfd.fd, into: &err, buffer: &buffer) { pipes.closeErr() }
                } else if pfd.fd == pipes.input {
                    if input.write(pfd) { pipes.closeInput() }
                } else if pfd.fd == pidfd && termination == nil {
                    termination = reap(pid, block: true)
                    timing.leaderExited(at: Monotonic.now())
                }
            }
        }
        out.finish()
        err.finish()
        pipes.closeAll()
        termination = reapAfterLoop(pid, termination, stopped: timing.stoppedBy != nil)
        return ProcessOutcome(
            termination: termination ?? .exited(-1),
            stdout: out.kept,
            stderr: err.kept,
            stdoutTruncated: out.truncated,
            stderrTruncated: err.truncated,
            stoppedBy: timing.stoppedBy,
            duration: Monotonic.seconds(since: start)
        )
    }

    /// Signals the process group; the leader alone when the group is gone but the leader was not reaped yet.
    private static func signalGroup(_ pid: pid_t, _ signal: Int32, leaderReaped: Bool) {
        // The group outlives its leader while any member lives; ESRCH means it is gone.
        if kill(-pid, signal) != 0 && !leaderReaped { kill(pid, signal) }
    }

    /// Reads what stdout's or stderr's pipe has into its capture. - Returns: whether the stream ended (end of
    /// file or an error), so its pipe can be closed.
    private static func read(_ fd: Int32, into capture: inout Capture, buffer: inout [UInt8]) -> Bool {
        // nil: nothing after all (would block); 0 or an error: that stream is over.
        let got: Int? = buffer.withUnsafeMutableBytes { raw in
            do throws(SystemError) { return try Sys.readSome(fd, into: raw) } catch { return 0 }
        }
        guard let got else { return false }
        if got > 0 {
            capture.append(buffer, count: got)
            return false
        }
        capture.finish()
        return true
    }

    /// After the loop. When the runner stopped the group it answers only once the group is gone: members that
    /// outlived TERM (or are still dying) get KILL now, and the group is given 200 ms to disappear. A leader
    /// still running (pipes closed early, poll failed) is never left behind.
    private func reapAfterLoop(_ pid: pid_t, _ termination: Termination?, stopped: Bool) -> Termination? {
        var termination = termination
        if stopped && (kill(-pid, 0) == 0 || termination == nil) {
            Self.signalGroup(pid, SIGKILL, leaderReaped: termination != nil)
            let giveUp = Monotonic.now() + 200_000_000
            while Monotonic.now() < giveUp {
                if termination == nil { termination = reap(pid, block: false) }
                if termination != nil && kill(-pid, 0) != 0 { break }
                usleep(2000)
            }
        }
        if termination == nil {
            if stopped { Self.signalGroup(pid, SIGKILL, leaderReaped: false) }
            termination = reap(pid, block: true)
        }
        return termination
    }

    private func reap(_ pid: pid_t, block: Bool) -> Termination? {
        do {
            return try Sys.wait(pid, block: block)
        } catch {
            return .exited(-1)  // ECHILD: someone else reaped it; nothing more to know
        }
    }
}

/// Bounded capture of one stream plus line splitting for streaming.
private struct Capture {
    let limit: Int
    let stream: OutputStream
    let onLine: (@Sendable (OutputStream, ArraySlice<UInt8>) -> Void)?
    let maxLineBytes: Int
    let batchLines: Bool
    var kept: [UInt8] = []
    var truncated = false
    var pending: [UInt8] = []
    /// With `batchLines`: the pieces of one read, joined by `\n`, handed over as one. At most one read (16 KiB)
    /// plus one unfinished line (`maxLineBytes`) and their separators.
    var batch: [UInt8] = []
    var batchPieces = 0

    init(limit: Int, stream: OutputStream, spec: ProcessSpec) {
        self.limit = limit
        self.stream = stream
        self.onLine = spec.onLine
        self.maxLineBytes = max(1, spec.maxLineBytes)
        self.batchLines = spec.batchLines
    }

    mutating func append(_ buffer: [UInt8], count: Int) {
        if limit > 0 {
            let room = limit - kept.count
            if room >= count {
                kept.append(contentsOf: buffer[0..<count])
            } else {
                if room > 0 { kept.append(contentsOf: buffer[0..<room]) }
                truncated = true
            }
        }
        guard onLine != nil else { return }
        var start = 0
        if batchLines, !pending.isEmpty, let newline = Self.firstNewline(in: buffer, from: 0, to: count) {
            // The line the last read left unfinished ends here: it goes out on its own, so the whole lines after
            // it can go out as they lie (reads rarely end on a newline: a flood took the slow path below nearly
            // always, copying every line into the batch byte by byte).
            pending.append(contentsOf: buffer[0..<newline])
            endLine()
            flushBatch()
            start = newline + 1
        }
        if batchLines && pending.isEmpty, let whole = wholeLines(buffer, from: start, count: count) {
            // The common case of a flood: the read's whole lines go out as they lie in the buffer.
            onLine?(stream, buffer[start..<whole])
            pending.append(contentsOf: buffer[(whole + 1)..<count])
            return
        }
        while let newline = Self.firstNewline(in: buffer, from: start, to: count) {
            pending.append(contentsOf: buffer[start..<newline])
            endLine()
            start = newline + 1
        }
        pending.append(contentsOf: buffer[start..<count])
        while pending.count >= maxLineBytes {
            deliver(pending[0..<maxLineBytes])
            pending.removeFirst(maxLineBytes)
        }
        flushBatch()
    }

    /// The end of the read's last line when its whole lines are, byte for byte, what batching them would give:
    /// no `\r` to drop, no line to cut, and an unfinished tail too short to cut. Under -Osize every
    /// `append(contentsOf:)` copies byte by byte: two copies of a 100 MB flood were a fifth of the runner's time.
    func wholeLines(_ buffer: [UInt8], from first: Int = 0, count: Int) -> Int? {
        buffer.withUnsafeBytes { raw -> Int? in
            guard firstIndex(of: 0x0D, in: raw, from: first, to: count) == nil else { return nil }
            var start = first
            var last: Int? = nil
            while let newline = firstIndex(of: 0x0A, in: raw, from: start, to: count) {
                if newline - start > maxLineBytes { return nil }
                last = newline
                start = newline + 1
            }
            return count - start < maxLineBytes ? last : nil
        }
    }

    static func firstNewline(in buffer: [UInt8], from start: Int, to end: Int) -> Int? {
        buffer.withUnsafeBytes { firstIndex(of: 0x0A, in: $0, from: start, to: end) }
    }

    /// The line in `pending` is complete: hand it on (without a `\r` before its `\n`), in pieces when long.
    mutating func endLine() {
        if pending.last == 0x0D { pending.removeLast() }
        // A long line that arrived whole in one read still goes out in pieces of at most maxLineBytes.
        var start = 0
        while pending.count - start > maxLineBytes {
            deliver(pending[start..<(start + maxLineBytes)])
            start += maxLineBytes
        }
        deliver(pending[start...])
        pending.removeAll(keepingCapacity: true)
    }

    mutating func deliver(_ piece: ArraySlice<UInt8>) {
        guard batchLines else {
            onLine?(stream, piece)
            return
        }
        if batchPieces > 0 { batch.append(0x0A) }
        batch.append(contentsOf: piece)
        batchPieces += 1
    }

    mutating func flushBatch() {
        guard batchPieces > 0 else { return }
        onLine?(stream, batch[...])
        batch.removeAll(keepingCapacity: true)
        batchPieces = 0
    }

    mutating func finish() {
        if onLine != nil && !pending.isEmpty { endLine() }
        flushBatch()
    }
}

/// What is left to write to the child's standard input (a non-blocking pipe, written as poll says it drains).
private struct InputFeed {
    var bytes: [UInt8]
    var offset = 0

    /// Writes what the pipe takes now. - Returns: whether the input is over (all written, or the child closed
    /// its end: what it did not read is dropped).
    mutating func write(_ pfd: pollfd) -> Bool {
        guard pfd.revents & Int16(POLLOUT) != 0 else {
            bytes = []  // POLLERR/POLLHUP
            return true
        }
        // nil: the pipe is full after all; -1: the child closed its stdin.
        let wrote: Int? = bytes.withUnsafeBytes { raw in
            do throws(SystemError) {
                return try Sys.writeSome(pfd.fd, UnsafeRawBufferPointer(rebasing: raw[offset...]))
            } catch {
                return -1
            }
        }
        if let wrote, wrote > 0 { offset += wrote }
        guard wrote == -1 || offset >= bytes.count else { return false }
        bytes = []
        return true
    }
}

/// The parent's ends of the child's pipes (from `Spawn`); each closed exactly once.
private struct Pipes {
    var out: Int32?
    var err: Int32?
    var input: Int32?

    mutating func closeOut() {
        if let fd = out { close(fd) }
        out = nil
    }

    mutating func closeErr() {
        if let fd = err { close(fd) }
        err = nil
    }

    mutating func closeInput() {
        if let fd = input { close(fd) }
        input = nil
    }

    mutating func closeAll() {
        closeOut()
        closeErr()
        closeInput()
    }
}
