import MicroRunnerCrypto
import MicroRunnerHandlers
import MicroRunnerProtocol

/// Remembers the DONE of every successful command that carried an `idempotency_key`, so a retry is
/// answered from memory instead of running again.
///
/// With a state directory it also keeps a journal (`journal.jsonl`, mode 0600, directory 0700): one line
/// per entry, appended with O_APPEND and fsynced before the DONE goes out, locked with flock so two runners
/// never share it, compacted when it passes its size bound. A torn last line (a runner killed mid-append)
/// is dropped on load. Without a state directory nothing is written to disk.
final class IdempotencyStore: @unchecked Sendable {
    struct Entry {
        var key: String
        var fingerprint: String
        var type: String
        var commandID: String
        var result: JSONValue
        var duration: Double

        var json: JSONValue {
            .object(
                JSONObject([
                    ("key", .string(key)), ("fingerprint", .string(fingerprint)), ("type", .string(type)),
                    ("command_id", .string(commandID)), ("result", result), ("duration", .number(String(duration))),
                ])
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
        }
    }

    enum Lookup {
        case miss
        case replay(Entry)
        case conflict(Entry)
    }

    /// Entries kept (oldest dropped first).
    let maxEntries: Int
    /// Journal size that triggers compaction.
    let maxJournalBytes: Int
    /// Results larger than this (serialized) are kept in memory but not journaled.
    let maxJournaledResultBytes = 1 << 20
    private var entries: [String: Entry] = [:]
    private var order: [String] = []
    private let journalPath: String?
    private var fd: Int32 = -1
    private var journalBytes = 0

    /// Where the journal is, when there is one.
    var isDurable: Bool { journalPath != nil }

    /// - Throws: `RunnerError` when the state directory cannot be used (or another runner holds it).
    init(stateDirectory: String?, maxEntries: Int = 4096, maxJournalBytes: Int = 16 << 20) throws(RunnerError) {
        self.maxEntries = maxEntries
        self.maxJournalBytes = maxJournalBytes
        guard let dir = stateDirectory else {
            journalPath = nil
            return
        }
        if mkdir(dir, 0o700) != 0 && errno != EEXIST {
            throw FileSystem.error(errno, "--state-dir", dir)
        }
        let path = dir + "/journal.jsonl"
        journalPath = path
        fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw FileSystem.error(errno, "--state-dir", path) }
        fchmod(fd, 0o600)
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw RunnerError(.conflict, "--state-dir \(dir): another runner is using it", retryable: true)
        }
        try load()
    }

    deinit {
        if fd >= 0 { close(fd) }
    }

    private func load() throws(RunnerError) {
        guard let path = journalPath else { return }
        let bytes = try FileSystem.readAll(path, limit: .max)
        var offset = 0
        var validEnd = 0
        while offset < bytes.count {
            guard let nl = bytes[offset...].firstIndex(of: 0x0A) else { break }  // torn tail: no newline
            if let v = try? JSONReader().parse(Array(bytes[offset..<nl])), let e = Entry(v) {
                remember(e)
            }
            offset = nl + 1
            validEnd = offset
        }
        if validEnd < bytes.count { _ = ftruncate(fd, off_t(validEnd)) }
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

    private func remember(_ e: Entry) {
        if entries.updateValue(e, forKey: e.key) == nil { order.append(e.key) }
        while order.count > maxEntries {
            entries[order.removeFirst()] = nil
        }
    }

    /// Records a success; with a journal, durably before returning.
    func record(_ e: Entry) {
        remember(e)
        guard fd >= 0 else { return }
        var line = JSONWriter.serialize(e.json)
        guard line.count <= maxJournaledResultBytes else { return }
        line.append(0x0A)
        // One write with O_APPEND: the line lands whole at the end (a crash can only tear the last line,
        // which load() drops).
        if line.withUnsafeBytes({ writeAll(fd, $0) }) == 0 {
            fsync(fd)
            journalBytes += line.count
        }
        if journalBytes > maxJournalBytes { compact() }
    }

    /// Rewrites the journal with only the entries still kept.
    private func compact() {
        guard let path = journalPath else { return }
        var bytes: [UInt8] = []
        for key in order {
            guard let e = entries[key] else { continue }
            let line = JSONWriter.serialize(e.json)
            if line.count <= maxJournaledResultBytes {
                bytes += line
                bytes.append(0x0A)
            }
        }
        guard let temp = try? FileSystem.writeTemporary(beside: path, bytes) else { return }
        chmod(temp, 0o600)
        let newFD = open(temp, O_RDWR | O_APPEND | O_CLOEXEC)
        guard newFD >= 0, flock(newFD, LOCK_EX | LOCK_NB) == 0, rename(temp, path) == 0 else {
            if newFD >= 0 { close(newFD) }
            unlink(temp)
            return
        }
        FileSystem.syncDirectory(of: path)
        close(fd)
        fd = newFD
        journalBytes = bytes.count
    }
}
