import CMicroRunnerShims
import MicroRunnerCrypto
import MicroRunnerProtocol
import SystemPackage

/// File-system helpers shared by the file, sudoers and sshd handlers.
package enum FileSystem {
    /// `lstat`/`stat` result, or `nil` with `errno` set.
    package static func status(_ path: String, followLinks: Bool = true) -> stat? {
        var st = stat()
        let rc = followLinks ? stat(path, &st) : lstat(path, &st)
        return rc == 0 ? st : nil
    }

    /// Maps an errno from a file operation to a RunnerError with the path in the message.
    package static func error(_ code: Int32, _ what: String, _ path: String, hint: String = "") -> RunnerError {
        let suffix = hint.isEmpty ? "" : " (\(hint))"
        let message = "\(what): \(path): \(errnoText(code))\(suffix)"
        switch code {
        case ENOENT, ENOTDIR: return RunnerError(.notFound, message)
        case EACCES, EPERM, EROFS: return RunnerError(.permissionDenied, message)
        case EISDIR: return RunnerError(.invalidCommand, message)
        case EAGAIN, EBUSY, ETXTBSY: return RunnerError(.conflict, message, retryable: true, retryAfter: 1)
        default: return RunnerError(.execFailed, message)
        }
    }

    /// Calls `body` with each chunk of the file at `path`, in order, until it returns false or the file ends.
    package static func forEachChunk(
        _ path: String,
        chunkSize: Int = 1 << 16,
        _ body: (UnsafeRawBufferPointer) -> Bool
    ) throws(RunnerError) {
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec])
        } catch {
            throw Self.error(errnoOf(error), "read", path)
        }
        defer { try? fd.close() }
        var chunk = [UInt8](repeating: 0, count: chunkSize)
        while true {
            let n: Int
            do {
                n = try chunk.withUnsafeMutableBytes { try fd.read(into: $0) }
            } catch {
                throw Self.error(errnoOf(error), "read", path)
            }
            if n == 0 { return }
            let more = chunk.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            if !more { return }
        }
    }

    /// Reads a whole regular file (bounded).
    package static func readAll(_ path: String, limit: Int = 64 << 20) throws(RunnerError) -> [UInt8] {
        var out: [UInt8] = []
        try forEachChunk(path) { bytes in
            out.append(contentsOf: bytes.prefix(limit - out.count))
            return out.count < limit
        }
        return out
    }

    /// Whether the file at `path` holds exactly `bytes` (read in chunks and compared; no hashing).
    package static func contentEquals(_ path: String, _ bytes: [UInt8]) -> Bool {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var chunk = [UInt8](repeating: 0, count: min(1 << 20, bytes.count + 1))
        var offset = 0
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return false }
            if n == 0 { return offset == bytes.count }
            if offset + n > bytes.count { return false }
            let same = chunk.withUnsafeBytes { c in
                bytes.withUnsafeBytes { b in memcmp(c.baseAddress!, b.baseAddress! + offset, n) == 0 }
            }
            if !same { return false }
            offset += n
        }
    }

    /// Whether two files have the same content.
    package static func filesEqual(_ a: String, _ b: String) -> Bool {
        let fa = open(a, O_RDONLY | O_CLOEXEC)
        guard fa >= 0 else { return false }
        defer { close(fa) }
        let fb = open(b, O_RDONLY | O_CLOEXEC)
        guard fb >= 0 else { return false }
        defer { close(fb) }
        var ba = [UInt8](repeating: 0, count: 1 << 16)
        var bb = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let na = ba.withUnsafeMutableBytes { read(fa, $0.baseAddress, $0.count) }
            var nb = 0
            while nb < max(na, 0) {
                let r = bb.withUnsafeMutableBytes { read(fb, $0.baseAddress! + nb, na - nb) }
                if r <= 0 { return false }
                nb += r
            }
            if na < 0 { return false }
            if na == 0 {
                var probe: UInt8 = 0
                return read(fb, &probe, 1) == 0
            }
            if memcmp(ba, bb, na) != 0 { return false }
        }
    }

    /// SHA-256 of a file's content, streamed.
    package static func sha256(of path: String) throws(RunnerError) -> String {
        var hash = Crypto.SHA256()
        try forEachChunk(path) { bytes in
            hash.update(bytes)
            return true
        }
        return hash.finalizeHex()
    }

    /// Writes `bytes` to a new temporary file beside `path` and returns its path; the caller renames or removes it.
    /// The file is created 0600 and fsynced.
    package static func writeTemporary(beside path: String, _ bytes: [UInt8]) throws(RunnerError) -> String {
        let (fd, temp) = try createTemporary(beside: path)
        do {
            try bytes.withUnsafeBytes { _ = try fd.writeAll($0) }
            if fsync(fd.rawValue) != 0 { throw Errno(rawValue: errno) }
            try fd.close()
        } catch {
            try? fd.close()
            unlink(temp)
            let code = (error as? Errno)?.rawValue ?? EIO
            throw Self.error(code, "write", path, hint: "the existing file was left untouched")
        }
        return temp
    }

    /// Creates an empty, exclusive 0600 temporary file in the directory of `path`.
    package static func createTemporary(
        beside path: String,
        tag: String = "tmp"
    ) throws(RunnerError) -> (
        FileDescriptor, String
    ) {
        let fp = FilePath(path)
        let dir = fp.removingLastComponent().string
        let name = fp.lastComponent?.string ?? "file"
        for _ in 0..<16 {
            let temp =
                (dir.isEmpty ? "." : dir) + "/." + name + ".mr-" + tag + "-" + String(getpid()) + "-" + randomHex(6)
            do {
                let fd = try FileDescriptor.open(
                    FilePath(temp),
                    .writeOnly,
                    options: [.create, .exclusiveCreate, .closeOnExec],
                    permissions: [.ownerReadWrite]
                )
                return (fd, temp)
            } catch Errno.fileExists {
                continue
            } catch {
                throw Self.error(errnoOf(error), "write", temp)
            }
        }
        throw RunnerError(.execFailed, "write: \(path): cannot create a temporary file beside it")
    }

    /// fsync on a directory, so a rename in it is durable.
    package static func syncDirectory(of path: String) {
        let dir = FilePath(path).removingLastComponent().string
        let fd = open(dir.isEmpty ? "." : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
    }

    /// Random lowercase hex from the kernel.
    package static func randomHex(_ bytes: Int) -> String {
        var buf = [UInt8](repeating: 0, count: bytes)
        var got = 0
        while got < bytes {
            let n = buf.withUnsafeMutableBytes { mr_getrandom($0.baseAddress! + got, bytes - got) }
            if n <= 0 { break }
            got += n
        }
        return Crypto.hex(buf)
    }

    /// `0644` form of a mode.
    package static func octalMode(_ mode: mode_t) -> String {
        let s = String(mode & 0o7777, radix: 8)
        return String(repeating: "0", count: max(0, 4 - s.count)) + s
    }

    /// Parses `"0644"`, `"644"`, `"0o644"`.
    package static func parseMode(_ text: String) -> mode_t? {
        var t = Substring(text)
        if t.hasPrefix("0o") { t = t.dropFirst(2) }
        guard (1...5).contains(t.count), t.allSatisfy({ $0 >= "0" && $0 <= "7" }), let v = UInt32(t, radix: 8),
            v <= 0o7777
        else { return nil }
        return mode_t(v)
    }

    /// A user id from a name or a number, read from `/etc/passwd` (works in a static binary, where NSS does not).
    package static func userID(_ nameOrID: String, passwd: String = "/etc/passwd") -> uid_t? {
        if let id = UInt32(nameOrID) { return uid_t(id) }
        return lookup(nameOrID, in: passwd).map { uid_t($0) }
    }

    /// A group id from a name or a number, read from `/etc/group`.
    package static func groupID(_ nameOrID: String, group: String = "/etc/group") -> gid_t? {
        if let id = UInt32(nameOrID) { return gid_t(id) }
        return lookup(nameOrID, in: group).map { gid_t($0) }
    }

    /// The primary group of a user, from `/etc/passwd`.
    package static func primaryGroup(ofUser name: String, passwd: String = "/etc/passwd") -> gid_t? {
        guard let bytes = try? readAll(passwd) else { return nil }
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
            let f = line.split(separator: ":", omittingEmptySubsequences: false)
            if f.count >= 4 && f[0] == name { return UInt32(f[3]).map { gid_t($0) } }
        }
        return nil
    }

    private static func lookup(_ name: String, in file: String) -> UInt32? {
        guard let bytes = try? readAll(file) else { return nil }
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
            let f = line.split(separator: ":", omittingEmptySubsequences: false)
            if f.count >= 3 && f[0] == name { return UInt32(f[2]) }
        }
        return nil
    }
}

/// The errno inside a swift-system error (EIO for anything else).
package func errnoOf(_ error: any Error) -> Int32 {
    (error as? Errno)?.rawValue ?? EIO
}
