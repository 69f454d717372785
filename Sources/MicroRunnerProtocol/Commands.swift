extension KeyedDecodingContainer {
    /// The member's value, or `fallback` when it is absent or null (Go's zero-value semantics).
    @inlinable
    package func value<T: Decodable>(_ key: Key, or fallback: @autoclosure () -> T) throws -> T {
        try decodeIfPresent(T.self, forKey: key) ?? fallback()
    }
}

/// Parameters of `exec`.
public struct ExecParams: Codable, Sendable, Equatable {
    public var command: String
    /// Non-empty: run `command` with these arguments directly (PATH lookup, no shell).
    public var args: [String]
    public var workDir: String
    /// Added to the runner's environment.
    public var env: [String: String]
    /// Shell for the `shell -c command` form; default `/bin/sh`.
    public var shell: String
    public var captureOut: Bool
    public var captureErr: Bool
    /// Send each output line as an EVENT while the command runs.
    public var streamLines: Bool
    public var useSudo: Bool
    public var sudoPassword: String
    /// **ext**: bytes fed to the process's standard input.
    public var stdin: String?
    /// **ext**: cap on captured bytes per stream.
    public var maxOutputBytes: Int?

    enum CodingKeys: String, CodingKey {
        case command, args
        case workDir = "work_dir"
        case env, shell
        case captureOut = "capture_out"
        case captureErr = "capture_err"
        case streamLines = "stream_lines"
        case useSudo = "use_sudo"
        case sudoPassword = "sudo_password"
        case stdin
        case maxOutputBytes = "max_output_bytes"
    }

    /// Creates exec parameters.
    public init(
        command: String,
        args: [String] = [],
        workDir: String = "",
        env: [String: String] = [:],
        shell: String = "",
        captureOut: Bool = true,
        captureErr: Bool = true,
        streamLines: Bool = false,
        useSudo: Bool = false,
        sudoPassword: String = "",
        stdin: String? = nil,
        maxOutputBytes: Int? = nil
    ) {
        self.command = command
        self.args = args
        self.workDir = workDir
        self.env = env
        self.shell = shell
        self.captureOut = captureOut
        self.captureErr = captureErr
        self.streamLines = streamLines
        self.useSudo = useSudo
        self.sudoPassword = sudoPassword
        self.stdin = stdin
        self.maxOutputBytes = maxOutputBytes
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        command = try c.value(.command, or: "")
        args = try c.value(.args, or: [])
        workDir = try c.value(.workDir, or: "")
        env = try c.value(.env, or: [:])
        shell = try c.value(.shell, or: "")
        captureOut = try c.value(.captureOut, or: false)
        captureErr = try c.value(.captureErr, or: false)
        streamLines = try c.value(.streamLines, or: false)
        useSudo = try c.value(.useSudo, or: false)
        sudoPassword = try c.value(.sudoPassword, or: "")
        stdin = try c.decodeIfPresent(String.self, forKey: .stdin)
        maxOutputBytes = try c.decodeIfPresent(Int.self, forKey: .maxOutputBytes)
    }
}

/// Result of `exec`. A non-zero exit status is a result, not an error.
public struct ExecResult: Codable, Sendable, Equatable {
    /// The exit status; -1 when a signal ended the process.
    public var exitCode: Int
    public var stdout: String
    public var stderr: String
    /// Seconds.
    public var duration: Double
    /// **ext**: the signal's name (`SIGKILL`) when one ended the process.
    public var signal: String?
    /// **ext**
    public var stdoutTruncated: Bool?
    /// **ext**
    public var stderrTruncated: Bool?

    enum CodingKeys: String, CodingKey {
        case exitCode = "exit_code"
        case stdout, stderr, duration, signal
        case stdoutTruncated = "stdout_truncated"
        case stderrTruncated = "stderr_truncated"
    }

