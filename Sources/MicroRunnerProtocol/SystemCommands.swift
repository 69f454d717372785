/// Parameters of `pkg.ensure`.
public struct PkgEnsureParams: Codable, Sendable, Equatable {
    public var name: String
    /// Exact version to install, upgrade or downgrade to; empty for any.
    public var version: String
    /// `present`, `absent` or `latest`.
    public var state: String
    /// `apt`, `dnf`, `yum`, `zypper`; empty: detected.
    public var manager: String
    /// Extra options for the package manager.
    public var options: [String]

    /// Creates pkg.ensure parameters.
    public init(
        name: String,
        version: String = "",
        state: String = "present",
        manager: String = "",
        options: [String] = []
    ) {
        self.name = name
        self.version = version
        self.state = state
        self.manager = manager
        self.options = options
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.value(.name, or: "")
        version = try c.value(.version, or: "")
        state = try c.value(.state, or: "")
        manager = try c.value(.manager, or: "")
        options = try c.value(.options, or: [])
    }
}

/// Result of `pkg.ensure`.
public struct PkgEnsureResult: Codable, Sendable, Equatable {
    public var changed: Bool
    public var previousVersion: String
    public var installedVersion: String
    /// `installed`, `removed`, `upgraded`, `downgraded`, `already_present`, `already_absent`.
    public var action: String

    enum CodingKeys: String, CodingKey {
        case changed
        case previousVersion = "previous_version"
        case installedVersion = "installed_version"
        case action
    }

    /// Creates a pkg.ensure result.
    public init(changed: Bool, previousVersion: String, installedVersion: String, action: String) {
        self.changed = changed
        self.previousVersion = previousVersion
        self.installedVersion = installedVersion
        self.action = action
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        changed = try c.value(.changed, or: false)
        previousVersion = try c.value(.previousVersion, or: "")
        installedVersion = try c.value(.installedVersion, or: "")
        action = try c.value(.action, or: "")
    }
}

/// Parameters of `service.reload`.
public struct ServiceReloadParams: Codable, Sendable, Equatable {
    public var name: String
    /// `reload`, `restart`, `start`, `stop`, `enable`, `disable`.
    public var action: String

    /// Creates service.reload parameters.
    public init(name: String, action: String) {
        self.name = name
        self.action = action
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.value(.name, or: "")
        action = try c.value(.action, or: "")
    }
}

/// Result of `service.reload`.
public struct ServiceReloadResult: Codable, Sendable, Equatable {
    public var changed: Bool
    public var action: String
    /// `ActiveState`, e.g. `active`.
    public var status: String
    public var enabled: Bool
    /// `SubState`, e.g. `running`.
    public var subState: String

    enum CodingKeys: String, CodingKey {
        case changed, action, status, enabled
        case subState = "sub_state"
    }

    /// Creates a service.reload result.
    public init(changed: Bool, action: String, status: String, enabled: Bool, subState: String) {
        self.changed = changed
        self.action = action
        self.status = status
        self.enabled = enabled
        self.subState = subState
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        changed = try c.value(.changed, or: false)
        action = try c.value(.action, or: "")
        status = try c.value(.status, or: "")
        enabled = try c.value(.enabled, or: false)
        subState = try c.value(.subState, or: "")
    }
}

/// Parameters of `sudoers.ensure`.
public struct SudoersEnsureParams: Codable, Sendable, Equatable {
    public var user: String
    /// Absolute paths of the commands allowed.
    public var commands: [String]
    public var noPasswd: Bool
    /// `present` or `absent`.
    public var state: String
    public var useSudo: Bool
    public var sudoPassword: String

    enum CodingKeys: String, CodingKey {
        case user, commands
        case noPasswd = "no_passwd"
        case state
        case useSudo = "use_sudo"
        case sudoPassword = "sudo_password"
    }

    /// Creates sudoers.ensure parameters.
    public init(user: String, commands: [String], noPasswd: Bool = false, state: String = "present") {
        self.user = user
        self.commands = commands
        self.noPasswd = noPasswd
        self.state = state
        self.useSudo = false
        self.sudoPassword = ""
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        user = try c.value(.user, or: "")
        commands = try c.value(.commands, or: [])
        noPasswd = try c.value(.noPasswd, or: false)
        state = try c.value(.state, or: "")
        useSudo = try c.value(.useSudo, or: false)
        sudoPassword = try c.value(.sudoPassword, or: "")
    }
}

/// Result of `sudoers.ensure`.
public struct SudoersEnsureResult: Codable, Sendable, Equatable {
    public var changed: Bool
    /// `/etc/sudoers.d/froyo-<user>`.
    public var filePath: String
    /// `created`, `updated`, `removed`, `already_present`, `already_absent`.
    public var action: String

    enum CodingKeys: String, CodingKey {
        case changed
        case filePath = "file_path"
        case action
    }

    /// Creates a sudoers.ensure result.
    public init(changed: Bool, filePath: String, action: String) {
        self.changed = changed
        self.filePath = filePath
        self.action = action
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        changed = try c.value(.changed, or: false)
        filePath = try c.value(.filePath, or: "")
        action = try c.value(.action, or: "")
    }
}

/// Parameters of `sshd.harden`.
public struct SshdHardenParams: Codable, Sendable, Equatable {
    public var disablePasswordAuth: Bool
    public var disableRootLogin: Bool
    public var allowUsers: [String]
    /// 0 keeps the port.
    public var port: Int
    public var testConnection: Bool

    enum CodingKeys: String, CodingKey {
        case disablePasswordAuth = "disable_password_auth"
        case disableRootLogin = "disable_root_login"
        case allowUsers = "allow_users"
        case port
        case testConnection = "test_connection"
    }

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

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        disablePasswordAuth = try c.value(.disablePasswordAuth, or: false)
        disableRootLogin = try c.value(.disableRootLogin, or: false)
        allowUsers = try c.value(.allowUsers, or: [])
        port = try c.value(.port, or: 0)
        testConnection = try c.value(.testConnection, or: false)
    }
}

/// Result of `sshd.harden`.
public struct SshdHardenResult: Codable, Sendable, Equatable {
    public var changed: Bool
    public var backupPath: String
    /// Keys whose effective value changed.
    public var modifiedKeys: [String]
    /// `reloaded` or `none`.
    public var serviceAction: String

    enum CodingKeys: String, CodingKey {
        case changed
        case backupPath = "backup_path"
        case modifiedKeys = "modified_keys"
        case serviceAction = "service_action"
    }

    /// Creates an sshd.harden result.
    public init(changed: Bool, backupPath: String, modifiedKeys: [String], serviceAction: String) {
        self.changed = changed
        self.backupPath = backupPath
        self.modifiedKeys = modifiedKeys
        self.serviceAction = serviceAction
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        changed = try c.value(.changed, or: false)
        backupPath = try c.value(.backupPath, or: "")
        modifiedKeys = try c.value(.modifiedKeys, or: [])
        serviceAction = try c.value(.serviceAction, or: "")
    }
}
