import MicroRunnerCrypto
import MicroRunnerHandlers
import MicroRunnerProtocol
import MicroRunnerSystem

/// Remembers the DONE of every successful command that carried an `idempotency_key`, so a retry is
/// answered from memory instead of running again.
///
/// With a state directory it also keeps a journal (`journal.jsonl`, mode 0600, directory 0700): one line
/// per entry, appended with O_APPEND and fsynced before the DONE goes out, locked with flock so two runners
/// never share it, compacted when it passes its size bound. A torn last line (a runner killed mid-append)
/// is dropped on load. Without a state directory nothing is written to disk.
///
/// Used only from the worker thread (lookups and records happen while serving a command), hence not Sendable.
final class IdempotencyStore {
    struct Entry {
        var key: String
        var fingerprint: String
        var type: String
        var commandID: String
        var result: JSONValue
        var duration: Double
        /// Long strings of the result were cut to bound memory (replayed with `result_truncated`).
        var truncated = false

        var json: JSONValue {
            .object(
                JSONObject(
                    [
                        ("key", .string(key)), ("fingerprint", .string(fingerprint)), ("type", .string(type)),
                        ("command_id", .string(commandID)), ("result", result), ("duration", .number(String(duration))),
                    ] + (truncated ? [("truncated", JSONValue.bool(true))] : [])
                )
            )
        }

        init(key: String, fingerprint: String, type: String, commandID: String, result: JSONValue, duration: Double) {
            self.key = key
            self.fingerprint = fingerprint
            self.type = type
            self.commandID = commandID
            self.result = result
            self.duration = duration
        }

        init?(_ v: JSONValue) {
            guard let key = v["key"]?.stringValue, let fp = v["fingerprint"]?.stringValue,
                let type = v["type"]?.stringValue, let id = v["command_id"]?.stringValue, let result = v["result"]
            else { return nil }
            self.init(
                key: key,
                fingerprint: fp,
                type: type,
                commandID: id,
                result: result,
                duration: v["duration"].flatMap { if case .number(let n) = $0 { Double(n) } else { nil } } ?? 0
            )
            truncated = v["truncated"] == .bool(true)
        }
    }

    enum Lookup {
        case miss
        case replay(Entry)
        case conflict(Entry)
    }

    /// Entries kept (oldest dropped first).
    let maxEntries: Int
    /// Bytes of results kept in memory (serialized size; oldest dropped first): what the runner keeps for
    /// replay is bounded in bytes, not only in entries (PROTOCOL.md, Idempotency).
    let maxCachedBytes: Int
    /// Journal size that triggers compaction.
    let maxJournalBytes: Int
    /// A result larger than this (serialized) is kept with its long strings cut to `keptStringBytes`, marked
    /// `result_truncated` when replayed: a retry must not run again only because its output was large.
    let maxResultBytes = 1 << 20
    static let keptStringBytes = 64 << 10
    private var entries: [String: Entry] = [:]
    private var sizes: [String: Int] = [:]
    private var order: [String] = []
    private var orderHead = 0
    private var cachedBytes = 0
    private let directoryPath: String?
    private var directory: Descriptor?
    private var journal: Descriptor?
    private var journalBytes = 0

    /// Where the journal is, when there is one.
    var isDurable: Bool { journal != nil }

