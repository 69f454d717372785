import CMicroRunnerShims
import Foundation

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
/// every other child. Here each child has its own threads for everything that blocks (writing stdin,
/// reading stdout and stderr, reaping): async callers only await, so a 3 MB upload to an ssh that is still
/// connecting never holds one of the cooperative pool's few threads.
final class ChildProcess: @unchecked Sendable {
    let pid: pid_t
    private let stdinFD: Int32
    private let lock = NSLock()
    private var stderrTail: [UInt8] = []
    private var stdinClosed = false
    private var status: Int32?
    private let exited = Promise<Int32>()
    private let stderrDone = Promise<Void>()
    /// Writes waiting for the writer thread, in order.
    private var writes: [(bytes: [UInt8], done: Promise<Void>)] = []
    private let writeSignal = NSCondition()
    /// Whole stdout lines, without `\n`; finishes at EOF.
    let lines: AsyncStream<[UInt8]>
    private let linesContinuation: AsyncStream<[UInt8]>.Continuation

    /// Writing to a child that already exited raises SIGPIPE, which would end the controller; the client
    /// ignores it process-wide (once, at the first spawn) and handles EPIPE instead.
    private static let ignoreSIGPIPE: Void = {
        signal(SIGPIPE, SIG_IGN)
    }()

    init(executable: String, arguments: [String]) throws {
        Self.ignoreSIGPIPE
        (lines, linesContinuation) = AsyncStream.makeStream(of: [UInt8].self, bufferingPolicy: .unbounded)
        var inPipe: [Int32] = [-1, -1]
        var outPipe: [Int32] = [-1, -1]
        var errPipe: [Int32] = [-1, -1]
        guard mr_pipe_cloexec(&inPipe) == 0, mr_pipe_cloexec(&outPipe) == 0, mr_pipe_cloexec(&errPipe) == 0 else {
            for fd in inPipe + outPipe + errPipe where fd >= 0 { close(fd) }
            throw ClientError(.transport, "cannot create pipes: \(String(cString: strerror(errno)))")
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, inPipe[0], 0)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var mask = sigset_t()
        sigemptyset(&mask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGPIPE)
        posix_spawnattr_setsigmask(&attr, &mask)
        posix_spawnattr_setsigdefault(&attr, &defaults)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var argv: [UnsafeMutablePointer<CChar>?] =
            ([executable.split(separator: "/").last.map(String.init) ?? executable] + arguments).map { strdup($0) }
        argv.append(nil)
        defer { for p in argv { free(p) } }
        var child: pid_t = 0
        var rc = posix_spawn(&child, executable, &actions, &attr, argv, mr_environ())
        // ETXTBSY: a just-copied executable is still open for writing in a child another thread forked
        // before that child exec'd; it clears within milliseconds.
        var attempts = 0
        while rc == ETXTBSY && attempts < 50 {
            attempts += 1
            usleep(2000)
            rc = posix_spawn(&child, executable, &actions, &attr, argv, mr_environ())
        }
        close(inPipe[0])
        close(outPipe[1])
        close(errPipe[1])
        guard rc == 0 else {
            close(inPipe[1])
            close(outPipe[0])
            close(errPipe[0])
            throw ClientError(.transport, "cannot start \(executable): \(String(cString: strerror(rc)))")
        }
        pid = child
        stdinFD = inPipe[1]
        let outFD = outPipe[0]
        let errFD = errPipe[0]
        let continuation = linesContinuation
        Thread.detachNewThread {
            var pending: [UInt8] = []
            var scanned = 0
            var chunk = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let n = chunk.withUnsafeMutableBytes { read(outFD, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                pending.append(contentsOf: chunk[0..<n])
                while let nl = pending[scanned...].firstIndex(of: 0x0A) {
                    continuation.yield(Array(pending[0..<nl]))
                    pending.removeSubrange(0...nl)
                    scanned = 0
                }
                scanned = pending.count
            }
            close(outFD)
            continuation.finish()
        }
        Thread.detachNewThread { [self] in
            var chunk = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = chunk.withUnsafeMutableBytes { read(errFD, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                lock.withLock {
                    stderrTail.append(contentsOf: chunk[0..<n])
                    if stderrTail.count > 16384 { stderrTail.removeFirst(stderrTail.count - 16384) }
                }
            }
            close(errFD)
            stderrDone.complete(.success(()))
        }
        Thread.detachNewThread { [self] in
            var raw: Int32 = 0
            while waitpid(pid, &raw, 0) < 0 && errno == EINTR {}
            let code = raw & 0x7F == 0 ? (raw >> 8) & 0xFF : 128 + (raw & 0x7F)
            lock.withLock { status = code }
            exited.complete(.success(code))
        }
        Thread.detachNewThread { [self] in writerLoop() }
    }

    /// Writes queued bytes to the child's stdin, in order, then closes it when asked.
    private func writerLoop() {
        while true {
            writeSignal.lock()
            while writes.isEmpty && !lock.withLock({ stdinClosed }) { writeSignal.wait() }
            let next = writes.isEmpty ? nil : writes.removeFirst()
            writeSignal.unlock()
            guard let (bytes, done) = next else {
                close(stdinFD)
                return
            }
            var offset = 0
            var failure: Int32 = 0
            while offset < bytes.count {
                let n = bytes.withUnsafeBytes { write(stdinFD, $0.baseAddress! + offset, $0.count - offset) }
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = errno
                    break
                }
                offset += n
            }
            if failure != 0 {
                done.complete(
                    .failure(
                        ClientError(.runnerExited, "cannot write to the runner: \(String(cString: strerror(failure)))")
                    )
                )
            } else {
                done.complete(.success(()))
            }
        }
    }

    deinit {
        closeStdin()
    }

    /// Writes bytes to the child's stdin (on the writer thread) and waits until they are written.
    func send(_ bytes: [UInt8]) async throws {
        let done = Promise<Void>()
        guard enqueue(bytes, done) else { throw ClientError(.closed, "stdin of the runner is already closed") }
        try await done.value()
    }

    private func enqueue(_ bytes: [UInt8], _ done: Promise<Void>) -> Bool {
        writeSignal.lock()
        defer {
            writeSignal.signal()
            writeSignal.unlock()
        }
        if lock.withLock({ stdinClosed }) { return false }
        writes.append((bytes, done))
        return true
    }

    /// Closes the child's stdin once everything queued is written (the runner then finishes and sends EXIT).
    func closeStdin() {
        writeSignal.lock()
        lock.withLock { stdinClosed = true }
        writeSignal.signal()
        writeSignal.unlock()
    }

    /// The last bytes the child wrote to stderr, as text.
    func stderrText() -> String {
        lock.withLock { String(decoding: stderrTail, as: UTF8.self) }
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
}
