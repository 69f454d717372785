/// Parameters of `exec`.
public struct ExecParams: Sendable, Equatable {
    /// The shell command (`shell -c command`), or the executable when `args` is non-empty.
    public var command: String
    /// Non-empty: run `command` with these arguments directly (PATH lookup, no shell).
    public var args: [String]
    /// The working directory; empty: the runner's.
    public var workDir: String
    /// Added to the runner's environment.
    public var env: [String: String]
    /// Shell for the `shell -c command` form; default `/bin/sh`.
    public var shell: String
    /// Return standard output in the result.
    public var captureOut: Bool
    /// Return standard error in the result.
    public var captureErr: Bool
    /// Send each output line as an EVENT while the command runs.
    public var streamLines: Bool
    /// **ext** `exec.stream_batch`: with `streamLines`, one EVENT may carry several whole lines of one stream,
    /// joined by `\n` (those that came in one read of the pipe). Sent only to a runner that lists the extension;
    /// an older runner that ignored it would send one line per EVENT, which splits the same way.
    public var streamBatch: Bool
    /// Run through `sudo` (non-interactive unless `sudoPassword` is set).
    public var useSudo: Bool
    /// The password sudo reads on its standard input; never echoed back.
    public var sudoPassword: String
    /// **ext**: bytes fed to the process's standard input.
    public var stdin: String?
    /// **ext**: cap on captured bytes per stream.
    public var maxOutputBytes: Int?

    /// Creates exec parameters.
    ///
    /// One default differs from the wire's on purpose: `captureOut` and `captureErr` are `true` here, while an
    /// absent field on the wire is `false` (Go's zero value). A Swift caller who writes `ExecParams(command:)`
    /// wants the output back, and the encoder always writes both fields, so the runner never has to guess.
    public init(
        command: String,
        args: [String] = [],
        workDir: String = "",
        env: [String: String] = [:],
        shell: String = "",
        captureOut: Bool = true,
        captureErr: Bool = true,
        streamLines: Bool = false,
        streamBatch: Bool = false,
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
        self.streamBatch = streamBatch
        self.useSudo = useSudo
        self.sudoPassword = sudoPassword
        self.stdin = stdin
        self.maxOutputBytes = maxOutputBytes
    }
}

/// Result of `exec`. A non-zero exit status is a result, not an error.
public struct ExecResult: Sendable, Equatable {
    /// The exit status; -1 when a signal ended the process.
    public var exitCode: Int
    /// Captured standard output (UTF-8, cut at the capture limit).
    public var stdout: String
    /// Captured standard error (UTF-8, cut at the capture limit).
    public var stderr: String
    /// Seconds.
    public var duration: Double
    /// **ext**: the signal's name (`SIGKILL`) when one ended the process.
    public var signal: String?
    /// **ext**
    public var stdoutTruncated: Bool?
    /// **ext**
    public var stderrTruncated: Bool?
    /// **ext** `dry_run`: the command was not run (a dry run never runs exec: its effects cannot be predicted).
    public var skipped: Bool?

    /// Creates an exec result.
    public init(
        exitCode: Int,
        stdout: String,
        stderr: String,
        duration: Double,
        signal: String? = nil,
        stdoutTruncated: Bool? = nil,
        stderrTruncated: Bool? = nil,
        skipped: Bool? = nil
    ) {
        self.exitCode = exitCode
        self.stdout = stdout
        self.stderr = stderr
        self.duration = duration
        self.signal = signal
        self.stdoutTruncated = stdoutTruncated
        self.stderrTruncated = stderrTruncated
        self.skipped = skipped
    }
}