    /// Opens (or creates) the journal in `stateDirectory`.
    ///
    /// The directory is created 0700, or must already be owned by the runner's user and writable by no one
    /// else; `journal.jsonl` is opened `O_NOFOLLOW|O_NONBLOCK` relative to it and must be a regular file of that
    /// user with one link and no group/other write bit (a symlink, device, FIFO or a file someone else could have
    /// written is refused, never followed, read or trusted), and is read with a bound.
    /// - Throws: `RunnerError` when the state directory cannot be used safely (or another runner holds it).
    init(
        stateDirectory: String?,
        maxEntries: Int = 4096,
        maxCachedBytes: Int = 32 << 20,
        maxJournalBytes: Int = 16 << 20
    ) throws(RunnerError) {
        self.maxEntries = maxEntries
        self.maxCachedBytes = maxCachedBytes
        self.maxJournalBytes = maxJournalBytes
        directoryPath = stateDirectory
        guard let dir = stateDirectory else { return }
        let me = geteuid()
        do {
            try Sys.mkdirat(AT_FDCWD, dir, 0o700)
        } catch {
            if error.code != EEXIST { throw FileSystem.error(error.code, "--state-dir", dir) }
        }
        let dirFD: Descriptor
        do {
            dirFD = Descriptor(try Sys.openat(AT_FDCWD, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW))
        } catch {
            throw RunnerError(
                .permissionDenied,
                "--state-dir \(dir): \(error.code == ELOOP || error.code == ENOTDIR ? "not a directory (a symlink is not followed)" : errnoText(error.code))"
            )
        }
        guard let dst = try? dirFD.status(), dst.st_uid == me, (dst.st_mode & 0o022) == 0 else {
            throw RunnerError(
                .permissionDenied,
                "--state-dir \(dir): must be a directory owned by uid \(me) and writable by no one else (chmod 0700 it)"
            )
        }
        let fd: Descriptor
        do {
            fd = Descriptor(
                try Sys.openat(
                    dirFD.fd,
                    Self.journalName,
                    O_RDWR | O_CREAT | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY,
                    0o600
                )
            )
        } catch {
            throw RunnerError(
                .permissionDenied,
                "--state-dir \(dir)/\(Self.journalName): \(error.code == ELOOP ? "is a symlink (refused)" : errnoText(error.code))"
            )
        }
        guard let st = try? fd.status(), (st.st_mode & S_IFMT) == S_IFREG, st.st_uid == me, st.st_nlink == 1,
            (st.st_mode & 0o022) == 0
        else {
            throw RunnerError(
                .permissionDenied,
                "--state-dir \(dir)/\(Self.journalName): must be a regular file of uid \(me) with one link, writable by no one else"
            )
        }
        _ = fcntl(fd.fd, F_SETFL, fcntl(fd.fd, F_GETFL) & ~O_NONBLOCK)
        guard flock(fd.fd, LOCK_EX | LOCK_NB) == 0 else {
            throw RunnerError(.conflict, "--state-dir \(dir): another runner is using it", retryable: true)
        }
        // This runner owns the directory now: a rewrite a killed runner left half done (`.journal.jsonl.mr-journal-PID-
        // HEX`) goes at once, not at this runner's first compaction (16 MiB of results later, or never).
        StagedFile.removeStale(
            beside: PathResolver.Location(directory: dirFD, name: Self.journalName, directoryPath: dir)
        )
        // A journal is compacted at maxJournalBytes; anything much larger was not written by a runner.
        let limit = maxJournalBytes + 2 * maxResultBytes
        guard Int64(st.st_size) <= Int64(limit) else {
            throw RunnerError(
                .permissionDenied,
                "--state-dir \(dir)/\(Self.journalName): \(st.st_size) bytes, more than a journal ever holds (\(limit))"
            )
        }
        directory = dirFD
        journal = fd
        try load(limit: limit)
    }

    static let journalName = "journal.jsonl"

    private func load(limit: Int) throws(RunnerError) {
        guard let journal, let dir = directoryPath else { return }
        let bytes = try FileSystem.readAll(journal, limit: limit + 1, path: dir + "/" + Self.journalName)
        guard bytes.count <= limit else {
            throw RunnerError(
                .permissionDenied,
                "--state-dir \(dir)/\(Self.journalName): grew past \(limit) bytes while read"
            )
        }
        var offset = 0
        var validEnd = 0
        while offset < bytes.count {
            guard let nl = bytes[offset...].firstIndex(of: 0x0A) else { break }  // torn tail: no newline
            if let v = try? JSONReader().parse(Array(bytes[offset..<nl])), let e = Entry(v) {
                remember(e, size: nl - offset)
            }
            offset = nl + 1
            validEnd = offset
        }
        if validEnd < bytes.count { try? Sys.ftruncate(journal.fd, validEnd) }
        journalBytes = validEnd
    }

    /// The fingerprint of a command: its type and its params in canonical form (sorted keys), so a retry
    /// that serializes the same params differently still matches.
    static func fingerprint(_ command: CommandMessage) -> String {
        var h = Crypto.SHA256()
        h.update(Array((command.type.rawValue + "\n").utf8))
        h.update(JSONWriter.serialize(canonical(command.params)))
        return h.finalizeHex()
    }

