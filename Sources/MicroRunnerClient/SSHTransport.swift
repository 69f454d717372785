import Foundation
import Logging
import MicroRunnerCrypto
import Synchronization

/// Options for the system OpenSSH client. Everything else (ProxyJump, agent, keys, known_hosts) comes
/// from the user's own `~/.ssh/config`, which ssh reads as usual.
///
/// ```swift
/// var options = SSHOptions()
/// options.configFile = "/etc/fleet/ssh_config"        // ssh -F
/// options.hostKeyChecking = .acceptNew
/// options.sharing = .master(directory: socketDirectory, persist: 60)
/// options.become = Become(user: "root")               // sudo -u root for every command
/// options.logger = Logger(label: "fleet")
/// ```
public struct SSHOptions: Sendable {
    /// How the host key is checked.
    public enum HostKeyChecking: String, Sendable {
        /// Known hosts only (the default).
        case strict = "yes"
        /// Add unknown hosts, refuse changed keys.
        case acceptNew = "accept-new"
        /// No checking at all: an explicit, insecure opt-out.
        case insecureDisabled = "no"
    }

    /// The ssh executable.
    public var sshPath = "ssh"
    /// `-F`: an ssh config file instead of `~/.ssh/config`.
    public var configFile: String?
    /// `-i`: a private key (with IdentitiesOnly).
    public var identityFile: String?
    /// `UserKnownHostsFile`.
    public var knownHostsFile: String?
    /// Host key policy; strict by default.
    public var hostKeyChecking = HostKeyChecking.strict
    /// Seconds to connect.
    public var connectTimeout = 10
    /// Extra `-o` options; they come first, so they win over everything this transport sets.
    public var extraOptions: [String] = []
    /// `mr-connect` (this package's product): when set, a new connection is opened by it, with Nagle's algorithm
    /// off from the first byte, and handed to ssh (ProxyCommand with ProxyUseFdpass): OpenSSH turns Nagle off only
    /// once the session is open, and the key exchange before that stalls on delayed ACKs (`ssh host true` over
    /// loopback: 140 ms, 90-110 ms so). Used only where `ssh -G` says ssh would connect by itself (no
    /// ProxyCommand, ProxyJump, BindAddress or BindInterface, one connection attempt); `nil` (the default): ssh
    /// connects as usual. mrctl sets it when the helper is installed beside it.
    public var connectHelper: String?
    /// Whether sessions to one host share an ssh connection.
    public var sharing = ConnectionSharing.none
    /// Where on the host the runner is put (in a fresh private subdirectory); `nil`: `$TMPDIR` or `/tmp`, and
    /// `~/.cache/micro-runner` when that is mounted noexec.
    public var remoteDirectory: String?
    /// Run the runner as another user through sudo (see `Become`); nil: as the login user.
    public var become: Become?
    /// Where the transport says what it does: each connection and upload (`.debug`), the architecture it learns
    /// of a host and the tidy-up after a session that ended uncleanly (`.info`), shared connections closed
    /// (`.debug`); every entry carries `host`. `nil` (the default): nothing is logged. The library never prints.
    public var logger: Logger?

    /// Whether sessions to one host share one ssh connection (OpenSSH's ControlMaster).
    public enum ConnectionSharing: Sendable, Equatable {
        /// One ssh connection per session, no master: the fastest choice when a run opens one session per
        /// host, as every mrctl command does (measured: one command on 50 hosts took 1.54 s without masters
        /// against 1.91 s with them; plain ssh 0.95 s). A session that dies uncleanly costs one more handshake
        /// for its clean-up.
        case none
        /// A master per host with its socket in `directory` (private, 0700, which the caller creates and
        /// removes), kept `persist` seconds after its last session and closed by `shutdown()`: worth it when
        /// a program opens several sessions to the same host, each of which then skips the handshake.
        case master(directory: String, persist: Int)
        /// Like `master`, but left open when the program ends: a later program (the next mrctl call) reuses it
        /// within `persist` seconds and skips the handshake, as Ansible's `~/.ansible/cp` does. ssh removes a
        /// stale socket by itself.
        case persistent(directory: String, persist: Int)
    }

