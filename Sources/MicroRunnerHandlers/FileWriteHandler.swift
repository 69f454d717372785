import MicroRunnerCrypto
import MicroRunnerProtocol
import MicroRunnerSystem
import Synchronization

/// `file.write`: atomic, idempotent file installation.
///
/// The target is resolved once (`PathResolver`, confined under --root-dir); the new content goes to a
/// `StagedFile` in the target's directory, reached only through descriptors, is fsynced, gets its owner and
/// mode, and is renamed over the target; then the directory is fsynced. A crash, a full disk or a failed
/// write leaves the old file as it was. A backup is a hard link to the old inode (exact content, mode and
/// owner, no copy), made only when something changes. With `create`, missing parent directories are created
/// (0755), as the Go runner does.
package final class FileWriteHandler: CommandHandler {
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
        let content = try Self.content(p, raw: context.content)
        let dryRun = context.command.dryRun
        let location: PathResolver.Location
        let existing: stat?
        do {
            (location, existing) = try Self.target(
                request.path,
                create: request.create,
                createParents: request.create && !dryRun,
                host: context.host
            )
        } catch {
            // A dry run creates no directories: a missing one means the file would be created.
            guard dryRun && request.create && error.code == .notFound else { throw error }
            return encodeResult(
                FileWriteResult(
                    bytesWritten: 0,
                    created: true,
                    checksum: Crypto.sha256Hex(content),
                    changed: true,
                    diff: UnifiedDiff.make(old: [], new: content, path: request.path, limit: Self.maxDiffBytes)
                )
            )
        }
        return encodeResult(
            try apply(
                request,
                at: location,
                existing: existing,
                content: .bytes(content),
                dryRun: context.command.dryRun
            )
        )
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
            uid = try FileWriteHandler.id(p.owner, "owner", "user", "/etc/passwd", FileSystem.userID)
            gid = try FileWriteHandler.id(p.group, "group", "group", "/etc/group", FileSystem.groupID)
            backup = p.backup
            create = p.create
        }
    }

    /// An owner or group id from a name or number; `nil` for empty (keep). -1 (4294967295) means "unchanged" to
    /// chown(2) and is never an id: refused, like a name not in the file.
    static func id(
        _ text: String,
        _ field: String,
        _ kind: String,
        _ file: String,
        _ lookup: (String, String) -> UInt32?
    ) throws(RunnerError) -> UInt32? {
        if text.isEmpty { return nil }
        if text == "4294967295" || text == "-1" {
            throw .invalid("file.write: \(field) \"\(text)\" is not a \(kind) id (-1 means \"unchanged\" to chown)")
        }
        guard let id = lookup(text, file) else {
            throw .invalid("file.write: \(field) \"\(text)\": no such \(kind) in \(file)")
        }
        return id
    }

    /// The new content, from exactly one of: raw bytes after the line (`content_length`), `content_base64`,
    /// `content`.
    static func content(_ p: FileWriteParams, raw: [UInt8]?) throws(RunnerError) -> [UInt8] {
        if let raw {
            guard p.content.isEmpty && p.contentBase64 == nil else {
                throw .invalid("file.write: give raw content (content_length) or content or content_base64, not two")
            }
            // The reader took exactly content_length bytes; the handler does not trust that it did.
            guard p.contentLength == raw.count else {
                throw .invalid("file.write: content_length \(p.contentLength ?? -1) but \(raw.count) bytes of content")
            }
            if let want = p.contentSHA256 {
                let got = Crypto.sha256Hex(raw)
                guard got == want.lowercased() else {
                    throw .invalid(
                        "file.write: the \(raw.count) bytes of content have SHA-256 \(got), not content_sha256 \(RunnerError.echo(want, maxBytes: 64)); nothing was written"
                    )
                }
            }
            return raw
        }
        if p.contentLength != nil {
            throw .invalid("file.write: content_length given but no content followed the line")
        }
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
        /// An already-written staging file (final chunk of an upload).
        case staged(StagedFile)
    }

    /// Resolves the target once (following a symlink to the file it names, under --root-dir when set) and
    /// checks what is there. Everything after this goes through the returned directory descriptor.
    static func target(
        _ path: String,
        create: Bool,
        createParents: Bool,
        host: Host
    ) throws(RunnerError) -> (location: PathResolver.Location, existing: stat?) {
        let location = try host.resolver.locate(path, what: "file.write", createParents: createParents)
        let existing: stat?
        do { existing = try location.status() } catch { throw FileSystem.error(error.code, "file.write", path) }
        if let st = existing {
            switch st.st_mode & S_IFMT {
            case S_IFREG: break
            case S_IFDIR:
                // Said in details too, so a controller can put the file inside as scp does without reading text.
                throw RunnerError(
                    .invalidCommand,
                    "file.write: \(path): is a directory",
                    details: ["target_kind": "directory"]
                )
            case S_IFLNK:
                throw RunnerError(
                    .conflict,
                    "file.write: \(path): became a symlink while it was being resolved; nothing was written",
                    retryable: true
                )
            default:
                throw .invalid("file.write: \(path): not a regular file (refusing to replace a device, FIFO or socket)")
            }
            try host.refuseHardLinks(st, path: path, what: "file.write")
        } else if !create {
            throw RunnerError(.notFound, "file.write: \(path): does not exist (set create: true to create it)")
        }
        return (location, existing)
    }

    func apply(
        _ request: Request,
        at location: PathResolver.Location,
        existing: stat?,
        content: NewContent,
        dryRun: Bool
    ) throws(RunnerError) -> FileWriteResult {
        let newSize: Int
        let checksum: String
        switch content {
        case .bytes(let b):
            newSize = b.count
            checksum = Crypto.sha256Hex(b)
        case .staged(let staged):
            newSize = staged.size
            if var hash = staged.appendedHash {
                checksum = hash.finalizeHex()
            } else {
                checksum = try FileSystem.sha256(of: staged.file, path: request.path)
            }
        }
        let mode = request.mode ?? existing.map { $0.st_mode & 0o7777 } ?? 0o644
        let uid = request.uid ?? existing?.st_uid
        let gid = request.gid ?? existing?.st_gid

        // The existing file, opened once without following links and checked to be the one just looked at.
        let old = try existing.map { (st) throws(RunnerError) in
            try FileSystem.openRegular(location, what: "file.write", expect: st)
        }
        var contentSame = false
        if let old, let existing, Int64(existing.st_size) == Int64(newSize) {
            switch content {
            case .bytes(let b): contentSame = FileSystem.contentEquals(old, b)
            case .staged(let staged): contentSame = FileSystem.filesEqual(old, staged.file)
            }
        }
        let metaSame =
            existing.map {
                ($0.st_mode & 0o7777) == mode && (request.uid == nil || $0.st_uid == request.uid!)
                    && (request.gid == nil || $0.st_gid == request.gid!)
            } ?? false
        if contentSame && metaSame {
            if case .staged(let staged) = content { staged.discard() }
            return FileWriteResult(bytesWritten: 0, created: false, checksum: checksum, changed: false)
        }
        if dryRun {
            var diff: String?
            if case .bytes(let new) = content, !contentSame {
                let before = old.flatMap {
                    try? FileSystem.readAll($0, limit: Self.maxDiffBytes + 1, path: request.path)
                }
                diff = UnifiedDiff.make(old: before ?? [], new: new, path: request.path, limit: Self.maxDiffBytes)
            }
            return FileWriteResult(
                bytesWritten: 0,
                created: existing == nil,
                checksum: checksum,
                changed: true,
                diff: diff
            )
        }

        let staged: StagedFile
        switch content {
        case .bytes(let b):
            staged = try StagedFile(beside: location)
            do {
                try staged.append(b)
            } catch {
                staged.discard()
                throw FileSystem.error(
                    error.code,
                    "file.write",
                    request.path,
                    hint: "the existing file was left untouched"
                )
            }
        case .staged(let s): staged = s
        }
        // Keeping an existing owner is best effort for a non-root runner; a requested one is not.
        try staged.finish(mode: mode, uid: uid, gid: gid, ownerRequired: request.uid != nil || request.gid != nil)
        let backupPath = try staged.commit(backupOf: request.backup ? existing : nil)
        return FileWriteResult(
            bytesWritten: newSize,
            created: existing == nil,
            backupPath: backupPath,
            checksum: checksum,
            changed: true
        )
    }

    func chunk(
        _ p: FileWriteParams,
        uploadID: String,
        request: Request,
        context: CommandContext
    ) throws(RunnerError) -> JSONValue {
        guard uploadID.utf8.count <= 64,
            ByteSet.uploadID.containsAll(uploadID.utf8)
        else {
            throw .invalid("file.write: upload_id must be 1-64 characters of [A-Za-z0-9._-]")
        }
        guard let offset = p.offset, offset >= 0 else {
            throw .invalid("file.write: a chunk (upload_id set) needs offset >= 0")
        }
        guard p.contentBase64 != nil || context.content != nil else {
            throw .invalid("file.write: a chunk carries its bytes in content_base64 or as raw content")
        }
        let bytes = try Self.content(p, raw: context.content)
        if context.command.dryRun {
            throw .invalid("file.write: dry_run is not supported for chunked uploads (send the whole content instead)")
        }
        let upload = try uploads.append(
            uploadID: uploadID,
            target: request.path,
            offset: offset,
            bytes: bytes,
            host: context.host
        )
        guard p.final == true else {
            return encodeResult(
                FileWriteResult(bytesWritten: bytes.count, created: false, checksum: "", bytesStaged: upload.size)
            )
        }
        let staged = try uploads.finish(uploadID: uploadID)
        if let want = p.fileSHA256 {
            let got: String
            if var hash = staged.appendedHash {
                got = hash.finalizeHex()
            } else {
                got = try FileSystem.sha256(of: staged.file, path: request.path)
            }
            guard got == want.lowercased() else {
                staged.discard()
                throw .invalid(
                    "file.write: upload \(uploadID): the \(staged.size) bytes staged have SHA-256 \(got), not file_sha256 \(RunnerError.echo(want, maxBytes: 64)); \(request.path) was left untouched"
                )
            }
        }
        // The target as it is now, in the directory resolved when the upload began.
        let existing: stat?
        do { existing = try staged.target.status() } catch {
            throw FileSystem.error(error.code, "file.write", request.path)
        }
        if let st = existing {
            guard (st.st_mode & S_IFMT) == S_IFREG else {
                staged.discard()
                throw .invalid("file.write: \(request.path): not a regular file any more; the upload was dropped")
            }
            try context.host.refuseHardLinks(st, path: request.path, what: "file.write")
        }
        return encodeResult(
            try apply(request, at: staged.target, existing: existing, content: .staged(staged), dryRun: false)
        )
    }
}

