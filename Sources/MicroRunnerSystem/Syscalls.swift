import MicroRunnerProtocol

#if os(Linux) || MR_LINUX  // MR_LINUX: Linux through a bare-metal triple (the aarch64 Embedded build)
/// `O_PATH` (Linux 2.6.39): a descriptor that names a place in the tree without opening it for I/O; enough for
/// every `*at` call and fstat. Glibc's module hides it behind _GNU_SOURCE; the value is the same on every
/// Linux architecture the runner is built for (x86_64, aarch64).
package let O_PATH: Int32 = 0o10000000
#endif

/// How a process ended, decoded from waitpid(2)'s status.
package enum Termination: Sendable, Equatable {
    /// It exited with this status (0-255).
    case exited(Int32)
    /// A signal ended it.
    case signaled(Int32)

    /// Decodes a waitpid(2) status (`WIFEXITED`/`WEXITSTATUS`, `WTERMSIG`: macros Swift cannot import).
    package init(waitStatus status: Int32) {
        self = status & 0x7F == 0 ? .exited((status >> 8) & 0xFF) : .signaled(status & 0x7F)
    }

    /// The status as a shell reports it: the exit status, or 128 + the signal.
    package var shellStatus: Int32 {
        switch self {
        case .exited(let code): code
        case .signaled(let signal): 128 + signal
        }
    }
}

/// An errno from a failed system call.
package struct SystemError: Error, Sendable, Equatable {
    /// The errno value.
    package var code: Int32

    package init(_ code: Int32) { self.code = code }

    /// The errno the last failed call left.
    package static var last: SystemError { SystemError(errno) }
}

