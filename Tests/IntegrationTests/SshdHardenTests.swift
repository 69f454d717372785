import Foundation
import MicroRunnerProtocol
import MicroRunnerTestSupport
import Testing

/// A real sshd on 127.0.0.1 with its own configuration tree; the runner edits that tree
/// (MICRO_RUNNER_SSHD_CONFIG) and reloads it by SIGHUP (this machine's PID 1 is not systemd). `isolated`: sshd,
/// its clients and the runner live in a network namespace of their own, where a test may set firewall rules.
final class HardenTarget {
    let dir: String
    let port: Int
    let config: String
    let user = "mr-ssh-harden"
    /// The network namespace, when isolated.
    let namespace: String?

    init(withInclude: Bool, isolated: Bool = false) throws {
        let id = UUID().uuidString.prefix(8).lowercased()
        dir = "/tmp/mr-harden-\(id)"
        namespace = isolated ? "mr-harden-\(id)" : nil
        if let namespace {
            let made = shell("ip netns add \(namespace) && ip netns exec \(namespace) ip link set lo up 2>&1")
            guard made.status == 0 else { throw TestFailure("network namespace: \(made.output)") }
        }
        try FileManager.default.createDirectory(atPath: dir + "/sshd_config.d", withIntermediateDirectories: true)
        chmod(dir, 0o711)
        ensureTestUser(user)
        shell("mkdir -p /run/sshd")
        shell("ssh-keygen -q -t ed25519 -N '' -f \(dir)/hostkey && ssh-keygen -q -t ed25519 -N '' -f \(dir)/client")
        shell("cp \(dir)/client.pub \(dir)/authorized_keys && chmod 644 \(dir)/authorized_keys")
        port = Int(
            Self.run(
                in: namespace,
                "python3 -c 'import socket; s=socket.socket(); s.bind((\"127.0.0.1\",0)); print(s.getsockname()[1])'"
            )
            .output.trimmingCharacters(in: .whitespacesAndNewlines)
        )!
        config = dir + "/sshd_config"
        var text = withInclude ? "Include \(dir)/sshd_config.d/*.conf\n\n" : ""
        text += """
            ListenAddress 127.0.0.1
            Port \(port)
            HostKey \(dir)/hostkey
            PidFile \(dir)/sshd.pid
            AuthorizedKeysFile \(dir)/authorized_keys
            UsePAM no
            StrictModes no
            PasswordAuthentication yes
            PermitRootLogin yes

            Match User nobody
                PasswordAuthentication yes

            """
        try text.write(toFile: config, atomically: true, encoding: .utf8)
        // What cloud images ship: a later drop-in that turns passwords back on.
        try "PasswordAuthentication yes\n".write(
            toFile: dir + "/sshd_config.d/50-cloud-init.conf",
            atomically: true,
            encoding: .utf8
        )
        let started = run("/usr/sbin/sshd -f \(config) -E \(dir)/sshd.log")
        guard started.status == 0 else { throw TestFailure("sshd: \(started.output)") }
        _ = canLogIn(within: 2)
    }

    deinit {
        shell("kill $(cat \(dir)/sshd.pid) 2>/dev/null")
        if let namespace { shell("ip netns delete \(namespace)") }
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// `command` by sh, inside the namespace when isolated.
    @discardableResult
    func run(_ command: String) -> (status: Int32, output: String) { Self.run(in: namespace, command) }

    @discardableResult
    static func run(in namespace: String?, _ command: String) -> (status: Int32, output: String) {
        guard let namespace else { return shell(command) }
        return shell("ip netns exec \(namespace) sh -c \(shellQuoted(command))")
    }

    /// A runner where sshd is (inside the namespace when isolated), told where sshd's configuration is.
    func runner() throws -> RunnerProcess {
        guard let namespace else { return try RunnerProcess(environment: environment) }
        return try RunnerProcess(
            arguments: ["netns", "exec", namespace, try BuiltRunner.copy()],
            binary: "/usr/sbin/ip",
            environment: environment
        )
    }

    /// Whether a key login succeeds within `seconds` (sshd re-executes itself on SIGHUP: a login right after a
    /// reload can meet no listener yet).
    func canLogIn(within seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while !canLogIn() {
            if Date() > deadline { return false }
            usleep(20_000)
        }
        return true
    }

    func canLogIn() -> Bool {
        run(
            "ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes -i \(dir)/client -p \(port) \(user)@127.0.0.1 true"
        ).status == 0
    }

    func effective(_ key: String) -> String {
        shell("/usr/sbin/sshd -T -f \(config) | grep -i '^\(key) '").output.trimmingCharacters(
            in: .whitespacesAndNewlines
        )
    }

    var environment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["MICRO_RUNNER_SSHD_CONFIG"] = config
        return env
    }
}

