import MicroRunnerCrypto
import MicroRunnerProtocol
import MicroRunnerSystem

/// `file.read`: a bounded window of a file, as UTF-8 text or base64, with its metadata.
package final class FileReadHandler: CommandHandler {
    package var type: CommandType { .fileRead }
    /// Escaped bytes the content may take in one answer line (the Go client's limit is 10 MiB).
    static let answerBudget = 9 << 20 + 512 << 10

    /// ext `file.running_checksum`: the file the last such window read (device, inode), where it ended, and the
    /// SHA-256 of every byte from offset 0 to there. Commands run one at a time, so one is enough.
    let running = Locked<(device: UInt64, inode: UInt64, next: Int, hash: Crypto.SHA256)?>(nil)

    package init() {}

    package func isAvailable(on host: Host) -> Bool { true }

    package func run(_ context: CommandContext) throws(RunnerError) -> JSONValue {
        let p = try context.params(FileReadParams.self)
        guard p.path.hasPrefix("/") else { throw .invalid("file.read: path \"\(p.path)\" must be absolute") }
        guard p.offset >= 0 else { throw .invalid("file.read: offset must be >= 0") }
        // Resolved once (under --root-dir when set), opened without following a last-moment symlink, and
        // never blocking on a FIFO; everything after works on this descriptor.
        let location = try context.host.resolver.locate(p.path, what: "file.read")
        let file = try FileSystem.openRegular(location, what: "file.read")
        let fd = file.fd
        var st = stat()
        do { st = try file.status() } catch { throw FileSystem.error(error.code, "file.read", p.path) }
        try context.host.refuseHardLinks(st, path: p.path, what: "file.read")
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        if p.digestOnly { return try digest(fd, st, path: p.path) }
        // A 32-bit runner's Int stops at 2 GiB: a bigger file is refused as read(2) would (EOVERFLOW), not trapped on.
        guard let fileSize = Int(exactly: st.st_size) else { throw FileSystem.error(EOVERFLOW, "file.read", p.path) }

        // Read one byte more than asked: it tells whether anything is left (files in /proc report size 0).
        let want = min(p.maxBytes, FileReadParams.defaultMaxBytes)
        // A regular file says how much there is: no need to allocate the whole window for a small one
        // (files in /proc say 0 and get a small buffer that grows).
        let expected = st.st_size > 0 ? max(0, fileSize - p.offset) : 4096
        var bytes = [UInt8](repeating: 0, count: min(want, expected) + 1)
        var got = 0
        while got <= want {
            if got == bytes.count { bytes += [UInt8](repeating: 0, count: min(bytes.count, want + 1 - got)) }
            let read = bytes.withUnsafeMutableBytes { raw in
                Result { () throws(SystemError) in
                    try Sys.pread(fd, into: UnsafeMutableRawBufferPointer(rebasing: raw[got...]), at: p.offset + got)
                }
            }
            let n: Int
            switch read {
            case .success(let count): n = count
            case .failure(let error): throw FileSystem.error(error.code, "file.read", p.path)
            }
            if n == 0 { break }
            got += n
        }
        var moreLeft = got > want
        bytes.removeSubrange(min(got, want)...)
        if p.rawContent {
            // The bytes as they are, after the DONE line: no UTF-8 check, no escaping, no base64.
            var result = FileReadResult(
                content: "",
                size: fileSize > 0 ? fileSize : p.offset + bytes.count + (moreLeft ? 1 : 0),
                mode: FileSystem.octalMode(st.st_mode),
                owner: String(st.st_uid),
                group: String(st.st_gid),
                checksum: p.skipChecksum ? "" : Crypto.sha256Hex(bytes),
                truncated: moreLeft,
                encoding: .raw,
                offset: p.offset,
                contentLength: bytes.count
            )
            if p.runningChecksum {
                result.identity = Self.identity(st)
                result.fileChecksum = runOn(bytes, of: st, at: p.offset, last: !moreLeft)
            }
            context.trailing.bytes = bytes
            return encodeResult(result)
        }

        let content: String
        let encoding: ContentEncoding
        if let text = String(validating: bytes, as: UTF8.self) {
            let keep = JSONWriter.prefixLength(of: bytes, fittingEscaped: Self.answerBudget)
            if keep < bytes.count {
                bytes.removeSubrange(keep...)
                moreLeft = true
                content = String(decoding: bytes, as: UTF8.self)
            } else {
                content = text
            }
            encoding = .utf8
        } else {
            let keep = Self.answerBudget / 4 * 3
            if keep < bytes.count {
                bytes.removeSubrange(keep...)
                moreLeft = true
            }
            content = Crypto.base64Encode(bytes)
            encoding = .base64
        }
        let size = max(fileSize, p.offset + bytes.count + (moreLeft ? 1 : 0))
        return encodeResult(
            FileReadResult(
                content: content,
                size: fileSize > 0 ? fileSize : size,
                mode: FileSystem.octalMode(st.st_mode),
                owner: String(st.st_uid),
                group: String(st.st_gid),
                checksum: p.skipChecksum ? "" : Crypto.sha256Hex(bytes),
                truncated: moreLeft,
                encoding: encoding,
                offset: p.offset
            )
        )
    }

    /// Carries the running SHA-256 (ext `file.running_checksum`) over this window: started at offset 0, carried
    /// on where the same file's last window ended, dropped otherwise. The whole file's SHA-256 when this window
    /// is its last and every byte before it went through the same hash; nil otherwise.
    func runOn(_ bytes: [UInt8], of st: stat, at offset: Int, last: Bool) -> String? {
        let device = UInt64(st.st_dev)
        let inode = UInt64(st.st_ino)
        return running.withLock { running in
            var hash: Crypto.SHA256
            if offset == 0 {
                hash = Crypto.SHA256()
            } else if let r = running, r.device == device, r.inode == inode, r.next == offset {
                hash = r.hash
            } else {
                running = nil
                return nil
            }
            bytes.withUnsafeBytes { hash.update($0) }
            running = last ? nil : (device, inode, offset + bytes.count, hash)
            return last ? hash.finalizeHex() : nil
        }
    }

    /// `DEVICE:INODE:SIZE:MTIME:CTIME` (nanoseconds): what a controller compares across windows.
    static func identity(_ st: stat) -> String {
        let mtime = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
        let ctime = Int64(st.st_ctim.tv_sec) * 1_000_000_000 + Int64(st.st_ctim.tv_nsec)
        return "\(UInt64(st.st_dev)):\(UInt64(st.st_ino)):\(Int64(st.st_size)):\(mtime):\(ctime)"
    }

    /// `digest_only`: the whole file through SHA-256 in 1 MiB reads (memory stays flat for any size), with its
    /// size and metadata; no content.
    func digest(_ fd: Int32, _ st: stat, path: String) throws(RunnerError) -> JSONValue {
        var hash = Crypto.SHA256()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var total = 0
        while true {
            let n: Int
            do { n = try Sys.read(fd, into: &buffer) } catch { throw FileSystem.error(error.code, "file.read", path) }
            if n == 0 { break }
            buffer.withUnsafeBytes { hash.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            total += n
        }
        let sum = hash.finalizeHex()
        return encodeResult(
            FileReadResult(
                content: "",
                size: total,
                mode: FileSystem.octalMode(st.st_mode),
                owner: String(st.st_uid),
                group: String(st.st_gid),
                checksum: sum,
                truncated: false,
                encoding: .utf8,
                offset: 0,
                fileChecksum: sum
            )
        )
    }
}
