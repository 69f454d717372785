/// READY: the runner's first line.
public struct ReadyMessage: Sendable, Equatable {
    /// The runner's version.
    public var version: String
    /// Go's GOOS name: `linux`, `darwin`, `windows`.
    public var platform: String
    /// Go's GOARCH name: `amd64`, `arm64`.
    public var arch: String
    /// The runner's process id on the host.
    public var pid: Int
    /// Command type -> whether this host can serve it.
    public var capabilities: [String: Bool]
    /// At least `ttl` (Go duration); **ext** `protocol`, `extensions`, `max_line_bytes`, `signatures`, `nonce`.
    public var metadata: [String: String]

    /// Creates a READY message.
    public init(
        version: String,
        platform: String,
        arch: String,
        pid: Int,
        capabilities: [String: Bool],
        metadata: [String: String]
    ) {
        self.version = version
        self.platform = platform
        self.arch = arch
        self.pid = pid
        self.capabilities = capabilities
        self.metadata = metadata
    }
}

/// Progress of a command, in an EVENT (named so it does not collide with Foundation's `Progress`).
public struct EventProgress: Sendable, Equatable {
    /// Units done so far.
    public var current: Int
    /// Units in all (0 when unknown).
    public var total: Int
    /// What is counted, e.g. `bytes`.
    public var unit: String

    /// Creates a progress record.
    public init(current: Int, total: Int, unit: String) {
        self.current = current
        self.total = total
        self.unit = unit
    }
}

/// EVENT: progress or a line of output of a running command.
public struct EventMessage: Sendable, Equatable {
    /// The `id` of the CMD this is about.
    public var commandID: String
    /// `info`, `warn` or `debug`.
    public var level: EventLevel
    /// The text: a line of output, or what happened.
    public var message: String
    /// Progress, for long commands.
    public var progress: EventProgress?
    /// Extra string fields (e.g. `stream: stderr` on an output line; `run_if_succeeded` on a CMD).
    public var metadata: [String: String]?

    /// Creates an event.
    public init(
        commandID: String,
        level: EventLevel,
        message: String,
        progress: EventProgress? = nil,
        metadata: [String: String]? = nil
    ) {
        self.commandID = commandID
        self.level = level
        self.message = message
        self.progress = progress
        self.metadata = metadata
    }
}

extension EventMessage {
    /// The output lines this EVENT carries: one, or several joined by `\n` from a runner asked to batch them
    /// (`ExecParams.streamBatch`). An empty message is one empty line.
    public var lines: [String] {
        var lines: [String] = []
        var start = message.startIndex
        let utf8 = message.utf8
        // On the UTF-8 view: splitting by Character would run grapheme breaking over every byte of a flood.
        var i = utf8.startIndex
        while i != utf8.endIndex {
            if utf8[i] == 0x0A {
                lines.append(String(message[start..<i]))
                start = utf8.index(after: i)
            }
            i = utf8.index(after: i)
        }
        lines.append(String(message[start...]))
        return lines
    }
}

/// DONE: a command finished with a result.
public struct DoneMessage: Sendable, Equatable {
    /// The `id` of the CMD this is about.
    public var commandID: String
    /// The command type's result object.
    public var result: JSONValue
    /// Seconds the command took.
    public var duration: Double
    /// Extra string fields (e.g. `stream: stderr` on an output line; `run_if_succeeded` on a CMD).
    public var metadata: [String: String]?

    /// Creates a DONE message.
    public init(commandID: String, result: JSONValue, duration: Double, metadata: [String: String]? = nil) {
        self.commandID = commandID
        self.result = result
        self.duration = duration
        self.metadata = metadata
    }
}

/// ERROR: a command or a line failed.
public struct ErrorMessage: Sendable, Equatable {
    /// The `id` of the CMD that failed; absent for a line that could not be read as a CMD.
    public var commandID: String?
    /// What kind of failure (open set: an unknown code still decodes).
    public var code: ErrorCode
    /// The text: a line of output, or what happened.
    public var message: String
    /// Extra string fields, e.g. partial output of a command that timed out.
    public var details: [String: String]?
    /// Whether the same command may succeed if sent again.
    public var retryable: Bool
    /// Seconds to wait before retrying, when known.
    public var retryAfter: Int?

