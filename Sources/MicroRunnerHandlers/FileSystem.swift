import CMicroRunnerShims
import MicroRunnerCrypto
import MicroRunnerProtocol
import MicroRunnerSystem

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
        let cause = "errno \(code): \(errnoText(code))"
        switch code {
        case ENOENT, ENOTDIR: return RunnerError(.notFound, message, cause: cause)
        case EACCES, EPERM, EROFS: return RunnerError(.permissionDenied, message, cause: cause)
        case EISDIR: return RunnerError(.invalidCommand, message, cause: cause)
        case EAGAIN, EBUSY, ETXTBSY:
            return RunnerError(.conflict, message, retryable: true, retryAfter: 1, cause: cause)
        default: return RunnerError(.execFailed, message, cause: cause)
        }
    }

    /// Calls `body` with each chunk of the open file, from its current offset, until it returns false or the
    /// file ends.
    package static func forEachChunk(
        _ file: Descriptor,
        chunkSize: Int = 1 << 16,
        _ body: (UnsafeRawBufferPointer) throws(SystemError) -> Bool
    ) throws(SystemError) {
        var chunk = [UInt8](repeating: 0, count: chunkSize)
        while true {
            let n = try Sys.read(file.fd, into: &chunk)
            if n == 0 { return }
            let more = chunk.withUnsafeBytes { raw in
                Result { () throws(SystemError) in try body(UnsafeRawBufferPointer(rebasing: raw[0..<n])) }
            }
            if try !more.get() { return }
        }
    }

    /// Opens a file the runner itself trusts by path (/etc/passwd, a key file, sshd's PidFile) for reading:
    /// never blocks on a FIFO, never becomes a controlling terminal, and refuses anything but a regular file.
    package static func openTrusted(_ path: String) throws(RunnerError) -> Descriptor {
        let file: Descriptor
        do {
            file = Descriptor(try Sys.openat(AT_FDCWD, path, O_RDONLY | O_NONBLOCK | O_NOCTTY))
        } catch {
            throw Self.error(error.code, "read", path)
        }
        guard let st = try? file.status(), (st.st_mode & S_IFMT) == S_IFREG else {
            throw RunnerError(.invalidCommand, "read: \(path): not a regular file")
        }
        return file
    }

    /// Reads a whole regular file, at most `limit` bytes.
    package static func readAll(_ path: String, limit: Int = 64 << 20) throws(RunnerError) -> [UInt8] {
        try readAll(try openTrusted(path), limit: limit, path: path)
    }

    /// Reads an open file from its current offset, at most `limit` bytes.
    package static func readAll(_ file: Descriptor, limit: Int, path: String) throws(RunnerError) -> [UInt8] {
        var out: [UInt8] = []
        do {
            try forEachChunk(file) { (bytes) throws(SystemError) in
                out.append(contentsOf: bytes.prefix(limit - out.count))
                return out.count < limit
            }
        } catch {
            throw Self.error(error.code, "read", path)
        }
        return out
    }

    /// Opens the existing regular file at `location` for reading, without following a symlink, and checks it is
    /// the file `expect` described (device and inode), when given.
    package static func openRegular(
        _ location: PathResolver.Location,
        what: String,
        expect: stat? = nil
    ) throws(RunnerError) -> Descriptor {
        let file: Descriptor
        do {
            file = Descriptor(
                try Sys.openat(location.directory.fd, location.name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY)
            )
        } catch {
            if error.code == ELOOP {
                throw RunnerError(
                    .conflict,
                    "\(what): \(location.path) became a symlink while it was being read; nothing was done",
                    retryable: true
                )
            }
            throw Self.error(error.code, what, location.path)
        }
        let st: stat
        do { st = try file.status() } catch { throw Self.error(error.code, what, location.path) }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            if (st.st_mode & S_IFMT) == S_IFDIR { throw .invalid("\(what): \(location.path): is a directory") }
            throw .invalid("\(what): \(location.path): not a regular file")
        }
        if let expect, UInt64(expect.st_dev) != UInt64(st.st_dev) || UInt64(expect.st_ino) != UInt64(st.st_ino) {
            throw RunnerError(
                .conflict,
                "\(what): \(location.path) was replaced while it was being read; nothing was done",
                retryable: true
            )
        }
        return file
    }

    /// Whether the open file holds exactly `bytes` (read from offset 0 in chunks and compared; no hashing).
    package static func contentEquals(_ file: Descriptor, _ bytes: [UInt8]) -> Bool {
        var chunk = [UInt8](repeating: 0, count: min(1 << 20, bytes.count + 1))
        var offset = 0
        while true {
            let n: Int
            do {
                n = try Sys.read(file.fd, into: &chunk, offset: offset)
            } catch { return false }
            if n == 0 { return offset == bytes.count }
            if offset + n > bytes.count { return false }
            let same = chunk.withUnsafeBytes { c in
                bytes.withUnsafeBytes { b in memcmp(c.baseAddress!, b.baseAddress! + offset, n) == 0 }
            }
            if !same { return false }
            offset += n
        }
    }

    /// Whether two open files have the same content (both read from offset 0).
    package static func filesEqual(_ a: Descriptor, _ b: Descriptor) -> Bool {
        var ba = [UInt8](repeating: 0, count: 1 << 16)
        var bb = [UInt8](repeating: 0, count: 1 << 16)
        var offset = 0
        while true {
            let na: Int
            do {
                na = try Sys.read(a.fd, into: &ba, offset: offset)
            } catch { return false }
            // Read the same number of bytes from b (pread may return less than asked).
            var nb = 0
            let want = max(na, 1)
            while nb < want {
                var part = [UInt8](repeating: 0, count: want - nb)
                let r: Int
                do { r = try Sys.read(b.fd, into: &part, offset: offset + nb) } catch { return false }
                if r == 0 { break }
                bb.replaceSubrange(nb..<(nb + r), with: part[0..<r])
                nb += r
            }
            if na == 0 { return nb == 0 }
            if nb != na || memcmp(ba, bb, na) != 0 { return false }
            offset += na
        }
    }

    /// SHA-256 of an open file's content from offset 0, streamed.
    package static func sha256(of file: Descriptor, path: String) throws(RunnerError) -> String {
        var hash = Crypto.SHA256()
        var offset = 0
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n: Int
            do {
                n = try Sys.read(file.fd, into: &chunk, offset: offset)
            } catch { throw Self.error(error.code, "read", path) }
            if n == 0 { break }
            chunk.withUnsafeBytes { hash.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            offset += n
        }
        return hash.finalizeHex()
    }

    /// fsync on a directory, so a rename in it is durable.
    package static func syncDirectory(_ dir: Descriptor) {
        guard let fd = try? Sys.openat(dir.fd, ".", O_RDONLY | O_DIRECTORY) else { return }
        try? Sys.fsync(fd)
        Sys.close(fd)
    }

    /// `20261126T211835.123456789Z`: sorts by time; ends in `~` in the path, which sudo's @includedir skips.
    package static func backupStamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        let stamp = Timestamp.format(seconds: Int64(ts.tv_sec), nanoseconds: 0)
        let compact = stamp.filter { $0 != "-" && $0 != ":" }.dropLast()
        var nanos = String(ts.tv_nsec)
        nanos = String(repeating: "0", count: 9 - nanos.count) + nanos
        return compact + "." + nanos + "Z"
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
    /// The id -1 (4294967295) means "leave unchanged" to chown(2) and is never an owner: refused.
    package static func userID(_ nameOrID: String, passwd: String = "/etc/passwd") -> uid_t? {
        if let id = UInt32(nameOrID) { return id == UInt32.max ? nil : uid_t(id) }
        return lookup(nameOrID, in: passwd).map { uid_t($0) }
    }

    /// A group id from a name or a number, read from `/etc/group`.
    package static func groupID(_ nameOrID: String, group: String = "/etc/group") -> gid_t? {
        if let id = UInt32(nameOrID) { return id == UInt32.max ? nil : gid_t(id) }
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