    /// Creates an exec result.
    public init(
        exitCode: Int,
        stdout: String,
        stderr: String,
        duration: Double,
        signal: String? = nil,
        stdoutTruncated: Bool? = nil,
        stderrTruncated: Bool? = nil
    ) {
        self.exitCode = exitCode
        self.stdout = stdout
        self.stderr = stderr
        self.duration = duration
        self.signal = signal
        self.stdoutTruncated = stdoutTruncated
        self.stderrTruncated = stderrTruncated
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        exitCode = try c.value(.exitCode, or: 0)
        stdout = try c.value(.stdout, or: "")
        stderr = try c.value(.stderr, or: "")
        duration = try c.value(.duration, or: 0)
        signal = try c.decodeIfPresent(String.self, forKey: .signal)
        stdoutTruncated = try c.decodeIfPresent(Bool.self, forKey: .stdoutTruncated)
        stderrTruncated = try c.decodeIfPresent(Bool.self, forKey: .stderrTruncated)
    }
}

/// Parameters of `file.write`.
public struct FileWriteParams: Codable, Sendable, Equatable {
    public var path: String
    public var content: String
    /// **ext**: binary-safe alternative to `content`.
    public var contentBase64: String?
    /// Octal, e.g. `"0644"`; empty keeps the existing mode (or 0644 for a new file).
    public var mode: String
    /// User name or numeric id; empty keeps the existing owner.
    public var owner: String
    /// Group name or numeric id; empty keeps the existing group.
    public var group: String
    public var backup: Bool
    /// A missing file is an error unless true.
    public var create: Bool
    public var useSudo: Bool
    public var sudoPassword: String
    /// **ext** chunked upload: identifies the upload.
    public var uploadID: String?
    /// **ext** chunked upload: bytes staged before this chunk.
    public var offset: Int?
    /// **ext** chunked upload: the last chunk.
    public var final: Bool?

    enum CodingKeys: String, CodingKey {
        case path, content
        case contentBase64 = "content_base64"
        case mode, owner, group, backup, create
        case useSudo = "use_sudo"
        case sudoPassword = "sudo_password"
        case uploadID = "upload_id"
        case offset, final
    }

    /// Creates file.write parameters.
    public init(
        path: String,
        content: String = "",
        contentBase64: String? = nil,
        mode: String = "",
        owner: String = "",
        group: String = "",
        backup: Bool = false,
        create: Bool = true,
        uploadID: String? = nil,
        offset: Int? = nil,
        final: Bool? = nil
    ) {
        self.path = path
        self.content = content
        self.contentBase64 = contentBase64
        self.mode = mode
        self.owner = owner
        self.group = group
        self.backup = backup
        self.create = create
        self.useSudo = false
        self.sudoPassword = ""
        self.uploadID = uploadID
        self.offset = offset
        self.final = final
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        path = try c.value(.path, or: "")
        content = try c.value(.content, or: "")
        contentBase64 = try c.decodeIfPresent(String.self, forKey: .contentBase64)
        mode = try c.value(.mode, or: "")
        owner = try c.value(.owner, or: "")
        group = try c.value(.group, or: "")
        backup = try c.value(.backup, or: false)
        create = try c.value(.create, or: false)
        useSudo = try c.value(.useSudo, or: false)
        sudoPassword = try c.value(.sudoPassword, or: "")
        uploadID = try c.decodeIfPresent(String.self, forKey: .uploadID).flatMap { $0.isEmpty ? nil : $0 }
        offset = try c.decodeIfPresent(Int.self, forKey: .offset)
        final = try c.decodeIfPresent(Bool.self, forKey: .final)
    }
}

/// Result of `file.write`.
public struct FileWriteResult: Codable, Sendable, Equatable {
    public var bytesWritten: Int
    public var created: Bool
    public var backupPath: String?
    /// Lowercase hex SHA-256 of the file's content.
    public var checksum: String
    /// **ext**: false when content, mode and owner already matched and nothing was written.
    public var changed: Bool?
    /// **ext**: unified diff (dry run of a text file).
    public var diff: String?
    /// **ext**: bytes staged so far (non-final chunk of a chunked upload).
    public var bytesStaged: Int?