    /// Creates an ERROR message.
    public init(
        commandID: String?,
        code: ErrorCode,
        message: String,
        details: [String: String]? = nil,
        retryable: Bool = false,
        retryAfter: Int? = nil
    ) {
        self.commandID = commandID
        self.code = code
        self.message = message
        self.details = details
        self.retryable = retryable
        self.retryAfter = retryAfter
    }
}

/// EXIT: the runner's last line.
public struct ExitMessage: Sendable, Equatable {
    /// Why the runner ended: stdin closed, TTL, or an error.
    public var reason: ExitReason
    /// The runner's exit status.
    public var exitCode: Int
    /// Whether the runner deleted its own executable.
    public var selfDeleted: Bool
    /// Commands served in the session.
    public var commandsTotal: Int

    /// Creates an EXIT message.
    public init(reason: ExitReason, exitCode: Int, selfDeleted: Bool, commandsTotal: Int) {
        self.reason = reason
        self.exitCode = exitCode
        self.selfDeleted = selfDeleted
        self.commandsTotal = commandsTotal
    }
}

/// CMD: a command from the controller.
public struct CommandMessage: Sendable, Equatable {
    /// The command's id (unique in the session; at most 256 bytes, no control characters).
    public var id: String
    /// The command type, e.g. `exec`.
    public var type: CommandType
    /// A key under which a runner with a state directory replays the first success instead of running again.
    public var idempotencyKey: String?
    /// Seconds; must be greater than zero.
    public var timeout: Int
    /// The command type's parameters.
    public var params: JSONValue
    /// Base64 Ed25519 signature (see PROTOCOL.md, Signatures).
    public var signature: String?
    /// Extra string fields (e.g. `stream: stderr` on an output line; `run_if_succeeded` on a CMD).
    public var metadata: [String: String]?
    /// **ext**: report what would change, change nothing.
    public var dryRun: Bool

    /// Creates a command.
    public init(
        id: String,
        type: CommandType,
        timeout: Int,
        params: JSONValue,
        idempotencyKey: String? = nil,
        signature: String? = nil,
        metadata: [String: String]? = nil,
        dryRun: Bool = false
    ) {
        self.id = id
        self.type = type
        self.timeout = timeout
        self.params = params
        self.idempotencyKey = idempotencyKey
        self.signature = signature
        self.metadata = metadata
        self.dryRun = dryRun
    }

    /// Longest `id`, `type` and `idempotency_key` (PROTOCOL.md, Controller -> runner).
    public static let maxNameBytes = 256
    /// Largest `timeout` accepted (seconds; Go's int32 range).
    public static let maxTimeout = 2_147_483_647

    /// Checks what PROTOCOL.md requires of every CMD, whatever its type: a non-empty `id`, names of at most
    /// 256 bytes without control characters (so the newline-separated signing input cannot be re-split), a
    /// timeout in 1...2147483647, `params` an object, and no U+0000 in any string anywhere in the CMD (a C
    /// string would silently cut it: what is checked and signed must be what runs).
    /// - Throws: `RunnerError` `INVALID_CMD` naming the field.
    public func validate() throws(RunnerError) {
        try validateNames()
        let shownID = id
        if timeout <= 0 { throw .invalid("CMD \(shownID): \"timeout\" must be an integer number of seconds > 0") }
        if timeout > Self.maxTimeout {
            throw .invalid("CMD \(shownID): \"timeout\" \(timeout) is above the limit of \(Self.maxTimeout) seconds")
        }
        guard case .object = params else {
            throw .invalid("CMD \(shownID): \"params\" must be an object, found \(params.kindName)")
        }
        if let where_ = Self.firstNUL(in: params, path: "params") {
            throw .invalid(
                "CMD \(shownID): \(where_) holds U+0000 (NUL), which cannot be passed on; the CMD was refused"
            )
        }
        for (key, value) in metadata ?? [:] where key.utf8.contains(0) || value.utf8.contains(0) {
            throw .invalid("CMD \(shownID): metadata holds U+0000 (NUL); the CMD was refused")
        }
        if let signature, signature.utf8.contains(0) { throw .invalid("CMD \(shownID): signature holds U+0000 (NUL)") }
    }