    /// The per-user directory for persistent masters, `~/.cache/micro-runner/cp`, created 0700.
    /// - Throws: `ClientError` `.usage` when it cannot be made private (another owner, or group/other access).
    public static func persistentDirectory() throws -> String {
        let home = FileManager.default.homeDirectoryForCurrentUser.path
        let dir = home + "/.cache/micro-runner/cp"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        chmod(dir, 0o700)
        var st = stat()
        guard lstat(dir, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR, st.st_uid == geteuid(), st.st_mode & 0o077 == 0
        else {
            throw ClientError(
                .usage,
                "\(dir) is not a private directory of this user (0700): ssh sockets cannot go there"
            )
        }
        return dir
    }

    /// Creates options with the defaults: strict host keys, no connection sharing.
    public init() {}
}

/// Runs the runner on a host through the system OpenSSH client (sharing a connection per host when
/// `SSHOptions.sharing` asks for it).
///
/// Upload and start are one ssh command: a POSIX sh bootstrap reads the gzip'd runner from stdin, checks its
/// SHA-256, puts it in a fresh `mktemp -d` directory (mode 0700) and runs it with the rest of stdin as the
/// protocol channel; the directory is removed when the runner exits, and by `cleanup` if the session died.
///
/// ```swift
/// let transport = SSHTransport(host: try HostSpec(parsing: "web1"), options: options, runners: runners)
/// let kernel = try await RunnerClient.withRunner(transport: transport, runner: runner) { client in
///     try await client.exec(ExecParams(command: "uname -r")).stdout
/// }
/// ```
public struct SSHTransport: Transport {
    /// The host.
    public let host: HostSpec
    /// ssh options.
    public let options: SSHOptions

    /// What reports call the host.
    public var name: String { displayName ?? host.description }
    /// What reports call the host, when not its ssh destination (an inventory's name for it).
    public let displayName: String?

    /// Creates a transport for one host.
    /// Runners by architecture: when set, each host gets the one for its `uname -m` (learned over the same ssh
    /// session, remembered per host for the life of the process) and the `runner` passed to `start` is
    /// ignored.
    public let runners: RunnerSet?

    /// Creates a transport for one host.
    public init(host: HostSpec, options: SSHOptions = SSHOptions(), runners: RunnerSet? = nil, name: String? = nil) {
        self.displayName = name
        self.host = host
        self.options = options
        self.runners = runners
    }

    /// Quotes a word for a POSIX shell.
    static func shellQuote(_ s: String) -> String {
        "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// A command for the login shell to run: each word quoted, after `exec` (no login shell stays around).
    static func remoteCommand(_ argv: [String]) -> String {
        (["exec"] + argv.map(shellQuote)).joined(separator: " ")
    }

    /// A kept connection (`--persist`) keeps the runner on the host as long as ssh keeps the connection: a later
    /// session starts it with no upload (50 hosts over kept connections: half the CPU was the upload's gzip,
    /// SHA-256 and helpers).
    var keptRunner: RemoteBootstrap.Kept? {
        guard case .persistent(let directory, let persist) = options.sharing, persist > 0 else { return nil }
        return RemoteBootstrap.Kept(seconds: persist, recordPath: controlPath(directory) + ".runner")
    }

    /// The bootstrap (upload, start, tidy-up) over this host's ssh.
    var bootstrap: RemoteBootstrap {
        let transport = self
        return RemoteBootstrap(
            name: name,
            key: host.description,
            runners: runners,
            remoteDirectory: options.remoteDirectory,
            become: options.become,
            logger: options.logger,
            launch: { argv in
                let ssh = try transport.sshExecutable()
                return try ChildProcess(
                    executable: ssh,
                    arguments: transport.sshArguments(
                        Self.remoteCommand(argv),
                        connect: transport.directConnectOptions(ssh: ssh)
                    )
                )
            },
            failure: { stderr in
                ClientError(
                    transport.failureKind(stderr: stderr),
                    "\(transport.name): \(transport.explain(stderr: stderr))"
                )
            },
            kept: keptRunner
        )
    }

    /// The ssh command line for `remoteCommand`, options first.
    package func sshArguments(_ remoteCommand: String?, extra: [String] = [], connect: [String] = []) -> [String] {
        var args: [String] = []
        for o in options.extraOptions { args += ["-o", o] }
        if let config = options.configFile { args += ["-F", config] }
        args += [
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=\(options.hostKeyChecking.rawValue)",
            "-o", "ConnectTimeout=\(options.connectTimeout)",
            "-o", "ServerAliveInterval=15",
            "-o", "LogLevel=ERROR",
        ]
        switch options.sharing {
        case .none: args += ["-o", "ControlMaster=no", "-o", "ControlPath=none"]
        case .master(let directory, let persist), .persistent(let directory, let persist):
            args += [
                "-o", "ControlMaster=auto", "-o", "ControlPath=\(controlPath(directory))",
                "-o", "ControlPersist=\(persist)",
            ]
        }
        if options.hostKeyChecking == .insecureDisabled { args += ["-o", "UserKnownHostsFile=/dev/null"] }
        if let known = options.knownHostsFile { args += ["-o", "UserKnownHostsFile=\(known)"] }
        if let key = options.identityFile { args += ["-i", key, "-o", "IdentitiesOnly=yes"] }
        if let port = host.port { args += ["-p", String(port)] }
        if let user = host.user { args += ["-l", user] }
        args += extra
        args += connect
        args += ["--", host.host]
        if let remoteCommand { args.append(remoteCommand) }
        return args
    }

    /// One socket per host as written (aliases of one machine get their own connections), short enough for
    /// the 108-byte socket path limit.
    package func controlPath(_ directory: String) -> String {
        // The destination and what else decides where ssh goes (a config file can map one alias differently).
        var h = Crypto.SHA256()
        h.update(Array("\(host.description)\n\(options.configFile ?? "")\n\(options.identityFile ?? "")".utf8))
        return directory + "/" + String(h.finalizeHex().prefix(16))
    }

    func sshExecutable() throws -> String {
        try RemoteBootstrap.executable(options.sshPath, install: "install openssh-client")
    }

    /// Uploads and starts the runner in one ssh session (see `RemoteBootstrap.script`).
    public func start(runner: RunnerBinary, arguments: [String]) async throws -> RunnerSession {
        try await bootstrap.start(runner: runner, arguments: arguments, describe: ["sharing": "\(options.sharing)"])
    }

    /// The kind of a failure, from ssh's words.
    public func failureKind(stderr: String) -> ClientError.Kind {
        ClientError.sshFailureKind(withConnectNote(stderr))
    }

    /// ssh's stderr, reduced to what helps: the last non-empty lines.
    package static func explain(_ stderr: String) -> String {
        // ssh's own warnings, said in one line each with what to do.
        if stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") {
            // ssh names the line: "Offending ED25519 key in /root/.ssh/known_hosts:3".
            let offending =
                stderr.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" }).first {
                    $0.contains("Offending") && $0.contains(" key in ")
                }.map { line -> String in
                    let text = String(line).trimmingCharacters(in: .whitespacesAndNewlines)
                    return " ("
                        + text.replacingOccurrences(of: "Offending", with: "the old").replacingOccurrences(
                            of: " key in ",
                            with: " key is at "
                        ) + ")"
                } ?? ""
            return "the host key has changed since it was recorded in known_hosts\(offending); ssh refuses, as this "
                + "can be an attack; if the change is expected, remove the old key with ssh-keygen -R HOST and connect again"
        }
        if stderr.contains("Host key verification failed") && stderr.contains("host key is known for") {
            return "the host key is not in known_hosts (ssh refuses unknown hosts); check it and add it, or record "
                + "keys of new hosts (mrctl --accept-new-host-keys; SSHOptions.hostKeyChecking = .acceptNew)"
        }
        return RemoteBootstrap.lastLines(of: stderr, fallback: "ssh failed")
    }