/// Every system call the file layer makes, wrapped once: EINTR is retried here and nowhere else, and a
/// failure is a typed `SystemError` (swift-system's `Internals/Syscalls.swift` is the model). Written in
/// the Embedded subset: no existentials, typed throws.
package enum Sys {
    /// Retries `body` while it fails with EINTR; any other failure (-1) becomes a `SystemError`.
    @inline(__always)
    static func retrying<T: BinaryInteger>(_ body: () -> T) throws(SystemError) -> T {
        while true {
            let rc = body()
            if rc >= 0 { return rc }
            if errno != EINTR { throw SystemError.last }
        }
    }

    /// openat(2); O_CLOEXEC is always added.
    package static func openat(
        _ dir: Int32,
        _ path: String,
        _ flags: Int32,
        _ mode: mode_t = 0
    ) throws(SystemError) -> Int32 {
        try retrying { c_openat(dir, path, flags | O_CLOEXEC, mode) }
    }

    /// fstat(2).
    package static func fstat(_ fd: Int32) throws(SystemError) -> stat {
        var st = stat()
        _ = try retrying { c_fstat(fd, &st) }
        return st
    }

    /// fstatat(2) without following a final symlink.
    package static func lstatat(_ dir: Int32, _ name: String) throws(SystemError) -> stat {
        var st = stat()
        _ = try retrying { fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) }
        return st
    }

    /// readlinkat(2), bounded to PATH_MAX.
    package static func readlinkat(_ dir: Int32, _ name: String) throws(SystemError) -> String {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = try retrying {
            buffer.withUnsafeMutableBytes { c_readlinkat(dir, name, $0.baseAddress!, $0.count) }
        }
        return String(decoding: buffer[0..<n], as: UTF8.self)
    }

    /// mkdirat(2).
    package static func mkdirat(_ dir: Int32, _ name: String, _ mode: mode_t) throws(SystemError) {
        _ = try retrying { c_mkdirat(dir, name, mode) }
    }

    /// renameat(2) within or across directory descriptors.
    package static func renameat(_ fromDir: Int32, _ from: String, _ toDir: Int32, _ to: String) throws(SystemError) {
        _ = try retrying { c_renameat(fromDir, from, toDir, to) }
    }

    /// linkat(2) without following symlinks (a swapped-in symlink is linked as itself, never followed).
    package static func linkat(_ fromDir: Int32, _ from: String, _ toDir: Int32, _ to: String) throws(SystemError) {
        _ = try retrying { c_linkat(fromDir, from, toDir, to, 0) }
    }

    /// unlinkat(2) of a non-directory.
    package static func unlinkat(_ dir: Int32, _ name: String) throws(SystemError) {
        _ = try retrying { c_unlinkat(dir, name, 0) }
    }

    /// fchmod(2).
    package static func fchmod(_ fd: Int32, _ mode: mode_t) throws(SystemError) {
        _ = try retrying { c_fchmod(fd, mode) }
    }

    /// fchown(2); `nil` keeps that id.
    package static func fchown(_ fd: Int32, _ uid: uid_t?, _ gid: gid_t?) throws(SystemError) {
        _ = try retrying { c_fchown(fd, uid ?? uid_t.max, gid ?? gid_t.max) }
    }

    /// fsync(2).
    package static func fsync(_ fd: Int32) throws(SystemError) {
        _ = try retrying { c_fsync(fd) }
    }

    /// ftruncate(2).
    package static func ftruncate(_ fd: Int32, _ size: Int) throws(SystemError) {
        _ = try retrying { c_ftruncate(fd, off_t(size)) }
    }

    /// read(2) into `buffer`; 0 at end of file.
    package static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(SystemError) -> Int {
        try retrying { c_read(fd, buffer.baseAddress, buffer.count) }
    }

    /// pread(2) into `buffer` at `offset`; 0 at end of file.
    package static func pread(
        _ fd: Int32,
        into buffer: UnsafeMutableRawBufferPointer,
        at offset: Int
    ) throws(SystemError) -> Int {
        try retrying { c_pread(fd, buffer.baseAddress, buffer.count, off_t(offset)) }
    }

    /// read(2) (or pread(2) when `offset` is given) into `buffer[start...]`; 0 at end of file.
    package static func read(
        _ fd: Int32,
        into buffer: inout [UInt8],
        from start: Int = 0,
        offset: Int? = nil
    ) throws(SystemError) -> Int {
        while true {
            let n = buffer.withUnsafeMutableBytes { raw -> Int in
                let base = raw.baseAddress! + start
                let count = raw.count - start
                if let offset { return c_pread(fd, base, count, off_t(offset)) }
                return c_read(fd, base, count)
            }
            if n >= 0 { return n }
            if errno != EINTR { throw SystemError.last }
        }
    }

    /// waitpid(2) until `pid` ends: its exit status, or 128 + the signal that ended it (as a shell reports it).
    package static func waitForExit(_ pid: pid_t) throws(SystemError) -> Int32 {
        // nil is not reached: a blocking wait returns only once the process has ended.
        try wait(pid, block: true)?.shellStatus ?? -1
    }

    /// waitpid(2) of `pid`: how it ended, or `nil` when `block` is false and it still runs. ECHILD (another
    /// waiter reaped it) is thrown: how it ended cannot be known any more.
    package static func wait(_ pid: pid_t, block: Bool) throws(SystemError) -> Termination? {
        var status: Int32 = 0
        let reaped = try retrying { c_waitpid(pid, &status, block ? 0 : WNOHANG) }
        guard reaped == pid else { return nil }
        return Termination(waitStatus: status)
    }

    /// read(2) on a descriptor that may be non-blocking: the bytes read (0 at end of file), or `nil` when it
    /// would block.
    package static func readSome(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(SystemError) -> Int? {
        while true {
            let n = c_read(fd, buffer.baseAddress, buffer.count)
            if n >= 0 { return n }
            if errno == EAGAIN { return nil }  // EWOULDBLOCK is EAGAIN on Linux
            if errno != EINTR { throw SystemError.last }
        }
    }

    /// write(2) on a descriptor that may be non-blocking: the bytes written (perhaps fewer than given), or `nil`
    /// when it would block.
    package static func writeSome(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws(SystemError) -> Int? {
        while true {
            let n = c_write(fd, bytes.baseAddress, bytes.count)
            if n >= 0 { return n }
            if errno == EAGAIN { return nil }
            if errno != EINTR { throw SystemError.last }
        }
    }

    /// splice(2) from the regular file `fd` at `offset` (advanced past what moved) into the pipe `pipe`, which
    /// may be non-blocking: the bytes moved (0 at the file's end), or `nil` when the pipe is full. The page
    /// cache's pages go into the pipe without a copy through this process.
    package static func splice(
        from fd: Int32,
        offset: inout Int,
        to pipe: Int32,
        count: Int
    ) throws(SystemError) -> Int? {
        while true {
            var at = Int64(offset)
            let n = mr_splice_from_file(fd, &at, pipe, count)
            if n >= 0 {
                offset = Int(at)
                return n
            }
            if errno == EAGAIN { return nil }
            if errno != EINTR { throw SystemError.last }
        }
    }

    /// poll(2): how many descriptors have events; 0 when `timeoutMs` passed or a signal interrupted the wait
    /// (not retried here: a caller with a deadline recomputes what is left of it, and polls again).
    package static func poll(_ fds: inout [pollfd], timeoutMs: Int32) throws(SystemError) -> Int {
        let n = fds.withUnsafeMutableBufferPointer { c_poll($0.baseAddress, nfds_t($0.count), timeoutMs) }
        if n >= 0 { return Int(n) }
        if errno == EINTR { return 0 }
        throw SystemError.last
    }

    /// Writes all of `bytes`, retrying short writes.
    package static func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws(SystemError) {
        let result = bytes.withUnsafeBytes { raw in Result { () throws(SystemError) in try writeAll(fd, raw) } }
        try result.get()
    }

    /// Writes all of `bytes`, retrying short writes, at most `slice` bytes per write(2).
    package static func writeAll(
        _ fd: Int32,
        _ bytes: UnsafeRawBufferPointer,
        slice: Int = .max
    ) throws(SystemError) {
        var offset = 0
        while offset < bytes.count {
            let count = min(bytes.count - offset, slice)
            offset += try retrying { c_write(fd, bytes.baseAddress! + offset, count) }
        }
    }

    /// Starts writing `count` bytes of `fd` from `offset` to disk without waiting (sync_file_range's
    /// SYNC_FILE_RANGE_WRITE), so the fsync that makes a large file durable finds little left to do: a 1 GiB
    /// file's fsync took ~0.5 s at the end of a transfer here. Best effort: failures change nothing.
    package static func startWriteback(_ fd: Int32, offset: Int, count: Int) {
        _ = mr_start_writeback(fd, Int64(offset), Int64(count))
    }

    /// The most a file's content is written with at once (`writeAll(_:_:slice:)`). On this project's VM (a
    /// Firecracker guest whose balloon takes back free memory), one 4 MiB write(2) puts the page cache in large
    /// folios drawn from memory the host has reclaimed: 1 GiB written to a new file took 4.1-4.9 s in 4 MiB
    /// writes, 3.1 s in 1 MiB writes and 0.46-0.69 s in 128-256 KiB writes (`dd bs=`), and the runner's 1 GiB put
    /// spent 3.2 s of its 5.9 s of CPU in that copy. 128 KiB writes cost nothing measurable on other machines.
    package static let fileWriteSlice = 128 << 10

    /// Calls `body` with the name of each entry of the directory `dir` refers to (`.` and `..` included), read
    /// through a descriptor of its own so `dir` keeps its offset. A name is only valid during its call. An error
    /// while reading ends the listing early: callers use it to tidy up, never to decide what exists.
    package static func forEachName(
        inDirectory dir: Int32,
        _ body: (UnsafeBufferPointer<UInt8>) -> Void
    ) throws(SystemError) {
        let fd = try openat(dir, ".", O_RDONLY | O_DIRECTORY)
        guard let stream = fdopendir(fd) else {
            let error = SystemError.last
            close(fd)
            throw error
        }
        defer { closedir(stream) }
        while let entry = readdir(stream) {
            // Never `entry.pointee.d_name`: see mr_dirent_name.
            guard let name = mr_dirent_name(entry) else { continue }
            let length = strlen(name)
            name.withMemoryRebound(to: UInt8.self, capacity: length) {
                body(UnsafeBufferPointer(start: $0, count: length))
            }
        }
    }

    /// close(2); EINTR is not retried (Linux closes the descriptor anyway).
    package static func close(_ fd: Int32) {
        _ = c_close(fd)
    }
}

// The C functions under names of their own: inside `Sys`, an unqualified `fstat` would find the member.
private func c_openat(_ d: Int32, _ p: String, _ f: Int32, _ m: mode_t) -> Int32 { openat(d, p, f, m) }
private func c_fstat(_ fd: Int32, _ st: inout stat) -> Int32 { fstat(fd, &st) }
private func c_readlinkat(_ d: Int32, _ p: String, _ b: UnsafeMutableRawPointer, _ n: Int) -> Int {
    readlinkat(d, p, b.assumingMemoryBound(to: CChar.self), n)
}
private func c_mkdirat(_ d: Int32, _ p: String, _ m: mode_t) -> Int32 { mkdirat(d, p, m) }
private func c_renameat(_ a: Int32, _ p: String, _ b: Int32, _ q: String) -> Int32 { renameat(a, p, b, q) }
private func c_linkat(_ a: Int32, _ p: String, _ b: Int32, _ q: String, _ f: Int32) -> Int32 { linkat(a, p, b, q, f) }
private func c_unlinkat(_ d: Int32, _ p: String, _ f: Int32) -> Int32 { unlinkat(d, p, f) }
private func c_fchmod(_ fd: Int32, _ m: mode_t) -> Int32 { fchmod(fd, m) }
private func c_fchown(_ fd: Int32, _ u: uid_t, _ g: gid_t) -> Int32 { fchown(fd, u, g) }
private func c_fsync(_ fd: Int32) -> Int32 { fsync(fd) }
private func c_ftruncate(_ fd: Int32, _ n: off_t) -> Int32 { ftruncate(fd, n) }
private func c_read(_ fd: Int32, _ b: UnsafeMutableRawPointer?, _ n: Int) -> Int { read(fd, b, n) }
private func c_pread(_ fd: Int32, _ b: UnsafeMutableRawPointer?, _ n: Int, _ o: off_t) -> Int { pread(fd, b, n, o) }
private func c_write(_ fd: Int32, _ b: UnsafeRawPointer?, _ n: Int) -> Int { write(fd, b, n) }
private func c_waitpid(_ pid: pid_t, _ status: inout Int32, _ options: Int32) -> pid_t {
    waitpid(pid, &status, options)
}
private func c_poll(_ fds: UnsafeMutablePointer<pollfd>?, _ count: nfds_t, _ timeout: Int32) -> Int32 {
    poll(fds, count, timeout)
}
private func c_close(_ fd: Int32) -> Int32 { close(fd) }