@Suite(
    .serialized,
    .enabled(if: geteuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/sbin/sshd"), "root, sshd")
)
struct SshdHardenTests {
    func harden(_ r: RunnerProcess, _ id: String, _ t: HardenTarget, dryRun: Bool = false) throws -> Received {
        r.sendCommand(
            id,
            "sshd.harden",
            timeout: 60,
            params: [
                "disable_password_auth": true, "disable_root_login": true, "allow_users": [t.user],
                "test_connection": true,
            ],
            extra: dryRun ? ["dry_run": true] : [:]
        )
        return try r.answer(timeout: 90)
    }

    @Test func dropInWinsOverCloudInitAndSshdStillServes() throws {
        let t = try HardenTarget(withInclude: true)
        #expect(t.canLogIn())
        #expect(t.effective("passwordauthentication") == "passwordauthentication yes")
        let r = try t.runner()
        #expect(try r.next(.ready)["capabilities"]?["sshd.harden"] == .bool(true))

        let dry = try harden(r, "dry", t, dryRun: true)
        #expect(dry.result["changed"] == .bool(true), "\(dry.data)")
        #expect(!FileManager.default.fileExists(atPath: t.dir + "/sshd_config.d/00-micro-runner.conf"))

        let done = try harden(r, "h", t)
        #expect(done.type == .done, "\(done.data)")
        #expect(done.result["service_action"] == .string("reloaded"))
        guard case .array(let keys)? = done.result["modified_keys"] else {
            Issue.record("no modified_keys")
            return
        }
        #expect(
            Set(keys.compactMap(\.stringValue)) == [
                "passwordauthentication", "kbdinteractiveauthentication", "permitrootlogin", "allowusers",
            ]
        )
        #expect(FileManager.default.fileExists(atPath: t.dir + "/sshd_config.d/00-micro-runner.conf"))
        #expect(t.effective("passwordauthentication") == "passwordauthentication no")
        #expect(t.effective("permitrootlogin") == "permitrootlogin no")
        #expect(t.canLogIn(), "sshd must still accept key logins after the reload")

        let again = try harden(r, "h2", t)
        #expect(again.result["changed"] == .bool(false))
        #expect(again.result["service_action"] == .string("none"))
        #expect(again.result["modified_keys"] == .array([]))
    }

    /// A failure after the install (here: a drop-in that sorts before ours, so sshd -T disagrees once the files
    /// are live) rolls back for real: the previous files are back, sshd is reloaded with them and still serves,
    /// and the message says what was restored.
    @Test func aFailureAfterInstallRestoresTheFilesAndSshdServes() throws {
        let t = try HardenTarget(withInclude: true)
        let early = t.dir + "/sshd_config.d/0-first.conf"
        try "PasswordAuthentication yes\n".write(toFile: early, atomically: true, encoding: .utf8)
        let before = try FileManager.default.contentsOfDirectory(atPath: t.dir + "/sshd_config.d").sorted()
        let r = try t.runner()
        _ = try r.next(.ready)
        let failed = try harden(r, "h", t)
        #expect(failed.type == .error, "\(failed.data)")
        #expect(failed.message.contains("after install"), "\(failed.message)")
        #expect(failed.message.contains("previous configuration was restored"), "\(failed.message)")
        #expect(failed.message.contains("sshd was reloaded"), "\(failed.message)")
        let after = try FileManager.default.contentsOfDirectory(atPath: t.dir + "/sshd_config.d").sorted()
        #expect(after == before, "no drop-in, no temporary file left: \(after)")
        #expect(t.effective("passwordauthentication") == "passwordauthentication yes")
        #expect(t.canLogIn(), "sshd serves with the restored configuration")
    }

    /// The banner check after the reload fails for real: the new port is one the host's firewall drops (nftables
    /// in the test's network namespace), the lock-out the check exists for. The previous files are back, sshd is
    /// reloaded with them and serves on its old port, and the message names where it looked.
    /// (No Include here: `Port` adds up across files, so a drop-in cannot move sshd off the main file's port;
    /// the runner edits the main file.)
    @Test func aNewPortTheFirewallDropsIsRolledBackAndSshdServes() throws {
        let t = try HardenTarget(withInclude: false, isolated: true)
        #expect(t.canLogIn())
        let newPort = t.port == 2222 ? 2223 : 2222
        let rules = t.run(
            "nft add table inet mrtest && nft add chain inet mrtest input '{ type filter hook input priority 0; }' && nft add rule inet mrtest input tcp dport \(newPort) drop 2>&1"
        )
        try #require(rules.status == 0, "nftables: \(rules.output)")
        let before = try FileManager.default.contentsOfDirectory(atPath: t.dir).sorted()
        let mainBefore = try String(contentsOfFile: t.config, encoding: .utf8)
        let r = try t.runner()
        _ = try r.next(.ready)
        r.sendCommand(
            "h",
            "sshd.harden",
            timeout: 60,
            params: ["disable_password_auth": true, "port": newPort, "test_connection": true]
        )
        let failed = try r.answer(timeout: 90)
        #expect(failed.type == .error, "\(failed.data)")
        #expect(failed.message.contains("no SSH banner on 127.0.0.1:\(newPort)"), "\(failed.message)")
        #expect(failed.message.contains("no connection within 2 s"), "\(failed.message)")
        #expect(failed.message.contains("previous configuration was restored"), "\(failed.message)")
        #expect(failed.message.contains("sshd was reloaded with it"), "\(failed.message)")
        #expect(try String(contentsOfFile: t.config, encoding: .utf8) == mainBefore)
        #expect(t.effective("port") == "port \(t.port)")
        #expect(t.canLogIn(within: 5), "sshd serves on its old port with the restored configuration")
        // Listed once sshd serves again: it removes its PidFile when it re-executes on SIGHUP.
        let after = try FileManager.default.contentsOfDirectory(atPath: t.dir).sorted()
        #expect(after == before, "no backup or temporary file left: \(after)")
        let listening = t.run("ss -Hltn 'sport = :\(newPort)'")
        #expect(listening.output.isEmpty, "nothing listens on the dropped port any more: \(listening.output)")
    }

    @Test func mainFileKeepsMatchBlocks() throws {
        let t = try HardenTarget(withInclude: false)
        let r = try t.runner()
        _ = try r.next(.ready)
        let done = try harden(r, "h", t)
        #expect(done.type == .done, "\(done.data)")
        #expect(done.result["service_action"] == .string("reloaded"))
        let backup = try #require(done.result["backup_path"]?.stringValue)
        #expect(
            FileManager.default.contents(atPath: backup).map { String(decoding: $0, as: UTF8.self) }?.contains(
                "PasswordAuthentication yes"
            ) == true
        )
        let text = try String(contentsOfFile: t.config, encoding: .utf8)
        let ours = try #require(text.range(of: "PasswordAuthentication no"))
        let match = try #require(text.range(of: "Match User nobody"))
        #expect(ours.lowerBound < match.lowerBound, "settings must come before the first Match block")
        #expect(text.contains("Match User nobody\n    PasswordAuthentication yes"), "the Match block is kept as it was")
        #expect(t.effective("passwordauthentication") == "passwordauthentication no")
        #expect(t.canLogIn())
    }

    @Test func candidateThatSshdRejectsIsNeverInstalled() throws {
        let t = try HardenTarget(withInclude: true)
        // A broken drop-in already on the host: every candidate fails sshd -t, so nothing may change.
        try "ThisIsNotAnSshdKeyword yes\n".write(
            toFile: t.dir + "/sshd_config.d/60-broken.conf",
            atomically: true,
            encoding: .utf8
        )
        let before = try String(contentsOfFile: t.config, encoding: .utf8)
        let r = try t.runner()
        _ = try r.next(.ready)
        let a = try harden(r, "h", t)
        #expect(a.type == .error, "\(a.data)")
        #expect(!FileManager.default.fileExists(atPath: t.dir + "/sshd_config.d/00-micro-runner.conf"))
        #expect(try String(contentsOfFile: t.config, encoding: .utf8) == before)
        #expect(t.canLogIn())
    }
}