    /// The checks that need no parsing of params: id, type, idempotency key, `run_if_succeeded` and signature
    /// each at most 256 bytes and free of control characters. The reader runs them before a command is queued.
    public func validateNames() throws(RunnerError) {
        if id.isEmpty { throw .invalid("CMD has no \"id\"") }
        try Self.checkName(id, "id")
        if type.rawValue.isEmpty { throw .invalid("CMD \(id) has no \"type\"") }
        try Self.checkName(type.rawValue, "type")
        if let idempotencyKey { try Self.checkName(idempotencyKey, "idempotency_key") }
        if let earlier = metadata?["run_if_succeeded"] { try Self.checkName(earlier, "metadata.run_if_succeeded") }
        if let signature { try Self.checkName(signature, "signature") }
    }

    /// Checks an id-like name: at most 256 bytes, no control characters (U+0000-U+001F, U+007F).
    /// - Throws: `RunnerError` `INVALID_CMD`.
    public static func checkName(_ value: String, _ field: String) throws(RunnerError) {
        if value.utf8.count > maxNameBytes {
            throw .invalid("CMD \"\(field)\" is \(value.utf8.count) bytes; the limit is \(maxNameBytes)")
        }
        if value.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) {
            throw .invalid("CMD \"\(field)\" holds a control character (U+0000-U+001F or U+007F), which is not allowed")
        }
    }

    /// Whether `s` holds a U+0000 byte, eight bytes at a time: every CMD's strings are scanned, and a byte loop
    /// over an 11 MiB file.write line was 7.6% of the runner's time (perf, Embedded build).
    static func containsNUL(_ s: String) -> Bool {
        var s = s
        return s.withUTF8 { bytes -> Bool in
            guard let base = bytes.baseAddress else { return false }
            let raw = UnsafeRawPointer(base)
            var i = 0
            while i + 8 <= bytes.count {
                let word = raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                // Some byte of `word` is zero exactly when this is non-zero (the classic has-zero-byte test).
                if (word &- 0x0101_0101_0101_0101) & ~word & 0x8080_8080_8080_8080 != 0 { return true }
                i += 8
            }
            while i < bytes.count {
                if bytes[i] == 0 { return true }
                i += 1
            }
            return false
        }
    }

    /// Where the first string (or member name) holding U+0000 is, or `nil`.
    package static func firstNUL(in value: JSONValue, path: String) -> String? {
        switch value {
        case .string(let s): return Self.containsNUL(s) ? path : nil
        case .array(let items):
            for (i, item) in items.enumerated() {
                if let found = firstNUL(in: item, path: path + "[\(i)]") { return found }
            }
            return nil
        case .object(let object):
            for member in object.members {
                if member.key.utf8.contains(0) { return path + " (a member name)" }
                if let found = firstNUL(in: member.value, path: path + "." + member.key) { return found }
            }
            return nil
        default: return nil
        }
    }
}

/// **ext** CANCEL: stop a running or queued command.
public struct CancelMessage: Sendable, Equatable {
    /// The `id` of the CMD this is about.
    public var commandID: String
    /// Base64 Ed25519 signature over the CANCEL signing input (required by a runner in signed mode).
    public var signature: String?

    /// Creates a CANCEL message.
    public init(commandID: String, signature: String? = nil) {
        self.commandID = commandID
        self.signature = signature
    }
}

extension ReadyMessage: WireMapped {
    /// Reads the value from its wire object (absent members take Go's zero values).
    public init(fields: WireFields) throws(WireError) {
        self.init(version: "", platform: "", arch: "", pid: 0, capabilities: [:], metadata: [:])
        try read(fields)
    }

