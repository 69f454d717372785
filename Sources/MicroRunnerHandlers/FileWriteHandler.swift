import MicroRunnerCrypto
import MicroRunnerProtocol
import Synchronization

/// `file.write`: atomic, idempotent file installation.
///
/// The new content goes to a temporary file in the target's directory, is fsynced, gets its mode and
/// owner, and is renamed over the target; then the directory is fsynced. A crash, a full disk or a
/// failed write leaves the old file as it was. A backup is a hard link to the old inode (exact content,
/// mode and owner, no copy), made only when something changes.
package struct FileWriteHandler: CommandHandler, ExitCleanup {
    package var type: CommandType { .fileWrite }
    /// Largest text for which a dry run computes a diff.
    static let maxDiffBytes = 1 << 20
    /// Unfinished chunked uploads, by upload id.
    let uploads = UploadRegistry()

    package init() {}

    package func isAvailable(on host: Host) -> Bool { true }

    package func cleanUpAtExit() { uploads.removeAll() }

    package func run(_ context: CommandContext) throws(RunnerError) -> JSONValue {
        let p = try context.params(FileWriteParams.self)
        let request = try Request(p, host: context.host)
        if let uploadID = p.uploadID {
            return try chunk(p, uploadID: uploadID, request: request, context: context)
        }
        let content = try Self.content(p)
        return try encodeResult(try apply(request, content: .bytes(content), dryRun: context.command.dryRun))
    }

    /// What a write asks for, validated.
    struct Request {
        var path: String
        var mode: mode_t?
        var uid: uid_t?
        var gid: gid_t?
        var backup: Bool
        var create: Bool

        init(_ p: FileWriteParams, host: Host) throws(RunnerError) {
            guard p.path.hasPrefix("/") else {
                throw .invalid("file.write: path \"\(p.path)\" must be absolute")
            }
            try host.confine(p.path, what: "file.write")
            if p.useSudo && host.effectiveUID != 0 {
                throw RunnerError(
                    .unsupported,
                    "file.write: use_sudo is not supported by a runner that is not root; start the runner with sudo"
                )
            }
            path = p.path
            if !p.mode.isEmpty {
                guard let m = FileSystem.parseMode(p.mode) else {
                    throw .invalid("file.write: mode \"\(p.mode)\" is not an octal mode like \"0644\"")
                }
                mode = m
            }
            if !p.owner.isEmpty {
                guard let u = FileSystem.userID(p.owner) else {
                    throw .invalid("file.write: owner \"\(p.owner)\": no such user in /etc/passwd")
                }
                uid = u
            }
            if !p.group.isEmpty {
                guard let g = FileSystem.groupID(p.group) else {
                    throw .invalid("file.write: group \"\(p.group)\": no such group in /etc/group")
                }
                gid = g
            }
            backup = p.backup
            create = p.create
        }
    }

    static func content(_ p: FileWriteParams) throws(RunnerError) -> [UInt8] {
        if let b64 = p.contentBase64 {
            if !p.content.isEmpty {
                throw .invalid("file.write: give content or content_base64, not both")
            }
            guard let bytes = Crypto.base64Decode(b64) else {
                throw .invalid("file.write: content_base64 is not valid base64")
            }
            return bytes
        }
        return Array(p.content.utf8)
    }

    enum NewContent {
        case bytes([UInt8])
        /// An already-written, fsynced staging file (final chunk of an upload).
        case staged(path: String, size: Int)
    }

    /// Resolves the target (following a symlink to the file it names) and checks the parent directory.
    static func target(_ path: String, create: Bool) throws(RunnerError) -> (path: String, existing: stat?) {
        var target = path
        if let link = FileSystem.status(path, followLinks: false), (link.st_mode & S_IFMT) == S_IFLNK {
            guard let resolved = realpath(path, nil) else {
                throw FileSystem.error(
                    errno,
                    "file.write",
                    path,
                    hint: "it is a symlink whose target cannot be resolved"
                )
            }
            target = String(cString: resolved)
            free(resolved)
        }
        if let st = FileSystem.status(target) {
            if (st.st_mode & S_IFMT) == S_IFDIR { throw .invalid("file.write: \(path): is a directory") }
            if (st.st_mode & S_IFMT) != S_IFREG {
                throw .invalid("file.write: \(path): not a regular file (refusing to replace a device, FIFO or socket)")
            }
            return (target, st)
        }
        let e = errno
        if e != ENOENT { throw FileSystem.error(e, "file.write", path) }
        let parent = String(target[..<(target.lastIndex(of: "/") ?? target.startIndex)])
        guard FileSystem.status(parent.isEmpty ? "/" : parent).map({ ($0.st_mode & S_IFMT) == S_IFDIR }) == true else {
            throw RunnerError(
                .notFound,
                "file.write: \(path): parent directory \(parent) does not exist (create it first)"
            )
        }
        if !create {
            throw RunnerError(.notFound, "file.write: \(path): does not exist (set create: true to create it)")
        }
        return (target, nil)
    }

    func apply(_ request: Request, content: NewContent, dryRun: Bool) throws(RunnerError) -> FileWriteResult {
        let (target, existing) = try Self.target(request.path, create: request.create)
        let newSize: Int
        let checksum: String
        switch content {
        case .bytes(let b):
            newSize = b.count
            checksum = Crypto.sha256Hex(b)
        case .staged(let path, let size):
            newSize = size
            checksum = try FileSystem.sha256(of: path)
        }
        let mode = request.mode ?? existing.map { $0.st_mode & 0o7777 } ?? 0o644
        let uid = request.uid ?? existing?.st_uid
        let gid = request.gid ?? existing?.st_gid

        var contentSame = false
        if let existing, Int(existing.st_size) == newSize {
            switch content {
            case .bytes(let b): contentSame = FileSystem.contentEquals(target, b)
            case .staged(let path, _): contentSame = FileSystem.filesEqual(target, path)
            }
        }
        let metaSame =
            existing.map {
                ($0.st_mode & 0o7777) == mode && (request.uid == nil || $0.st_uid == request.uid!)
                    && (request.gid == nil || $0.st_gid == request.gid!)
            } ?? false
        if contentSame && metaSame {
            if case .staged(let path, _) = content { unlink(path) }
            return FileWriteResult(bytesWritten: 0, created: false, checksum: checksum, changed: false)
        }
        if dryRun {
            var diff: String?
            if case .bytes(let new) = content, !contentSame {
                let old = existing == nil ? [] : ((try? FileSystem.readAll(target, limit: Self.maxDiffBytes + 1)) ?? [])
                diff = UnifiedDiff.make(old: old, new: new, path: request.path, limit: Self.maxDiffBytes)
            }
            return FileWriteResult(
                bytesWritten: 0,
                created: existing == nil,
                checksum: checksum,
                changed: true,
                diff: diff
            )
        }

        let temp: String
        switch content {
        case .bytes(let b): temp = try FileSystem.writeTemporary(beside: target, b)
        case .staged(let path, _): temp = path
        }
        var committed = false
        defer { if !committed { unlink(temp) } }
        if chmod(temp, mode) != 0 { throw FileSystem.error(errno, "file.write: chmod", request.path) }
        if uid != nil || gid != nil {
            if chown(temp, uid ?? uid_t.max, gid ?? gid_t.max) != 0 {
                let e = errno
                // Keeping an existing owner is best effort for a non-root runner; a requested one is not.
                if request.uid != nil || request.gid != nil {
                    throw FileSystem.error(e, "file.write: chown", request.path)
                }
            }
        }
        var backupPath: String?
        if request.backup, existing != nil {
            let b = target + "." + Self.backupStamp() + "~"
            if link(target, b) != 0 {
                let e = errno
                // No hard links here (some file systems, protected_hardlinks): fall back to a copy.
                guard e == EPERM || e == EMLINK || e == EXDEV || e == ENOTSUP else {
                    throw FileSystem.error(e, "file.write: backup", b)
                }
                let old = try FileSystem.readAll(target, limit: .max)
                let copy = try FileSystem.writeTemporary(beside: b, old)
                if let existing {
                    chmod(copy, existing.st_mode & 0o7777)
                    chown(copy, existing.st_uid, existing.st_gid)
                }
                if rename(copy, b) != 0 {
                    let e2 = errno
                    unlink(copy)
                    throw FileSystem.error(e2, "file.write: backup", b)
                }
            }
            backupPath = b
        }
        if rename(temp, target) != 0 {
            let e = errno
            if let backupPath { unlink(backupPath) }
            throw FileSystem.error(e, "file.write: rename", request.path, hint: "the existing file was left untouched")
        }
        committed = true
        FileSystem.syncDirectory(of: target)
        return FileWriteResult(
            bytesWritten: newSize,
            created: existing == nil,
            backupPath: backupPath,
            checksum: checksum,
            changed: true
        )
    }

    /// `20261126T211835.123456789Z`: sorts by time; ends in `~` in the path, which sudo's @includedir skips.
    static func backupStamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        let stamp = Timestamp.format(seconds: Int(ts.tv_sec), nanoseconds: 0)
        let compact = stamp.filter { $0 != "-" && $0 != ":" }.dropLast()
        var nanos = String(ts.tv_nsec)
        nanos = String(repeating: "0", count: 9 - nanos.count) + nanos
        return compact + "." + nanos + "Z"
    }

    func chunk(
        _ p: FileWriteParams,
        uploadID: String,
        request: Request,
        context: CommandContext
    ) throws(RunnerError) -> JSONValue {
        guard uploadID.utf8.count <= 64,
            uploadID.utf8.allSatisfy({
                ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7A) || $0 == 0x2D || $0 == 0x5F
                    || $0 == 0x2E
            })
        else {
            throw .invalid("file.write: upload_id must be 1-64 characters of [A-Za-z0-9._-]")
        }
        guard let offset = p.offset, offset >= 0 else {
            throw .invalid("file.write: a chunk (upload_id set) needs offset >= 0")
        }
        guard p.contentBase64 != nil else { throw .invalid("file.write: a chunk carries its bytes in content_base64") }
        let bytes = try Self.content(p)
        if context.command.dryRun {
            throw .invalid("file.write: dry_run is not supported for chunked uploads (send the whole content instead)")
        }
        let staged = try uploads.append(uploadID: uploadID, target: request.path, offset: offset, bytes: bytes)
        guard p.final == true else {
            return try encodeResult(
                FileWriteResult(bytesWritten: bytes.count, created: false, checksum: "", bytesStaged: staged.size)
            )
        }
        let finished = try uploads.finish(uploadID: uploadID)
        return try encodeResult(
            try apply(request, content: .staged(path: finished.path, size: finished.size), dryRun: false)
        )
    }
}

