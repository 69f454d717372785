import Foundation
import MicroRunnerClient
import MicroRunnerTestSupport
import Testing

/// A real OpenSSH server on 127.0.0.1 with its own config, host key, a key-only test user and an ssh
/// client config with `count` host aliases (h1...hN) that all point at it, each its own connection.
final class SSHServer: @unchecked Sendable {
    static let user = "mr-ssh-test"
    /// Login shells a user of the fixture has (user `mr-ssh-NAME`, ssh alias `NAME-user`); `mr-ssh-test` has dash.
    static let loginShells = [
        ("bash", "/bin/bash"), ("zsh", "/usr/bin/zsh"), ("fish", "/usr/bin/fish"), ("tcsh", "/usr/bin/tcsh"),
    ]
    /// A tmpfs mounted noexec (left mounted between runs; the fixture mounts it when it is not).
    static let noexecDirectory = "/run/mr-test-noexec"
    let dir: String
    let port: Int
    let clientConfig: String
    let knownHosts: String
    let clientKey: String

    /// Starts sshd; the test user is created once and kept. `maxStartups`: sshd's limit on connections not yet
    /// authenticated (200 here, so that the suites' bursts pass; 10 is OpenSSH's default).
    ///
    /// `noexecTmp`: sshd (and so every session) runs in a mount namespace of its own where `/tmp` is the same
    /// directory remounted noexec, as on hardened hosts; outside that namespace nothing changes.
    ///
    /// `become`: the users of `BecomeUsers` may log in (aliases `become-nopw`, `become-pw`, `become-none`), and
    /// sessions of `mr-become-nopw` get `APT_CONFIG=DIR/apt.conf` and `MICRO_RUNNER_SSHD_CONFIG` naming this
    /// sshd's own config, which its sudo rule keeps: a test can point apt at a local repository and harden the
    /// very sshd it goes through.
    init(aliases count: Int = 50, maxStartups: Int = 200, noexecTmp: Bool = false, become: Bool = false) throws {
        guard geteuid() == 0 else { throw SSHServerError("the sshd fixture needs root (it creates a user)") }
        // The shared fixture is a global, whose deinit never runs: stop the sshds that earlier test processes
        // left (their `owner` is gone), and this process's own when it exits. Never another live run's: a second
        // `swift test` on the machine (a fresh-clone CI run beside a developer's) lost its sshd to this mid-run.
        shell(Self.stopFixtures(where: #"! { [ -n "$o" ] && kill -0 "$o" 2>/dev/null; }"#))
        atexit { _ = system(SSHServer.stopFixtures(where: "[ \"$o\" = \(getpid()) ]")) }
        guard FileManager.default.isExecutableFile(atPath: "/usr/sbin/sshd") else {
            throw SSHServerError("/usr/sbin/sshd missing: scripts/test installs openssh-server")
        }
        // useradd leaves the account locked; sshd with UsePAM no refuses locked accounts (ensureTestUser unlocks).
        ensureTestUser(Self.user)
        // Users whose login shell parses the command ssh sends before /bin/sh sees it (sshd runs `SHELL -c CMD`).
        for (shellName, path) in Self.loginShells {
            guard FileManager.default.isExecutableFile(atPath: path) else {
                throw SSHServerError("\(path) missing: scripts/test installs \(shellName)")
            }
            let name = "mr-ssh-\(shellName)"
            ensureTestUser(name, loginShell: path)
        }
        if become { try BecomeUsers.create() }
        dir = "/tmp/mr-sshd-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(
            atPath: dir,
            withIntermediateDirectories: false,
            attributes: [.posixPermissions: 0o700]
        )
        try "\(getpid())\n".write(toFile: dir + "/owner", atomically: true, encoding: .utf8)
        shell("mkdir -p /run/sshd")
        shell("ssh-keygen -q -t ed25519 -N '' -f \(dir)/hostkey && ssh-keygen -q -t ed25519 -N '' -f \(dir)/client")
        shell("cp \(dir)/client.pub \(dir)/authorized_keys && chmod 644 \(dir)/authorized_keys && chmod 711 \(dir)")
        port = Self.freePort()
        // Hosts that look like other machines: on these ports, sessions get a PATH whose `uname -m` says so.
        var pretend = ""
        var archPorts: [String: Int] = [:]
        for machine in ["aarch64", "riscv64", "armv7l", "armv6l"] {
            let bin = "\(dir)/uname-\(machine)"
            try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
            try "#!/bin/sh\n[ \"$1\" = -m ] && { echo \(machine); exit 0; }\nexec /bin/uname \"$@\"\n".write(
                toFile: bin + "/uname",
                atomically: true,
                encoding: .utf8
            )
            shell("chmod 755 \(bin) \(bin)/uname")
            let p = Self.freePort()
            archPorts[machine] = p
            pretend += "Match LocalPort \(p)\n    SetEnv PATH=\(bin):/usr/local/bin:/usr/bin:/bin\n"
        }
        // Awkward but ordinary hosts, each on its own port: one that authenticates and then never reads (a
        // `sleep` in its rc), one whose rc prints text without a newline, one whose TMPDIR is mounted noexec.
        shell("mkdir -p \(Self.noexecDirectory)")
        if shell("grep -q ' \(Self.noexecDirectory) ' /proc/mounts").status != 0 {
            let mounted = shell("mount -t tmpfs -o noexec,mode=1777,size=64m tmpfs \(Self.noexecDirectory)")
            guard mounted.status == 0 else { throw SSHServerError("cannot mount a noexec tmpfs: \(mounted.output)") }
        }
        var awkwardPorts: [String: Int] = [:]
        for (name, setting) in [
            ("slow", "ForceCommand sleep 120"),
            ("noisy", #"ForceCommand printf 'Welcome to this host'; exec /bin/sh -c "$SSH_ORIGINAL_COMMAND""#),
            ("noexec", "SetEnv TMPDIR=\(Self.noexecDirectory)"),
            // Hosts that refuse in their own words, on stdout, as cloud images and nologin do.
            (
                "refusing",
                "ForceCommand echo Please login as the user ubuntu rather than the user mr-ssh-test.; exit 142"
            ),
            ("nologin", "ForceCommand /usr/sbin/nologin"),
        ] {
            let p = Self.freePort()
            awkwardPorts[name] = p
            pretend += "Match LocalPort \(p)\n    \(setting)\n"
        }
        if become {
            // sshd.harden validates with `sshd -T`, which refuses a config with `Match LocalPort` blocks ("'lport'
            // not in connection test specification"): the become sshd is a plain one, one port.
            pretend = ""
            archPorts = [:]
            awkwardPorts = [:]
            pretend +=
                "Match User \(BecomeUsers.nopasswd)\n    SetEnv APT_CONFIG=\(dir)/apt.conf MICRO_RUNNER_SSHD_CONFIG=\(dir)/sshd_config\n"
        }
        let listen = ([port] + archPorts.values + awkwardPorts.values).map { "ListenAddress 127.0.0.1:\($0)" }
        let config = """
            \(listen.joined(separator: "\n"))
            HostKey \(dir)/hostkey
            PidFile \(dir)/sshd.pid
            AuthorizedKeysFile \(dir)/authorized_keys
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            UsePAM no
            StrictModes no
            MaxStartups \(maxStartups)
            MaxSessions 200
            AllowUsers \(([Self.user] + Self.loginShells.map { "mr-ssh-\($0.0)" } + (become ? BecomeUsers.all : [])).joined(separator: " "))
            Subsystem sftp internal-sftp
            \(pretend)
            """
        try config.write(toFile: "\(dir)/sshd_config", atomically: true, encoding: .utf8)
        let hostPub = try String(contentsOfFile: "\(dir)/hostkey.pub", encoding: .utf8).split(separator: " ").prefix(2)
            .joined(separator: " ")
        knownHosts = "\(dir)/known_hosts"
        try ([port] + archPorts.values + awkwardPorts.values).map { "[127.0.0.1]:\($0) \(hostPub)\n" }.joined()
            .write(toFile: knownHosts, atomically: true, encoding: .utf8)
        clientKey = "\(dir)/client"
        var aliases = ""
        for i in 1...count {
            aliases += "Host h\(i)\n  HostName 127.0.0.1\n  Port \(port)\n  User \(Self.user)\n"
        }
        // arm1, arm2, ...: hosts whose uname -m says aarch64; riscv1: one that says riscv64.
        for i in 1...4 where !archPorts.isEmpty {
            aliases += "Host arm\(i)\n  HostName 127.0.0.1\n  Port \(archPorts["aarch64"]!)\n  User \(Self.user)\n"
        }
        if let riscv = archPorts["riscv64"] {
            aliases += "Host riscv1\n  HostName 127.0.0.1\n  Port \(riscv)\n  User \(Self.user)\n"
        }
        // pi7: a 32-bit ARMv7 board (Raspberry Pi 2/3 on a 32-bit OS); pi6: an ARMv6 one (Pi 1, Zero).
        for (alias, machine) in [("pi7", "armv7l"), ("pi6", "armv6l")] {
            if let p = archPorts[machine] {
                aliases += "Host \(alias)\n  HostName 127.0.0.1\n  Port \(p)\n  User \(Self.user)\n"
            }
        }
        for (name, p) in awkwardPorts {
            aliases += "Host \(name)1\n  HostName 127.0.0.1\n  Port \(p)\n  User \(Self.user)\n"
        }
        for (shellName, _) in Self.loginShells {
            aliases += "Host \(shellName)-user\n  HostName 127.0.0.1\n  Port \(port)\n  User mr-ssh-\(shellName)\n"
        }
        for (alias, user) in [("nopw", BecomeUsers.nopasswd), ("pw", BecomeUsers.password), ("none", BecomeUsers.none)]
        {
            aliases += "Host become-\(alias)\n  HostName 127.0.0.1\n  Port \(port)\n  User \(user)\n"
        }
        // A host ssh must connect to from a given local address: not one mr-connect may open for it.
        aliases += "Host bound1\n  HostName 127.0.0.1\n  Port \(port)\n  User \(Self.user)\n  BindAddress 127.0.0.1\n"
        // A host that refuses connections, for failure tests.
        aliases += "Host closed\n  HostName 127.0.0.1\n  Port \(Self.freePort())\n  User \(Self.user)\n"
        aliases +=
            "Host *\n  IdentityFile \(clientKey)\n  IdentitiesOnly yes\n  UserKnownHostsFile \(knownHosts)\n  KexAlgorithms curve25519-sha256\n"
        clientConfig = "\(dir)/ssh_config"
        try aliases.write(toFile: clientConfig, atomically: true, encoding: .utf8)

        // sshd daemonizes (PidFile) rather than running under Foundation's Process: it closes inherited
        // descriptors, which Foundation takes for an exit and then blocks in waitpid.
        let sshd = "/usr/sbin/sshd -f \(dir)/sshd_config -E \(dir)/sshd.log"
        let started = shell(
            noexecTmp
                ? "unshare -m --propagation private sh -c "
                    + shellQuoted("mount --bind /tmp /tmp && mount -o remount,bind,noexec /tmp && exec \(sshd)")
                : sshd
        )
        guard started.status == 0 else { throw SSHServerError("sshd failed: \(started.output)") }
        // Wait until it accepts connections.
        for _ in 0..<200 {
            if shell("ssh -F \(clientConfig) -o BatchMode=yes h1 true").status == 0 { return }
            usleep(25_000)
        }
        throw SSHServerError("sshd did not come up: \(shell("cat \(dir)/sshd.log").output)")
    }

    deinit {
        shell("kill $(cat \(dir)/sshd.pid) 2>/dev/null")
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// sh that stops the sshd of, and removes, each fixture directory whose owner pid (`$o`) meets `condition`.
    static func stopFixtures(where condition: String) -> String {
        #"for d in /tmp/mr-sshd-*; do [ -d "$d" ] || continue; o=$(cat "$d/owner" 2>/dev/null); "#
            + #"if \#(condition); then [ -f "$d/sshd.pid" ] && kill $(cat "$d/sshd.pid") 2>/dev/null; rm -rf "$d"; fi; done"#
    }

    /// A TCP port nothing listens on right now.
    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}

/// Login users for become tests, each with its own sudo rule in /etc/sudoers.d (validated by visudo before it
/// is installed; kept between runs like the fixture's other users).
enum BecomeUsers {
    /// `NOPASSWD: ALL`, keeping APT_CONFIG and MICRO_RUNNER_SSHD_CONFIG (see `SSHServer.init(become:)`).
    static let nopasswd = "mr-become-nopw"
    /// `ALL` with a password, `requiretty`, and sudo's own log at `passwordLog` (one line per failed attempt).
    static let password = "mr-become-pw"
    /// No sudo rule at all.
    static let none = "mr-become-none"
    static let all = [nopasswd, password, none]
    static let secret = "correct horse battery"
    static let passwordLog = "/var/log/mr-become-pw-sudo.log"

    static func create() throws {
        for user in all {
            ensureTestUser(user)
        }
        let set = shell("echo \(shellQuoted("\(password):\(secret)")) | chpasswd")
        guard set.status == 0 else { throw SSHServerError("chpasswd: \(set.output)") }
        let rules = [
            nopasswd: """
            Defaults:\(nopasswd) env_keep += "APT_CONFIG MICRO_RUNNER_SSHD_CONFIG"
            \(nopasswd) ALL=(ALL:ALL) NOPASSWD: ALL

            """,
            password: """
            Defaults:\(password) requiretty
            Defaults:\(password) logfile=\(passwordLog)
            \(password) ALL=(ALL:ALL) ALL

            """,
        ]
        for (user, rule) in rules {
            let staged = "/etc/sudoers.d/.\(user).new"
            try rule.write(toFile: staged, atomically: true, encoding: .utf8)
            let check = shell("chmod 440 \(staged) && visudo -cqf \(staged) && mv \(staged) /etc/sudoers.d/\(user)")
            guard check.status == 0 else {
                unlink(staged)
                throw SSHServerError("sudoers rule for \(user): \(check.output)")
            }
        }
    }
}

struct SSHServerError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// Both runners scripts/build-runner made (amd64, and arm64 which runs here under qemu through binfmt_misc).
func builtRunners() throws -> RunnerSet {
    try RunnerSet(
        directory: URL(fileURLWithPath: runnerPath).deletingLastPathComponent().deletingLastPathComponent().path
    )
}

/// The static runner built by scripts/build-runner.
let runnerPath = BuiltRunner.path