    /// The members in wire order, read and written by this one list.
    public mutating func members(_ wire: inout WireMembers) throws(WireError) {
        try wire("version", &version)
        try wire("platform", &platform)
        try wire("arch", &arch)
        try wire("pid", &pid)
        try wire("capabilities", &capabilities)
        try wire("metadata", &metadata)
    }
}

extension EventProgress: WireMapped {
    /// Reads the value from its wire object (absent members take Go's zero values).
    public init(fields: WireFields) throws(WireError) {
        self.init(current: 0, total: 0, unit: "")
        try read(fields)
    }

    /// The members in wire order, read and written by this one list.
    public mutating func members(_ wire: inout WireMembers) throws(WireError) {
        try wire("current", &current)
        try wire("total", &total)
        try wire("unit", &unit)
    }
}

extension EventMessage: WireMapped {
    /// Reads the value from its wire object (absent members take Go's zero values).
    public init(fields: WireFields) throws(WireError) {
        self.init(commandID: "", level: "", message: "")
        try read(fields)
    }

    /// The members in wire order, read and written by this one list.
    public mutating func members(_ wire: inout WireMembers) throws(WireError) {
        try wire("command_id", &commandID)
        try wire("level", &level)
        try wire("message", &message)
        try wire("progress", &progress)
        try wire("metadata", &metadata)
    }
}

extension DoneMessage: WireMapped {
    /// Reads the value from its wire object (absent members take Go's zero values).
    public init(fields: WireFields) throws(WireError) {
        self.init(commandID: "", result: .null, duration: 0)
        try read(fields)
    }

    /// The members in wire order, read and written by this one list.
    public mutating func members(_ wire: inout WireMembers) throws(WireError) {
        try wire("command_id", &commandID)
        try wire("result", &result)
        try wire("duration", &duration)
        try wire("metadata", &metadata)
    }
}

extension ErrorMessage: WireMapped {
    /// Reads the value from its wire object (absent members take Go's zero values).
    public init(fields: WireFields) throws(WireError) {
        self.init(commandID: nil, code: "", message: "")
        try read(fields)
    }

    /// The members in wire order, read and written by this one list.
    public mutating func members(_ wire: inout WireMembers) throws(WireError) {
        try wire.nonEmpty("command_id", &commandID)
        try wire("code", &code)
        try wire("message", &message)
        try wire("details", &details)
        try wire("retryable", &retryable)
        try wire("retry_after", &retryAfter)
    }
}

extension ExitMessage: WireMapped {
    /// Reads the value from its wire object (absent members take Go's zero values).
    public init(fields: WireFields) throws(WireError) {
        self.init(reason: "", exitCode: 0, selfDeleted: false, commandsTotal: 0)
        try read(fields)
    }

    /// The members in wire order, read and written by this one list.
    public mutating func members(_ wire: inout WireMembers) throws(WireError) {
        try wire("reason", &reason)
        try wire("exit_code", &exitCode)
        try wire("self_deleted", &selfDeleted)
        try wire("commands_total", &commandsTotal)
    }
}

extension CommandMessage: WireMapped {
    /// Reads the value from its wire object (absent members take Go's zero values).
    public init(fields: WireFields) throws(WireError) {
        self.init(id: "", type: "", timeout: 0, params: .null)
        try read(fields)
    }

    /// The members in wire order, read and written by this one list.
    public mutating func members(_ wire: inout WireMembers) throws(WireError) {
        try wire("id", &id)
        try wire("type", &type)
        try wire.nonEmpty("idempotency_key", &idempotencyKey)
        try wire("timeout", &timeout)
        try wire("params", &params)
        try wire.nonEmpty("signature", &signature)
        try wire("metadata", &metadata)
        try wire.flag("dry_run", &dryRun)
    }
}

extension CancelMessage: WireMapped {
    /// Reads the value from its wire object (absent members take Go's zero values).
    public init(fields: WireFields) throws(WireError) {
        self.init(commandID: "")
        try read(fields)
    }

    /// The members in wire order, read and written by this one list.
    public mutating func members(_ wire: inout WireMembers) throws(WireError) {
        try wire("command_id", &commandID)
        try wire("signature", &signature)
    }
}
