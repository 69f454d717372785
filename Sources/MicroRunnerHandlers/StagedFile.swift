import CMicroRunnerShims
import MicroRunnerCrypto
import MicroRunnerProtocol
import MicroRunnerSystem

/// A new file written beside its target and renamed over it when complete: the one atomic install that
/// file.write, chunked uploads, sudoers.ensure and sshd.harden share.
///
/// Everything after creation goes through descriptors: the file is created `O_CREAT|O_EXCL|O_NOFOLLOW`
/// relative to the target's directory descriptor, written, `fchown`ed, `fchmod`ed and `fsync`ed on its own
/// descriptor, and renamed with `renameat` within that directory only after its name is checked to still be
/// this inode (device and inode number). A neighbour who can write in the directory and swaps the temporary
/// name for a symlink can make the install fail; it can never make the runner write to, chmod or chown
/// another file. A staged file that is not committed is removed (also from `deinit`).
package final class StagedFile: @unchecked Sendable {
    /// What a staged file is for, written into its name (`.NAME.mr-TAG-PID-HEX`): one closed set, so that the
    /// sweep of a dead runner's leftovers (`leftoverPID`) knows every kind a runner makes.
    package enum Tag: CaseIterable, Sendable {
        /// A whole-file write.
        case tmp
        /// A chunked upload, kept across commands until its last chunk.
        case upload
        /// A backup copy (`backup: true`).
        case bak
        /// The idempotency journal, rewritten.
        case journal

        /// The tag as it stands in the name, with the dash that follows it.
        var text: StaticString {
            switch self {
            case .tmp: "tmp-"
            case .upload: "upload-"
            case .bak: "bak-"
            case .journal: "journal-"
            }
        }
    }

    /// The target.
    package let target: PathResolver.Location
    /// The temporary name in the target's directory.
    package let name: String
    /// The open temporary file.
    package let file: Descriptor
    private let device: UInt64
    private let inode: UInt64
    /// Bytes written so far.
    package private(set) var size = 0
    /// The path the controller named (a chunked upload checks every chunk names the same one).
    package var requestedPath = ""
    /// SHA-256 of everything appended, when set before the first append: a chunked upload's checksum comes from
    /// here instead of reading the whole file back after its last chunk (1 GiB: ~0.8 s the controller waited for).
    package var appendedHash: Crypto.SHA256?
    private var finished = false

    /// The temporary file's path, for a tool that must read it (visudo, sshd -t). Only valid in a directory no
    /// one else can write (the handlers that use it check that).
    package var pathForTools: String {
        target.directoryPath == "/" ? "/" + name : target.directoryPath + "/" + name
    }

    /// Creates an empty 0600 file beside `target`, named `.NAME.mr-TAG-PID-RANDOM` (a dot name: sudo's
    /// `@includedir` and sshd's `*.conf` globs skip it), after removing such files left by runners that are gone.
    package init(beside target: PathResolver.Location, tag: Tag = .tmp) throws(RunnerError) {
        self.target = target
        Self.removeStale(beside: target)
        let prefix = Self.prefix(for: target.name, tag: tag) + String(getpid()) + "-"
        var lastError: Int32 = EEXIST
        for _ in 0..<16 {
            let candidate = prefix + FileSystem.randomHex(6)
            let fd: Int32
            do {
                fd = try Sys.openat(target.directory.fd, candidate, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600)
            } catch {
                lastError = error.code
                if error.code == EEXIST { continue }
                break
            }
            let descriptor = Descriptor(fd)
            let st: stat
            do { st = try descriptor.status() } catch { throw FileSystem.error(error.code, "write", target.path) }
            name = candidate
            file = descriptor
            device = UInt64(st.st_dev)
            inode = UInt64(st.st_ino)
            return
        }
        throw FileSystem.error(lastError, "write", target.path, hint: "cannot create a temporary file beside it")
    }

    deinit {
        if !finished { discard() }
    }

    /// Appends bytes at the end of what is staged.
    package func append(_ bytes: UnsafeRawBufferPointer) throws(SystemError) {
        do {
            try Sys.writeAll(file.fd, bytes, slice: Sys.fileWriteSlice)
        } catch {
            // Keep the staged bytes consistent with `size`: cut back what this call half-wrote.
            try? Sys.ftruncate(file.fd, size)
            appendedHash = nil  // no longer the hash of what is staged; read back if ever needed
            throw error
        }
        appendedHash?.update(bytes)
        // A large upload's chunks start for the disk as they land; the commit's fsync then waits for little.
        if bytes.count >= 1 << 20 { Sys.startWriteback(file.fd, offset: size, count: bytes.count) }
        size += bytes.count
    }

    /// Appends bytes at the end of what is staged.
    package func append(_ bytes: [UInt8]) throws(SystemError) {
        let result = bytes.withUnsafeBytes { raw in Result { () throws(SystemError) in try append(raw) } }
        try result.get()
    }

    /// Sets owner (first: a chown clears set-id bits) and mode, then makes the content durable.
    /// - Parameters:
    ///   - uid, gid: the owner to set, `nil` to leave.
    ///   - ownerRequired: a failed chown is an error (else best effort, for a non-root runner keeping an owner).
    package func finish(mode: mode_t, uid: uid_t?, gid: gid_t?, ownerRequired: Bool) throws(RunnerError) {
        if uid != nil || gid != nil {
            do {
                try Sys.fchown(file.fd, uid, gid)
            } catch {
                if ownerRequired { throw FileSystem.error(error.code, "chown", target.path) }
            }
        }
        do {
            try Sys.fchmod(file.fd, mode)
            try Sys.fsync(file.fd)
        } catch {
            throw FileSystem.error(error.code, "write", target.path, hint: "the existing file was left untouched")
        }
    }

    /// Whether `name` in `directory` is still this file (not replaced by anything else).
    func isStillNamed(_ name: String) -> Bool {
        guard let st = try? Sys.lstatat(target.directory.fd, name) else { return false }
        return UInt64(st.st_dev) == device && UInt64(st.st_ino) == inode
    }

    /// Renames the staged file over the target, after an optional backup of the file it replaces.
    /// - Parameter backupOf: the existing target (lstat) to keep as `NAME.<time>~`, or `nil` for no backup.
    /// - Returns: the backup's path, when one was made.
    @discardableResult
    package func commit(backupOf existing: stat? = nil) throws(RunnerError) -> String? {
        let dir = target.directory.fd
        guard isStillNamed(name) else {
            discard()
            throw RunnerError(
                .conflict,
                "write: \(target.path): the temporary file \(name) was replaced by someone else; nothing was installed",
                retryable: true
            )
        }
        var backupName: String?
        if let existing {
            backupName = try makeBackup(of: existing)
        }
        do {
            try Sys.renameat(dir, name, dir, target.name)
        } catch {
            if let backupName { try? Sys.unlinkat(dir, backupName) }
            discard()
            if error.code == ENOENT {
                // Removed between the check above and the rename: someone else works in this directory.
                throw RunnerError(
                    .conflict,
                    "write: \(target.path): the temporary file \(name) was removed by someone else; nothing was installed",
                    retryable: true
                )
            }
            throw FileSystem.error(error.code, "rename", target.path, hint: "the existing file was left untouched")
        }
        finished = true
        FileSystem.syncDirectory(target.directory)
        guard isStillNamed(target.name) else {
            throw RunnerError(
                .conflict,
                "write: \(target.path): the directory was changed while the file was installed; the name no longer "
                    + "refers to the file written",
                retryable: true
            )
        }
        return backupName.map { target.directoryPath == "/" ? "/" + $0 : target.directoryPath + "/" + $0 }
    }

    /// Keeps the existing target as `NAME.<time>~`: a hard link to its inode (exact content, mode and owner), or
    /// a copy made through descriptors where links are not allowed.
    private func makeBackup(of existing: stat) throws(RunnerError) -> String {
        let dir = target.directory.fd
        let backup = target.name + "." + FileSystem.backupStamp() + "~"
        let same: (stat) -> Bool = {
            UInt64($0.st_dev) == UInt64(existing.st_dev) && UInt64($0.st_ino) == UInt64(existing.st_ino)
        }
        var linkError: SystemError?
        do { try Sys.linkat(dir, target.name, dir, backup) } catch { linkError = error }
        guard let linkError else {
            // linkat does not follow symlinks: if the target was swapped, the link is to whatever is there now.
            guard let st = try? Sys.lstatat(dir, backup), same(st) else {
                try? Sys.unlinkat(dir, backup)
                throw RunnerError(
                    .conflict,
                    "write: \(target.path): the file changed while its backup was made; nothing was installed",
                    retryable: true
                )
            }
            return backup
        }
        // No hard links here (some file systems, protected_hardlinks): fall back to a copy.
        guard [EPERM, EMLINK, EXDEV, ENOTSUP].contains(linkError.code) else {
            throw FileSystem.error(linkError.code, "backup", target.path)
        }
        let old = try FileSystem.openRegular(target, what: "backup", expect: existing)
        var backupTarget = target
        backupTarget.name = backup
        let copy = try StagedFile(beside: backupTarget, tag: .bak)
        do {
            try FileSystem.forEachChunk(old) { (bytes) throws(SystemError) in
                try copy.append(bytes)
                return true
            }
        } catch {
            throw FileSystem.error(error.code, "backup", target.path)
        }
        try copy.finish(
            mode: existing.st_mode & 0o7777,
            uid: existing.st_uid,
            gid: existing.st_gid,
            ownerRequired: false
        )
        try copy.commit()
        return backup
    }

    /// Removes the staged file (only if its name still refers to it).
    package func discard() {
        if !finished && isStillNamed(name) { try? Sys.unlinkat(target.directory.fd, name) }
        finished = true
    }

    /// `.NAME.mr-TAG-`: the temporary name's prefix; NAME is cut so the whole stays under NAME_MAX (255).
    static func prefix(for name: String, tag: Tag) -> String {
        var short = ""
        var bytes = 0
        for scalar in name.unicodeScalars {
            bytes += scalar.utf8.count
            if bytes > 200 { break }
            short.unicodeScalars.append(scalar)
        }
        return "." + short + ".mr-" + tag.text.withUTF8Buffer { String(decoding: $0, as: UTF8.self) }
    }

    /// Removes temporary and staging files left by runners that no longer run (killed with SIGKILL, or by a
    /// crash) in `target`'s directory: names `.NAME.mr-TAG-PID-HEX` of any NAME and any `Tag`, regular files of
    /// this user, PID gone. Each directory is swept once in a runner's life, not at every write: listing a
    /// crowded /tmp costs ~0.4 µs an entry (measured: 1.1 ms a write among 3,000 entries), and leftovers only
    /// appear when a runner dies (one that dies while this one runs is swept by the next).
    package static func removeStale(beside target: PathResolver.Location) {
        guard let st = try? target.directory.status() else { return }
        let directory = SweptDirectory(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
        let first = swept.withLock { list in
            if list.contains(directory) { return false }
            // Bounded: past 256 directories, each is swept at every write again.
            if list.count < 256 { list.append(directory) }
            return true
        }
        guard first else { return }
        var stale: [String] = []
        let me = getpid()
        try? Sys.forEachName(inDirectory: target.directory.fd) { raw in
            // Most entries of a crowded directory are someone else's: parse in place, copy only ours. At most 64
            // a sweep bounds the list a neighbour's look-alike names can grow.
            guard stale.count < 64, let pid = leftoverPID(raw), pid != me else { return }
            guard kill(pid, 0) != 0 && errno == ESRCH else { return }
            stale.append(String(decoding: raw, as: UTF8.self))
        }
        // Removed after the listing: unlinking while readdir walks the directory may skip entries.
        let uid = geteuid()
        for name in stale {
            guard let st = try? Sys.lstatat(target.directory.fd, name), (st.st_mode & S_IFMT) == S_IFREG,
                st.st_uid == uid
            else { continue }
            try? Sys.unlinkat(target.directory.fd, name)
        }
    }

    /// A directory by device and inode.
    private struct SweptDirectory: Equatable {
        var device: UInt64
        var inode: UInt64
    }

    /// The directories this runner has swept.
    private static let swept = Locked<[SweptDirectory]>([])

    /// The runner's pid in a temporary or staging name, `.NAME.mr-TAG-PID-HEX` (any `Tag`), or nil for any
    /// other name. NAME may itself contain `.mr-`: the last one counts.
    package static func leftoverPID(_ name: UnsafeBufferPointer<UInt8>) -> Int32? {
        // Called for every entry of a directory: no allocation.
        func matches(_ text: StaticString, at i: Int) -> Bool {
            let n = text.utf8CodeUnitCount
            guard i >= 0, name.count - i >= n else { return false }
            return text.withUTF8Buffer { t in (0..<n).allSatisfy { name[i + $0] == t[$0] } }
        }
        guard name.count > 5, name[0] == UInt8(ascii: ".") else { return nil }
        var at = name.count - 4
        while at > 0 && !matches(".mr-", at: at) { at -= 1 }
        guard at > 0 else { return nil }
        var i = at + 4
        guard let tag = Tag.allCases.first(where: { matches($0.text, at: i) }) else { return nil }
        i += tag.text.utf8CodeUnitCount
        var pid: Int32 = 0
        let digitsStart = i
        while i < name.count, name[i] >= UInt8(ascii: "0"), name[i] <= UInt8(ascii: "9") {
            // Ten digits at most: beyond, the name is no pid (and would overflow).
            guard i - digitsStart < 10 else { return nil }
            let (scaled, o1) = pid.multipliedReportingOverflow(by: 10)
            let (sum, o2) = scaled.addingReportingOverflow(Int32(name[i] - UInt8(ascii: "0")))
            guard !o1 && !o2 else { return nil }
            pid = sum
            i += 1
        }
        guard i > digitsStart, i + 1 < name.count, name[i] == UInt8(ascii: "-"), pid > 0 else { return nil }
        for byte in name[(i + 1)...] {
            let hex =
                (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
                || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "f"))
            guard hex else { return nil }
        }
        return pid
    }
}