/// Parameters of `file.write`.
public struct FileWriteParams: Sendable, Equatable {
    /// The absolute path of the file.
    public var path: String
    /// The new content as text (see `contentBase64` for bytes).
    public var content: String
    /// **ext**: binary-safe alternative to `content`.
    public var contentBase64: String?
    /// Octal, e.g. `"0644"`; empty keeps the existing mode (or 0644 for a new file).
    public var mode: String
    /// User name or numeric id; empty keeps the existing owner.
    public var owner: String
    /// Group name or numeric id; empty keeps the existing group.
    public var group: String
    /// Keep the old file as `PATH.<time>~` (its path comes back in `backupPath`).
    public var backup: Bool
    /// A missing file is an error unless true.
    public var create: Bool
    /// Run through `sudo` (non-interactive unless `sudoPassword` is set).
    public var useSudo: Bool
    /// The password sudo reads on its standard input; never echoed back.
    public var sudoPassword: String
    /// **ext** chunked upload: identifies the upload.
    public var uploadID: String?
    /// **ext** chunked upload: bytes staged before this chunk.
    public var offset: Int?
    /// **ext** chunked upload: the last chunk.
    public var final: Bool?
    /// **ext** `file.raw_content`: the content is not in the line but in exactly this many raw bytes right
    /// after it (see docs/PROTOCOL-EXTENSIONS.md). Sent only to a runner that lists the extension.
    public var contentLength: Int?
    /// **ext** `file.raw_content`: lowercase hex SHA-256 of those raw bytes, checked before they are used
    /// (required under signatures or an idempotency key, which it binds the bytes to).
    public var contentSHA256: String?
    /// **ext** `file.raw_content`, final chunk of an upload: the SHA-256 the whole staged file must have, or
    /// it replaces nothing (a local file that changed while it was sent never lands).
    public var fileSHA256: String?

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
        final: Bool? = nil,
        contentLength: Int? = nil,
        contentSHA256: String? = nil
    ) {
        self.path = path
        self.content = content
        self.contentBase64 = contentBase64
        self.contentLength = contentLength
        self.contentSHA256 = contentSHA256
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
}

/// Result of `file.write`.
public struct FileWriteResult: Sendable, Equatable {
    /// Bytes now in the file (0 when nothing changed).
    public var bytesWritten: Int
    /// Whether the file did not exist before.
    public var created: Bool
    /// Where the old file was kept, when `backup` was asked and there was one.
    public var backupPath: String?
    /// Lowercase hex SHA-256 of the file's content.
    public var checksum: String
    /// **ext**: false when content, mode and owner already matched and nothing was written.
    public var changed: Bool?
    /// **ext**: unified diff (dry run of a text file).
    public var diff: String?
    /// **ext**: bytes staged so far (non-final chunk of a chunked upload).
    public var bytesStaged: Int?

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
}

/// Parameters of `file.read`.
public struct FileReadParams: Sendable, Equatable {
    /// The absolute path of the file.
    public var path: String
    /// Default 10 MiB.
    public var maxBytes: Int
    /// **ext**: first byte to read.
    public var offset: Int
    /// **ext** `file.digest`: no content, only the whole file's size, SHA-256 (`file_checksum`) and metadata:
    /// what a controller asks before sending a file, so an unchanged one is not sent at all.
    public var digestOnly: Bool
    /// **ext** `file.raw_content`: the window comes as raw bytes right after the DONE line (its result's
    /// `content_length` says how many) instead of in `content`. Sent only to a runner that lists the extension.
    public var rawContent: Bool = false
    /// **ext** `file.skip_checksum`: the answer's `checksum` is left empty instead of the window's SHA-256, for
    /// a controller that checks the whole file's digest itself (a pass over every byte saved on the host).
    /// Sent only to a runner that lists the extension.
    public var skipChecksum: Bool = false
    /// **ext** `file.running_checksum`: the runner keeps one SHA-256 over consecutive windows of one file, from
    /// offset 0; the window that reaches the end carries it as `file_checksum`, and every answer carries the
    /// file's `identity`, so a controller verifies a whole file without a separate pass over it on the host.
    /// Sent only to a runner that lists the extension.
    public var runningChecksum: Bool = false

    /// The default and largest useful `max_bytes`.
    public static let defaultMaxBytes = 10 * 1024 * 1024