/// Staging files of chunked uploads. Each lives beside its target (so the final rename is atomic) and is
/// removed at EXIT unless its final chunk arrived.
final class UploadRegistry: Sendable {
    struct Upload {
        var path: String
        var target: String
        var size: Int
    }

    private let uploads = Mutex<[String: Upload]>([:])

    func append(uploadID: String, target: String, offset: Int, bytes: [UInt8]) throws(RunnerError) -> Upload {
        let current = uploads.withLock { $0[uploadID] }
        var upload: Upload
        if let current {
            guard current.target == target else {
                throw RunnerError(.conflict, "file.write: upload \(uploadID) is for \(current.target), not \(target)")
            }
            upload = current
        } else {
            guard offset == 0 else {
                throw RunnerError(
                    .conflict,
                    "file.write: upload \(uploadID): offset \(offset) but nothing is staged (start at offset 0)",
                    details: ["bytes_staged": "0"]
                )
            }
            _ = try FileWriteHandler.target(target, create: true)
            let (fd, path) = try FileSystem.createTemporary(beside: target, tag: "upload")
            try? fd.close()
            upload = Upload(path: path, target: target, size: 0)
            uploads.withLock { $0[uploadID] = upload }
        }
        guard offset == upload.size else {
            throw RunnerError(
                .conflict,
                "file.write: upload \(uploadID): offset \(offset) but \(upload.size) bytes are staged",
                details: ["bytes_staged": String(upload.size)]
            )
        }
        let fd = open(upload.path, O_WRONLY | O_APPEND | O_CLOEXEC)
        guard fd >= 0 else { throw FileSystem.error(errno, "file.write: staging", upload.path) }
        defer { close(fd) }
        let rc = bytes.withUnsafeBytes { writeAll(fd, $0) }
        if rc != 0 {
            // Keep the staged bytes consistent with the count: cut back what this chunk half-wrote.
            _ = ftruncate(fd, off_t(upload.size))
            throw FileSystem.error(
                rc,
                "file.write: staging",
                upload.target,
                hint: "the chunk was not staged; resend it"
            )
        }
        upload.size += bytes.count
        let updated = upload
        uploads.withLock { $0[uploadID] = updated }
        return upload
    }

    func finish(uploadID: String) throws(RunnerError) -> Upload {
        guard let upload = uploads.withLock({ $0.removeValue(forKey: uploadID) }) else {
            throw RunnerError(.conflict, "file.write: upload \(uploadID) is unknown")
        }
        let fd = open(upload.path, O_WRONLY | O_CLOEXEC)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
        return upload
    }

    func removeAll() {
        let all = uploads.withLock { dict in
            defer { dict.removeAll() }
            return Array(dict.values)
        }
        for upload in all { unlink(upload.path) }
    }
}