    /// Waits for the session's end; removes the remote directory when the runner could not.
    public func cleanup(_ session: RunnerSession) async { await bootstrap.cleanup(session) }

    /// `RemoteBootstrap.cleanupCommand` as one line for the login shell.
    package static func cleanupScript(directory: String, runnerPID: Int?) -> String {
        remoteCommand(RemoteBootstrap.cleanupCommand(directory: directory, runnerPID: runnerPID))
    }

    /// Closes this host's ControlMaster connection.
    public func shutdown() async { await closeMaster() }

    /// ssh's and the bootstrap's last lines, without the bootstrap's own bookkeeping.
    public func explain(stderr: String) -> String { Self.explain(withConnectNote(stderr)) }

    /// Closes this host's ControlMaster connection (a persistent one too when `includingPersistent`: after an
    /// interrupt, nothing of the run should stay behind).
    public func closeMaster(includingPersistent: Bool = false) async {
        let directory: String
        switch options.sharing {
        case .master(let d, _): directory = d
        case .persistent(let d, _) where includingPersistent: directory = d
        default: return
        }
        guard FileManager.default.fileExists(atPath: controlPath(directory)), let ssh = try? sshExecutable() else {
            return
        }
        // The runner the host keeps for this connection goes with it (over the connection, before it closes).
        let kept = RemoteBootstrap.takeKeptDirectories(host.description)
        if case .persistent = options.sharing, let record = keptRunner?.recordPath {
            unlink(record)
        }
        if !kept.isEmpty,
            let rm = try? ChildProcess(
                executable: ssh,
                arguments: sshArguments(
                    Self.remoteCommand(["/bin/sh", "-c", #"rm -rf -- "$@""#, "micro-runner-cleanup"] + kept)
                )
            )
        {
            rm.closeStdin()
            _ = await rm.waitForExit(timeout: .seconds(15))
        }
        guard let p = try? ChildProcess(executable: ssh, arguments: sshArguments(nil, extra: ["-O", "exit"])) else {
            return
        }
        options.logger?.debug("closing the shared connection", metadata: ["host": "\(name)"])
        p.closeStdin()
        _ = await p.waitForExit(timeout: .seconds(5))
    }
}