    /// Creates file.read parameters.
    public init(
        path: String,
        maxBytes: Int = FileReadParams.defaultMaxBytes,
        offset: Int = 0,
        digestOnly: Bool = false
    ) {
        self.path = path
        self.maxBytes = maxBytes
        self.offset = offset
        self.digestOnly = digestOnly
    }
}

/// Result of `file.read`.
public struct FileReadResult: Sendable, Equatable {
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
    public var encoding: ContentEncoding?
    /// **ext**: where the returned bytes start.
    public var offset: Int?
    /// **ext** `file.digest`: the SHA-256 of the whole file, when `digest_only` asked for it.
    public var fileChecksum: String?
    /// **ext** `file.raw_content`: the window's bytes follow the DONE line, this many (`encoding` is `raw`).
    public var contentLength: Int?
    /// **ext** `file.running_checksum`: the file as this window found it, `DEVICE:INODE:SIZE:MTIME:CTIME` (times
    /// in nanoseconds): equal in every window exactly when nothing replaced or changed the file between them.
    public var identity: String?

    /// Creates a file.read result.
    public init(
        content: String,
        size: Int,
        mode: String,
        owner: String,
        group: String,
        checksum: String,
        truncated: Bool,
        encoding: ContentEncoding? = nil,
        offset: Int? = nil,
        fileChecksum: String? = nil,
        contentLength: Int? = nil
    ) {
        self.contentLength = contentLength
        self.content = content
        self.size = size
        self.mode = mode
        self.owner = owner
        self.group = group
        self.checksum = checksum
        self.truncated = truncated
        self.encoding = encoding
        self.offset = offset
        self.fileChecksum = fileChecksum
    }
}

extension ExecParams: WireMapped {
    /// Reads the value from its wire object (absent members take Go's zero values).
    public init(fields: WireFields) throws(WireError) {
        self.init(command: "")
        try read(fields)
    }

    /// The members in wire order, read and written by this one list.
    public mutating func members(_ wire: inout WireMembers) throws(WireError) {
        try wire("command", &command)
        try wire("args", &args)
        try wire("work_dir", &workDir)
        try wire("env", &env)
        try wire("shell", &shell)
        try wire("capture_out", &captureOut)
        try wire("capture_err", &captureErr)
        try wire("stream_lines", &streamLines)
        try wire("use_sudo", &useSudo)
        try wire("sudo_password", &sudoPassword)
        try wire("stdin", &stdin)
        try wire("max_output_bytes", &maxOutputBytes)
        try wire.flag("stream_batch", &streamBatch)
    }
}

extension ExecParams {
    /// The READY extension under which a runner batches streamed lines (`streamBatch`).
    public static let streamBatchExtension = "exec.stream_batch"
}

extension ExecResult {
    /// The wire key of `exitCode`, the one member other code reads out of a result (`DoneMessage.succeeded`).
    public static let exitCodeKey = "exit_code"

    /// What an ERROR for an exec the runner stopped (timeout, cancel, TTL) carries in `details`: the output so
    /// far and the status, under the result's own keys.
    public var stoppedDetails: [String: String] {
        var details = ["stdout": stdout, "stderr": stderr, Self.exitCodeKey: String(exitCode)]
        if stdoutTruncated == true { details["stdout_truncated"] = "true" }
        if stderrTruncated == true { details["stderr_truncated"] = "true" }
        return details
    }
}

extension DoneMessage {
    /// Whether a DONE `result` is a success: every DONE is, but an exec's whose exit status is not 0. The one
    /// rule shared by the runner (`run_if_succeeded`) and the client (`Answer.failed`).
    public static func succeeded(_ result: JSONValue) -> Bool {
        (result[ExecResult.exitCodeKey]?.intValue ?? 0) == 0
    }

    /// Whether this DONE is a success (see `succeeded(_:)`).
    public var succeeded: Bool { Self.succeeded(result) }
}