    enum CodingKeys: String, CodingKey {
        case bytesWritten = "bytes_written"
        case created
        case backupPath = "backup_path"
        case checksum, changed, diff
        case bytesStaged = "bytes_staged"
    }

    /// Creates a file.write result.
    public init(
        bytesWritten: Int,
        created: Bool,
        backupPath: String? = nil,
        checksum: String,
        changed: Bool? = nil,
        diff: String? = nil,
        bytesStaged: Int? = nil
    ) {
        self.bytesWritten = bytesWritten
        self.created = created
        self.backupPath = backupPath
        self.checksum = checksum
        self.changed = changed
        self.diff = diff
        self.bytesStaged = bytesStaged
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        bytesWritten = try c.value(.bytesWritten, or: 0)
        created = try c.value(.created, or: false)
        backupPath = try c.decodeIfPresent(String.self, forKey: .backupPath).flatMap { $0.isEmpty ? nil : $0 }
        checksum = try c.value(.checksum, or: "")
        changed = try c.decodeIfPresent(Bool.self, forKey: .changed)
        diff = try c.decodeIfPresent(String.self, forKey: .diff)
        bytesStaged = try c.decodeIfPresent(Int.self, forKey: .bytesStaged)
    }
}

/// Parameters of `file.read`.
public struct FileReadParams: Codable, Sendable, Equatable {
    public var path: String
    /// Default 10 MiB.
    public var maxBytes: Int
    /// **ext**: first byte to read.
    public var offset: Int

    enum CodingKeys: String, CodingKey {
        case path
        case maxBytes = "max_bytes"
        case offset
    }

    /// The default and largest useful `max_bytes`.
    public static let defaultMaxBytes = 10 * 1024 * 1024

    /// Creates file.read parameters.
    public init(path: String, maxBytes: Int = FileReadParams.defaultMaxBytes, offset: Int = 0) {
        self.path = path
        self.maxBytes = maxBytes
        self.offset = offset
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        path = try c.value(.path, or: "")
        let requested = try c.value(.maxBytes, or: 0)
        maxBytes = requested > 0 ? requested : Self.defaultMaxBytes
        offset = try c.value(.offset, or: 0)
    }
}

/// Result of `file.read`.
public struct FileReadResult: Codable, Sendable, Equatable {
    /// UTF-8 text, or base64 when `encoding` is `base64`.
    public var content: String
    /// The whole file's size.
    public var size: Int
    /// `"0644"` form.
    public var mode: String
    /// Numeric uid as a string.
    public var owner: String
    /// Numeric gid as a string.
    public var group: String
    /// SHA-256 of the bytes returned.
    public var checksum: String
    /// True exactly when bytes after those returned were left unread.
    public var truncated: Bool
    /// **ext**: `utf8` or `base64`.
    public var encoding: String?
    /// **ext**: where the returned bytes start.
    public var offset: Int?

    /// Creates a file.read result.
    public init(
        content: String,
        size: Int,
        mode: String,
        owner: String,
        group: String,
        checksum: String,
        truncated: Bool,
        encoding: String? = nil,
        offset: Int? = nil
    ) {
        self.content = content
        self.size = size
        self.mode = mode
        self.owner = owner
        self.group = group
        self.checksum = checksum
        self.truncated = truncated
        self.encoding = encoding
        self.offset = offset
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        content = try c.value(.content, or: "")
        size = try c.value(.size, or: 0)
        mode = try c.value(.mode, or: "")
        owner = try c.value(.owner, or: "")
        group = try c.value(.group, or: "")
        checksum = try c.value(.checksum, or: "")
        truncated = try c.value(.truncated, or: false)
        encoding = try c.decodeIfPresent(String.self, forKey: .encoding)
        offset = try c.decodeIfPresent(Int.self, forKey: .offset)
    }
}
