/// Parameters of `pkg.ensure`.
public struct PkgEnsureParams: Sendable, Equatable {
    /// The package or unit name.
    public var name: String
    /// Exact version to install, upgrade or downgrade to; empty for any.
    public var version: String
    /// `present`, `absent` or `latest`; empty on the wire means `present`.
    public var state: PackageState
    /// `apt`, `dnf`, `yum`, `zypper`; empty: detected.
    public var manager: PackageManager
    /// Extra options for the package manager.
    public var options: [String]

    /// Creates pkg.ensure parameters. `state` defaults to `present`, which is what the wire's empty value means
    /// (written out, so that what is sent says what is meant).
    public init(
        name: String,
        version: String = "",
        state: PackageState = .present,
        manager: PackageManager = "",
        options: [String] = []
    ) {
        self.name = name
        self.version = version
        self.state = state
        self.manager = manager
        self.options = options
    }
}

/// Result of `pkg.ensure`.
public struct PkgEnsureResult: Sendable, Equatable {
    /// Whether the host was changed.
    public var changed: Bool
    /// The version installed before; empty when none was.
    public var previousVersion: String
    /// The version installed now; empty when none is.
    public var installedVersion: String
    /// `installed`, `removed`, `upgraded`, `downgraded`, `already_present`, `already_absent`.
    public var action: String

    /// Creates a pkg.ensure result.
    public init(changed: Bool, previousVersion: String, installedVersion: String, action: String) {
        self.changed = changed
        self.previousVersion = previousVersion
        self.installedVersion = installedVersion
        self.action = action
    }
}

/// Parameters of `service.reload`.
public struct ServiceReloadParams: Sendable, Equatable {
    /// The package or unit name.
    public var name: String
    /// `reload`, `restart`, `start`, `stop`, `enable`, `disable`.
    public var action: ServiceAction

    /// Creates service.reload parameters.
    public init(name: String, action: ServiceAction) {
        self.name = name
        self.action = action
    }
}

/// Result of `service.reload`.
public struct ServiceReloadResult: Sendable, Equatable {
    /// Whether the host was changed.
    public var changed: Bool
    /// What was done (see the command type's documentation for the values).
    public var action: String
    /// `ActiveState`, e.g. `active`.
    public var status: String
    /// Whether the unit starts at boot.
    public var enabled: Bool
    /// `SubState`, e.g. `running`.
    public var subState: String

    /// Creates a service.reload result.
    public init(changed: Bool, action: String, status: String, enabled: Bool, subState: String) {
        self.changed = changed
        self.action = action
        self.status = status
        self.enabled = enabled
        self.subState = subState
    }
}

/// Parameters of `sudoers.ensure`.
public struct SudoersEnsureParams: Sendable, Equatable {
    /// The user the rule is for.
    public var user: String
    /// Absolute paths of the commands allowed.
    public var commands: [String]
    /// Allow the commands without a password (`NOPASSWD:`).
    public var noPasswd: Bool
    /// `present` or `absent`; empty on the wire means `present`.
    public var state: RuleState
    /// Run the change through `sudo`.
    public var useSudo: Bool
    /// The password sudo reads on its standard input; never echoed back.
    public var sudoPassword: String

    /// Creates sudoers.ensure parameters.
    public init(user: String, commands: [String], noPasswd: Bool = false, state: RuleState = .present) {
        self.user = user
        self.commands = commands
        self.noPasswd = noPasswd
        self.state = state
        self.useSudo = false
        self.sudoPassword = ""
    }
}

/// Result of `sudoers.ensure`.
public struct SudoersEnsureResult: Sendable, Equatable {
    /// Whether the host was changed.
    public var changed: Bool
    /// `/etc/sudoers.d/froyo-<user>`.
    public var filePath: String
    /// `created`, `updated`, `removed`, `already_present`, `already_absent`.
    public var action: String

    /// Creates a sudoers.ensure result.
    public init(changed: Bool, filePath: String, action: String) {
        self.changed = changed
        self.filePath = filePath
        self.action = action
    }
}

/// Parameters of `sshd.harden`.
public struct SshdHardenParams: Sendable, Equatable {
    /// Turn off password and keyboard-interactive logins.
    public var disablePasswordAuth: Bool
    /// `PermitRootLogin no`.
    public var disableRootLogin: Bool
    /// `AllowUsers`; empty leaves it as it is.
    public var allowUsers: [String]
    /// 0 keeps the port.
    public var port: Int
    /// After the reload, check that sshd still answers with an SSH banner (roll back if not).
    public var testConnection: Bool

    /// Creates sshd.harden parameters.
    public init(
        disablePasswordAuth: Bool = true,
        disableRootLogin: Bool = true,
        allowUsers: [String] = [],
        port: Int = 0,
        testConnection: Bool = true
    ) {
        self.disablePasswordAuth = disablePasswordAuth
        self.disableRootLogin = disableRootLogin
        self.allowUsers = allowUsers
        self.port = port
        self.testConnection = testConnection
    }
}