extension ExecResult: WireMapped {
    /// Reads the value from its wire object (absent members take Go's zero values).
    public init(fields: WireFields) throws(WireError) {
        self.init(exitCode: 0, stdout: "", stderr: "", duration: 0)
        try read(fields)
    }

    /// The members in wire order, read and written by this one list.
    public mutating func members(_ wire: inout WireMembers) throws(WireError) {
        try wire(Self.exitCodeKey, &exitCode)
        try wire("stdout", &stdout)
        try wire("stderr", &stderr)
        try wire("duration", &duration)
        try wire("signal", &signal)
        try wire("stdout_truncated", &stdoutTruncated)
        try wire("stderr_truncated", &stderrTruncated)
        try wire("skipped", &skipped)
    }
}

extension FileWriteParams: WireMapped {
    /// Reads the value from its wire object (absent members take Go's zero values).
    public init(fields: WireFields) throws(WireError) {
        self.init(path: "")
        try read(fields)
    }

    /// The members in wire order, read and written by this one list.
    public mutating func members(_ wire: inout WireMembers) throws(WireError) {
        try wire("path", &path)
        try wire("content", &content)
        try wire("content_base64", &contentBase64)
        try wire("mode", &mode)
        try wire("owner", &owner)
        try wire("group", &group)
        try wire("backup", &backup)
        try wire("create", &create)
        try wire("use_sudo", &useSudo)
        try wire("sudo_password", &sudoPassword)
        try wire.nonEmpty("upload_id", &uploadID)
        try wire("offset", &offset)
        try wire("final", &final)
        try wire("content_length", &contentLength)
        try wire.nonEmpty("content_sha256", &contentSHA256)
        try wire.nonEmpty("file_sha256", &fileSHA256)
    }
}

extension FileWriteResult: WireMapped {
    /// Reads the value from its wire object (absent members take Go's zero values).
    public init(fields: WireFields) throws(WireError) {
        self.init(bytesWritten: 0, created: false, checksum: "")
        try read(fields)
    }

    /// The members in wire order, read and written by this one list.
    public mutating func members(_ wire: inout WireMembers) throws(WireError) {
        try wire("bytes_written", &bytesWritten)
        try wire("created", &created)
        try wire.nonEmpty("backup_path", &backupPath)
        try wire("checksum", &checksum)
        try wire("changed", &changed)
        try wire("diff", &diff)
        try wire("bytes_staged", &bytesStaged)
    }
}

extension FileReadParams: WireMapped {
    /// Reads the value from its wire object (absent members take Go's zero values).
    public init(fields: WireFields) throws(WireError) {
        self.init(path: "")
        try read(fields)
    }

    /// The members in wire order, read and written by this one list.
    public mutating func members(_ wire: inout WireMembers) throws(WireError) {
        try wire("path", &path)
        try wire("max_bytes", &maxBytes)
        if wire.isReading && maxBytes <= 0 { maxBytes = Self.defaultMaxBytes }  // 0 or absent: the default
        try wire("offset", &offset)
        try wire.flag("digest_only", &digestOnly)
        try wire.flag("raw_content", &rawContent)
        try wire.flag("skip_checksum", &skipChecksum)
        try wire.flag("running_checksum", &runningChecksum)
    }
}

extension FileReadResult: WireMapped {
    /// Reads the value from its wire object (absent members take Go's zero values).
    public init(fields: WireFields) throws(WireError) {
        self.init(content: "", size: 0, mode: "", owner: "", group: "", checksum: "", truncated: false)
        try read(fields)
    }

    /// The members in wire order, read and written by this one list.
    public mutating func members(_ wire: inout WireMembers) throws(WireError) {
        try wire("content", &content)
        try wire("size", &size)
        try wire("mode", &mode)
        try wire("owner", &owner)
        try wire("group", &group)
        try wire("checksum", &checksum)
        try wire("truncated", &truncated)
        try wire("encoding", &encoding)
        try wire("offset", &offset)
        try wire("file_checksum", &fileChecksum)
        try wire("content_length", &contentLength)
        try wire("identity", &identity)
    }
}