    static func canonical(_ v: JSONValue) -> JSONValue {
        switch v {
        case .object(let o):
            var last: [String: JSONValue] = [:]
            for m in o.members { last[m.key] = canonical(m.value) }
            return .object(JSONObject(last.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }))
        case .array(let a): return .array(a.map(canonical))
        default: return v
        }
    }

    func lookup(_ key: String, fingerprint: String) -> Lookup {
        guard let e = entries[key] else { return .miss }
        return e.fingerprint == fingerprint ? .replay(e) : .conflict(e)
    }

    /// Number of entries and bytes of results kept (for tests and diagnostics).
    var usage: (entries: Int, bytes: Int) { (entries.count, cachedBytes) }

    private func remember(_ e: Entry, size: Int) {
        let cost = size + e.key.utf8.count + 128
        if let old = sizes[e.key] {
            cachedBytes -= old
        } else {
            order.append(e.key)
        }
        entries[e.key] = e
        sizes[e.key] = cost
        cachedBytes += cost
        while (entries.count > maxEntries || cachedBytes > maxCachedBytes) && orderHead < order.count {
            let oldest = order[orderHead]
            orderHead += 1
            if entries.removeValue(forKey: oldest) != nil { cachedBytes -= sizes.removeValue(forKey: oldest) ?? 0 }
        }
        if orderHead > 1024 && orderHead * 2 > order.count {
            order.removeFirst(orderHead)
            orderHead = 0
        }
    }

    /// A result bounded to `maxResultBytes`: long strings cut to `keptStringBytes` (at a character boundary).
    /// - Returns: the result and whether anything was cut.
    static func bounded(_ result: JSONValue) -> (JSONValue, Bool) {
        var cut = false
        func walk(_ v: JSONValue) -> JSONValue {
            switch v {
            case .string(let s) where s.utf8.count > keptStringBytes:
                cut = true
                var bytes = Array(s.utf8.prefix(keptStringBytes))
                while let last = bytes.last, last & 0xC0 == 0x80 { bytes.removeLast() }
                if let last = bytes.last, last >= 0xC0 { bytes.removeLast() }
                return .string(String(decoding: bytes, as: UTF8.self))
            case .object(let o): return .object(JSONObject(o.members.map { ($0.key, walk($0.value)) }))
            case .array(let a): return .array(a.map(walk))
            default: return v
            }
        }
        let out = walk(result)
        return (out, cut)
    }

    /// Records a success; with a journal, durably (written and fsynced) before returning.
    /// - Returns: false when the journal write failed (the entry is kept in memory only; the caller says so).
    @discardableResult
    func record(_ entry: Entry) -> Bool {
        var e = entry
        var line = JSONWriter.serialize(e.json)
        if line.count > maxResultBytes {
            let (kept, _) = Self.bounded(e.result)
            e.result = kept
            e.truncated = true
            line = JSONWriter.serialize(e.json)
        }
        remember(e, size: line.count)
        guard let journal else { return true }
        line.append(0x0A)
        // One write with O_APPEND: the line lands whole at the end (a crash can only tear the last line,
        // which load() drops).
        do {
            try Sys.writeAll(journal.fd, line)
            try Sys.fsync(journal.fd)
        } catch {
            return false
        }
        journalBytes += line.count
        if journalBytes > maxJournalBytes { compact() }
        return true
    }

    /// Rewrites the journal with only the entries still kept (the shared `StagedFile` install, in the state
    /// directory's descriptor).
    private func compact() {
        guard let directory, let dir = directoryPath else { return }
        var bytes: [UInt8] = []
        for key in order[orderHead...] {
            guard let e = entries[key] else { continue }
            bytes += JSONWriter.serialize(e.json)
            bytes.append(0x0A)
        }
        let location = PathResolver.Location(directory: directory, name: Self.journalName, directoryPath: dir)
        guard let staged = try? StagedFile(beside: location, tag: .journal) else { return }
        do throws(RunnerError) {
            do { try staged.append(bytes) } catch { throw FileSystem.error(error.code, "journal", dir) }
            try staged.finish(mode: 0o600, uid: nil, gid: nil, ownerRequired: false)
            guard flock(staged.file.fd, LOCK_EX | LOCK_NB) == 0 else { throw RunnerError(.conflict, "journal lock") }
            try staged.commit()
        } catch {
            staged.discard()
            return
        }
        journal = staged.file
        journalBytes = bytes.count
    }
}
