/// An open, string-backed wire name: known values are static members, and a value a newer peer
/// sends that this build does not know still decodes (and can be answered `UNSUPPORTED`).
public protocol WireName: RawRepresentable, Hashable, Sendable, ExpressibleByStringLiteral,
    CustomStringConvertible
where RawValue == String, StringLiteralType == String {
    /// Creates the name from its wire spelling.
    init(rawValue: String)
}

extension WireName {
    public init(stringLiteral value: String) { self.init(rawValue: value) }
    public var description: String { rawValue }
}

/// The `type` of an envelope.
public struct MessageType: WireName {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    /// Runner start-up: version, platform and capabilities.
    public static let ready: Self = "READY"
    /// Progress or output of a running command.
    public static let event: Self = "EVENT"
    /// A command succeeded (or ran to an exit status) with a result.
    public static let done: Self = "DONE"
    /// A command (or a line) failed.
    public static let error: Self = "ERROR"
    /// The runner's last line.
    public static let exit: Self = "EXIT"
    /// A command from the controller.
    public static let command: Self = "CMD"
    /// **ext**: stop a running or queued command.
    public static let cancel: Self = "CANCEL"
}

/// The `type` of a CMD.
public struct CommandType: WireName {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let exec: Self = "exec"
    public static let fileWrite: Self = "file.write"
    public static let fileRead: Self = "file.read"
    public static let pkgEnsure: Self = "pkg.ensure"
    public static let serviceReload: Self = "service.reload"
    public static let sudoersEnsure: Self = "sudoers.ensure"
    public static let sshdHarden: Self = "sshd.harden"

    /// Every command type of protocol v1, in the order PROTOCOL.md lists them.
    public static let all: [Self] = [
        .exec, .fileWrite, .fileRead, .pkgEnsure, .serviceReload, .sudoersEnsure, .sshdHarden,
    ]
}

/// The `code` of an ERROR.
public struct ErrorCode: WireName {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let initFailed: Self = "INIT_FAILED"
    public static let readyFailed: Self = "READY_FAILED"
    public static let execFailed: Self = "EXEC_FAILED"
    public static let timeout: Self = "TIMEOUT"
    public static let invalidCommand: Self = "INVALID_CMD"
    /// **ext**: unknown command type, or the capability is off on this host.
    public static let unsupported: Self = "UNSUPPORTED"
    /// **ext**
    public static let signatureInvalid: Self = "SIGNATURE_INVALID"
    /// **ext**
    public static let cancelled: Self = "CANCELLED"
    /// **ext**
    public static let permissionDenied: Self = "PERMISSION_DENIED"
    /// **ext**
    public static let notFound: Self = "NOT_FOUND"
    /// **ext**: e.g. a package manager lock is held; retryable.
    public static let conflict: Self = "CONFLICT"
}

/// The `reason` of EXIT.
public struct ExitReason: WireName {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let completed: Self = "completed"
    public static let ttlExpired: Self = "ttl_expired"
    public static let stdinClosed: Self = "stdin_closed"
    public static let error: Self = "error"
}

/// The `level` of an EVENT.
public struct EventLevel: WireName {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let info: Self = "info"
    public static let warn: Self = "warn"
    public static let debug: Self = "debug"
}