/// Staging files of chunked uploads, kept open: every chunk is appended through the descriptor the runner
/// created (never reopened by name), and the final rename checks the name still refers to that file. Each
/// lives beside its target (so the final rename is atomic) and is removed at EXIT unless its final chunk
/// arrived.
final class UploadRegistry: Sendable {
    /// Unfinished uploads at once (each holds two descriptors and a staging file).
    static let maxUploads = 64

    private let uploads = Locked<[String: StagedFile]>([:])

    func append(
        uploadID: String,
        target: String,
        offset: Int,
        bytes: [UInt8],
        host: Host
    ) throws(RunnerError) -> StagedFile {
        let current = uploads.withLock { $0[uploadID] }
        let upload: StagedFile
        if let current {
            guard current.requestedPath == target else {
                throw RunnerError(
                    .conflict,
                    "file.write: upload \(uploadID) is for \(current.requestedPath), not \(target)"
                )
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
            guard uploads.withLock({ $0.count }) < Self.maxUploads else {
                throw RunnerError(
                    .conflict,
                    "file.write: \(Self.maxUploads) uploads are unfinished; finish one before starting another",
                    retryable: true
                )
            }
            let (location, _) = try FileWriteHandler.target(target, create: true, createParents: true, host: host)
            upload = try StagedFile(beside: location, tag: .upload)
            upload.requestedPath = target
            upload.appendedHash = Crypto.SHA256()
            uploads.withLock { $0[uploadID] = upload }
        }
        guard offset == upload.size else {
            throw RunnerError(
                .conflict,
                "file.write: upload \(uploadID): offset \(offset) but \(upload.size) bytes are staged",
                details: ["bytes_staged": String(upload.size)]
            )
        }
        do {
            try upload.append(bytes)
        } catch {
            throw FileSystem.error(
                error.code,
                "file.write: staging",
                target,
                hint: "the chunk was not staged; resend it"
            )
        }
        return upload
    }

    func finish(uploadID: String) throws(RunnerError) -> StagedFile {
        guard let upload = uploads.withLock({ $0.removeValue(forKey: uploadID) }) else {
            throw RunnerError(.conflict, "file.write: upload \(uploadID) is unknown")
        }
        return upload
    }

    func removeAll() {
        let all = uploads.withLock { dict in
            defer { dict.removeAll() }
            return Array(dict.values)
        }
        for upload in all { upload.discard() }
    }
}