/// Result of `sshd.harden`.
public struct SshdHardenResult: Sendable, Equatable {
    /// Whether the host was changed.
    public var changed: Bool
    /// Where the previous configuration was kept.
    public var backupPath: String
    /// Keys whose effective value changed.
    public var modifiedKeys: [String]
    /// `reloaded` or `none`.
    public var serviceAction: String

    /// Creates an sshd.harden result.
    public init(changed: Bool, backupPath: String, modifiedKeys: [String], serviceAction: String) {
        self.changed = changed
        self.backupPath = backupPath
        self.modifiedKeys = modifiedKeys
        self.serviceAction = serviceAction
    }
}

extension PkgEnsureParams: WireMapped {
    /// Reads the value from its wire object (absent members take Go's zero values).
    public init(fields: WireFields) throws(WireError) {
        self.init(name: "")
        try read(fields)
    }

    /// The members in wire order, read and written by this one list.
    public mutating func members(_ wire: inout WireMembers) throws(WireError) {
        try wire("name", &name)
        try wire("version", &version)
        try wire("state", &state)
        try wire("manager", &manager)
        try wire("options", &options)
    }
}

extension PkgEnsureResult: WireMapped {
    /// Reads the value from its wire object (absent members take Go's zero values).
    public init(fields: WireFields) throws(WireError) {
        self.init(changed: false, previousVersion: "", installedVersion: "", action: "")
        try read(fields)
    }

    /// The members in wire order, read and written by this one list.
    public mutating func members(_ wire: inout WireMembers) throws(WireError) {
        try wire("changed", &changed)
        try wire("previous_version", &previousVersion)
        try wire("installed_version", &installedVersion)
        try wire("action", &action)
    }
}

extension ServiceReloadParams: WireMapped {
    /// Reads the value from its wire object (absent members take Go's zero values).
    public init(fields: WireFields) throws(WireError) {
        self.init(name: "", action: "")
        try read(fields)
    }

    /// The members in wire order, read and written by this one list.
    public mutating func members(_ wire: inout WireMembers) throws(WireError) {
        try wire("name", &name)
        try wire("action", &action)
    }
}

extension ServiceReloadResult: WireMapped {
    /// Reads the value from its wire object (absent members take Go's zero values).
    public init(fields: WireFields) throws(WireError) {
        self.init(changed: false, action: "", status: "", enabled: false, subState: "")
        try read(fields)
    }

    /// The members in wire order, read and written by this one list.
    public mutating func members(_ wire: inout WireMembers) throws(WireError) {
        try wire("changed", &changed)
        try wire("action", &action)
        try wire("status", &status)
        try wire("enabled", &enabled)
        try wire("sub_state", &subState)
    }
}

extension SudoersEnsureParams: WireMapped {
    /// Reads the value from its wire object (absent members take Go's zero values).
    public init(fields: WireFields) throws(WireError) {
        self.init(user: "", commands: [])
        try read(fields)
    }

    /// The members in wire order, read and written by this one list.
    public mutating func members(_ wire: inout WireMembers) throws(WireError) {
        try wire("user", &user)
        try wire("commands", &commands)
        try wire("no_passwd", &noPasswd)
        try wire("state", &state)
        try wire("use_sudo", &useSudo)
        try wire("sudo_password", &sudoPassword)
    }
}

extension SudoersEnsureResult: WireMapped {
    /// Reads the value from its wire object (absent members take Go's zero values).
    public init(fields: WireFields) throws(WireError) {
        self.init(changed: false, filePath: "", action: "")
        try read(fields)
    }

    /// The members in wire order, read and written by this one list.
    public mutating func members(_ wire: inout WireMembers) throws(WireError) {
        try wire("changed", &changed)
        try wire("file_path", &filePath)
        try wire("action", &action)
    }
}

extension SshdHardenParams: WireMapped {
    /// Reads the value from its wire object (absent members take Go's zero values).
    public init(fields: WireFields) throws(WireError) {
        self.init()
        try read(fields)
    }

    /// The members in wire order, read and written by this one list.
    public mutating func members(_ wire: inout WireMembers) throws(WireError) {
        try wire("disable_password_auth", &disablePasswordAuth)
        try wire("disable_root_login", &disableRootLogin)
        try wire("allow_users", &allowUsers)
        try wire("port", &port)
        try wire("test_connection", &testConnection)
    }
}

extension SshdHardenResult: WireMapped {
    /// Reads the value from its wire object (absent members take Go's zero values).
    public init(fields: WireFields) throws(WireError) {
        self.init(changed: false, backupPath: "", modifiedKeys: [], serviceAction: "")
        try read(fields)
    }

    /// The members in wire order, read and written by this one list.
    public mutating func members(_ wire: inout WireMembers) throws(WireError) {
        try wire("changed", &changed)
        try wire("backup_path", &backupPath)
        try wire("modified_keys", &modifiedKeys)
        try wire("service_action", &serviceAction)
    }
}
