/// An open, string-backed wire name: known values are static members, and a value a newer peer
/// sends that this build does not know still decodes (and can be answered `UNSUPPORTED`).
public protocol WireName: RawRepresentable, Hashable, Sendable, ExpressibleByStringLiteral,
    CustomStringConvertible
where RawValue == String, StringLiteralType == String {
    /// Creates the name from its wire spelling.
    init(rawValue: String)
}

extension WireName {
    /// Creates the name from a literal.
    public init(stringLiteral value: String) { self.init(rawValue: value) }
    /// The wire spelling.
    public var description: String { rawValue }
}

/// The `type` of an envelope.
public struct MessageType: WireName {
    /// The wire spelling.
    public let rawValue: String
    /// Creates the name from its wire spelling (any string: the set is open).
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
    /// The wire spelling.
    public let rawValue: String
    /// Creates the name from its wire spelling (any string: the set is open).
    public init(rawValue: String) { self.rawValue = rawValue }

    /// Run a command.
    public static let exec: Self = "exec"
    /// Write a file atomically.
    public static let fileWrite: Self = "file.write"
    /// Read a file.
    public static let fileRead: Self = "file.read"
    /// Install, upgrade or remove a package.
    public static let pkgEnsure: Self = "pkg.ensure"
    /// Act on a systemd unit.
    public static let serviceReload: Self = "service.reload"
    /// Ensure a validated sudoers rule.
    public static let sudoersEnsure: Self = "sudoers.ensure"
    /// Harden sshd's configuration, with rollback.
    public static let sshdHarden: Self = "sshd.harden"

    /// Every command type of protocol v1, in the order PROTOCOL.md lists them.
    public static let all: [Self] = [
        .exec, .fileWrite, .fileRead, .pkgEnsure, .serviceReload, .sudoersEnsure, .sshdHarden,
    ]
}

/// The `code` of an ERROR.
public struct ErrorCode: WireName {
    /// The wire spelling.
    public let rawValue: String
    /// Creates the name from its wire spelling (any string: the set is open).
    public init(rawValue: String) { self.rawValue = rawValue }

    /// The runner could not start (e.g. its state directory).
    public static let initFailed: Self = "INIT_FAILED"
    /// The runner could not send READY.
    public static let readyFailed: Self = "READY_FAILED"
    /// The command failed to run.
    public static let execFailed: Self = "EXEC_FAILED"
    /// The command's timeout (or the runner's TTL) ended it.
    public static let timeout: Self = "TIMEOUT"
    /// The CMD was malformed or its parameters invalid.
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
    /// The wire spelling.
    public let rawValue: String
    /// Creates the name from its wire spelling (any string: the set is open).
    public init(rawValue: String) { self.rawValue = rawValue }

    /// The runner finished its work.
    public static let completed: Self = "completed"
    /// Its lifetime ran out.
    public static let ttlExpired: Self = "ttl_expired"
    /// The controller closed stdin.
    public static let stdinClosed: Self = "stdin_closed"
    /// A fatal error ended it.
    public static let error: Self = "error"
}

/// The `level` of an EVENT.
public struct EventLevel: WireName {
    /// The wire spelling.
    public let rawValue: String
    /// Creates the name from its wire spelling (any string: the set is open).
    public init(rawValue: String) { self.rawValue = rawValue }

    /// Normal output or progress.
    public static let info: Self = "info"
    /// Something to look at.
    public static let warn: Self = "warn"
    /// Detail for troubleshooting.
    public static let debug: Self = "debug"
}

/// `pkg.ensure`'s `state`; empty on the wire (Go's zero value) means `present`.
public struct PackageState: WireName {
    /// The wire spelling.
    public let rawValue: String
    /// Creates the name from its wire spelling (any string: the set is open).
    public init(rawValue: String) { self.rawValue = rawValue }

    /// Installed (at `version` when given).
    public static let present: Self = "present"
    /// Not installed.
    public static let absent: Self = "absent"
    /// The newest version the repositories offer.
    public static let latest: Self = "latest"
    /// The states a runner of this version acts on.
    public static let all: [Self] = [.present, .absent, .latest]
}

/// `pkg.ensure`'s `manager`; empty lets the runner detect one.
public struct PackageManager: WireName {
    /// The wire spelling.
    public let rawValue: String
    /// Creates the name from its wire spelling (any string: the set is open).
    public init(rawValue: String) { self.rawValue = rawValue }

    /// Debian's apt-get (with dpkg-query).
    public static let apt: Self = "apt"
    /// Fedora's and RHEL's dnf.
    public static let dnf: Self = "dnf"
    /// dnf's predecessor; driven as dnf.
    public static let yum: Self = "yum"
    /// SUSE's zypper.
    public static let zypper: Self = "zypper"
    /// The managers a runner of this version drives, in the order it looks for them.
    public static let all: [Self] = [.apt, .dnf, .yum, .zypper]
}

/// `service.reload`'s `action` (systemd).
public struct ServiceAction: WireName {
    /// The wire spelling.
    public let rawValue: String
    /// Creates the name from its wire spelling (any string: the set is open).
    public init(rawValue: String) { self.rawValue = rawValue }

    /// Reload a running unit (start it when it is not running).
    public static let reload: Self = "reload"
    /// Restart the unit.
    public static let restart: Self = "restart"
    /// Start the unit.
    public static let start: Self = "start"
    /// Stop the unit.
    public static let stop: Self = "stop"
    /// Enable the unit at boot.
    public static let enable: Self = "enable"
    /// Disable the unit at boot.
    public static let disable: Self = "disable"
    /// The actions a runner of this version performs.
    public static let all: [Self] = [.reload, .restart, .start, .stop, .enable, .disable]
}

/// `sudoers.ensure`'s `state`; empty on the wire means `present`.
public struct RuleState: WireName {
    /// The wire spelling.
    public let rawValue: String
    /// Creates the name from its wire spelling (any string: the set is open).
    public init(rawValue: String) { self.rawValue = rawValue }

    /// The rule is installed.
    public static let present: Self = "present"
    /// The rule is removed.
    public static let absent: Self = "absent"
}

/// How file content is carried in `file.write` params and `file.read` results.
public struct ContentEncoding: WireName {
    /// The wire spelling.
    public let rawValue: String
    /// Creates the name from its wire spelling (any string: the set is open).
    public init(rawValue: String) { self.rawValue = rawValue }

    /// The text itself (a file.read of valid UTF-8).
    public static let utf8: Self = "utf8"
    /// Standard base64 in the JSON string.
    public static let base64: Self = "base64"
    /// The bytes follow the line itself (extension `file.raw_content`).
    public static let raw: Self = "raw"
}
