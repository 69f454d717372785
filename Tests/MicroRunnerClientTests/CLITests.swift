import Foundation
import MicroRunnerClient
import MicroRunnerProtocol
import MicroRunnerTestSupport
import Testing

/// `mrctl` as built (scripts/test builds it before the tests).
let mrctlPath: String = {
    let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    return repo.appendingPathComponent(".build/debug/mrctl").path
}()

struct CLIRun {
    var status: Int32
    var stdout: String
    var stderr: String

    /// Lines of `--json` output, parsed.
    var objects: [JSONValue] {
        stdout.split(separator: "\n").compactMap { try? JSONReader().parse(Array($0.utf8)) }
    }
}

func mrctl(_ arguments: [String], environment: [String: String] = [:]) throws -> CLIRun {
    guard FileManager.default.isExecutableFile(atPath: mrctlPath) else {
        throw SSHServerError("mrctl missing at \(mrctlPath): run swift build --product mrctl (scripts/test does)")
    }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: mrctlPath)
    p.arguments = arguments
    if !environment.isEmpty {
        p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    }
    let out = Pipe()
    let err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return CLIRun(
        status: p.terminationStatus,
        stdout: String(decoding: o, as: UTF8.self),
        stderr: String(decoding: e, as: UTF8.self)
    )
}

@Suite(.serialized, .enabled(if: geteuid() == 0, "uses the sshd fixture"))
struct CLITests {
    @Test func mrctlUploadsTheArm64RunnerToAnArm64Host() throws {
        let s = try server()
        let directory = URL(fileURLWithPath: runnerPath).deletingLastPathComponent().deletingLastPathComponent().path
        let run = try mrctl(
            ["ping", "--json", "--ssh-config", s.clientConfig, "--host", "arm2", "--host", "h11", "--host", "pi7"],
            environment: ["MICRO_RUNNER_DIR": directory]
        )
        #expect(run.status == 0, "\(run.stderr)")
        let byHost = Dictionary(uniqueKeysWithValues: run.objects.map { ($0["host"]?.stringValue ?? "", $0) })
        #expect(byHost["arm2"]?["result"]?["arch"] == .string("arm64"), "\(run.stdout)")
        #expect(byHost["h11"]?["result"]?["arch"] == .string("amd64"), "\(run.stdout)")
        // uname -m armv7l: the 32-bit ARM runner, run here by qemu-arm (scripts/enable-qemu).
        #expect(byHost["pi7"]?["result"]?["arch"] == .string("arm"), "\(run.stdout)")
    }

    /// ARMv6 (Raspberry Pi 1 and Zero) cannot run the ARMv7 runner: refused by name before anything runs there.
    @Test func anArmv6HostIsRefusedByName() throws {
        let s = try server()
        let directory = URL(fileURLWithPath: runnerPath).deletingLastPathComponent().deletingLastPathComponent().path
        let run = try mrctl(
            ["ping", "--ssh-config", s.clientConfig, "--host", "pi6"],
            environment: ["MICRO_RUNNER_DIR": directory]
        )
        #expect(run.status != 0)
        #expect(run.stdout.contains("no runner for architecture armv6l"), "\(run.stdout)")
        #expect(run.stdout.contains("ARMv7"), "\(run.stdout)")
    }

    @Test func aLowOpenFileLimitLowersForksAndEveryHostStillRuns() throws {
        let s = try server()
        let hosts = (1...30).flatMap { ["--host", "h\($0)"] }
        let command =
            ([mrctlPath, "exec", "--runner", runnerPath, "--ssh-config", s.clientConfig, "--forks", "30"] + hosts + [
                "--", "true",
            ])
            .map { "'\($0)'" }.joined(separator: " ")
        // 200 descriptors, soft and hard: mrctl cannot raise it, so it must run fewer hosts at once.
        let run = shell("ulimit -Sn 200 && ulimit -Hn 200 && \(command) 2>&1")
        #expect(run.status == 0, "\(run.output)")
        #expect(run.output.contains("allows 17 hosts at once"), "\(run.output)")
        #expect(run.output.contains("30 hosts: 30 ok"), "\(run.output)")
    }

    /// A corrupt runner cache entry (not gzip at all) must not end mrctl: checking it, gzip stops reading at
    /// once while mrctl still writes the rest into its input. Before any ssh is started, so SIGPIPE had not been
    /// ignored yet and killed mrctl (signal 13). mrctl runs with SIGPIPE at its default, as from a shell.
    @Test func aCorruptRunnerCacheEntryIsReplacedNotFatal() throws {
        let s = try server()
        let entry = try cacheEntry(of: try RunnerBinary(path: runnerPath))
        try Data(repeating: 0x5A, count: 4 << 20).write(to: entry)
        let arguments = [
            mrctlPath, "exec", "--persist", "0", "--runner", runnerPath, "--ssh-config", s.clientConfig, "--host",
            "h14", "--", "true",
        ]
        let exec =
            "import os, signal, sys; signal.signal(signal.SIGPIPE, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"
        let run = shell(
            "python3 -c \(shellQuoted(exec)) \(arguments.map(shellQuoted).joined(separator: " ")) 2>&1; echo \"status $?\""
        )
        #expect(run.output.hasSuffix("status 0\n"), "\(run.output)")
        let replaced = FileManager.default.contents(atPath: entry.path).map { $0.starts(with: [0x1F, 0x8B]) } ?? false
        #expect(replaced, "the entry now holds the checked gzip stream")
    }

    /// A real sshd whose MaxStartups turns most of a burst away (the issue: 26 of 100 hosts failed behind one
    /// sshd with its default of 10): mrctl retries the hosts it turned away and every host runs.
    @Test func aBusySshdIsRetriedAndEveryHostRuns() throws {
        let busy = try SSHServer(aliases: 10, maxStartups: 3)
        let hosts = (1...10).flatMap { ["--host", "h\($0)"] }
        let run = try mrctl(
            ["exec", "--persist", "0", "--runner", runnerPath, "--ssh-config", busy.clientConfig, "--forks", "10"]
                + hosts + ["--", "true"]
        )
        #expect(run.status == 0, "\(run.stdout)\(run.stderr)")
        #expect(run.stdout.contains("10 hosts: 10 ok"), "\(run.stdout)")
        let log = (try? String(contentsOfFile: busy.dir + "/sshd.log", encoding: .utf8)) ?? ""
        #expect(log.contains("past MaxStartups"), "sshd really turned connections away: \(log.suffix(2000))")
    }

    /// When sshd keeps turning the connection away, the error says so and what to do.
    @Test func aSshdThatKeepsTurningConnectionsAwaySaysToLowerForks() throws {
        let busy = try SSHServer(aliases: 1, maxStartups: 1)
        // One connection that never authenticates fills MaxStartups 1 for LoginGraceTime (120 s).
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(busy.port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        try #require(connected == 0)
        let run = try mrctl([
            "exec", "--persist", "0", "--runner", runnerPath, "--ssh-config", busy.clientConfig,
            "--host", "h1", "--", "true",
        ])
        #expect(run.status == 4, "unreachable: \(run.stdout)\(run.stderr)")
        #expect(run.stdout.contains("turned the connection away 7 times"), "\(run.stdout)")
        #expect(run.stdout.contains("lower --forks"), "\(run.stdout)")
    }

    /// A descriptor inherited above a lowered open-file limit (CI's test process leaked one into mrctl): the
    /// runner's gzip check used Foundation's Process, which then failed every host with EBADF.
    @Test func anInheritedDescriptorAboveTheLimitIsHarmless() throws {
        let s = try server()
        let command = [
            mrctlPath, "exec", "--persist", "0", "--runner", runnerPath, "--ssh-config", s.clientConfig, "--host",
            "h16", "--", "true",
        ].map(shellQuoted).joined(separator: " ")
        // bash: dash's redirections take one-digit descriptors only.
        let run = shell(
            "bash -c " + shellQuoted("exec 250</dev/null && ulimit -Sn 200 && ulimit -Hn 200 && \(command) 2>&1")
        )
        #expect(run.status == 0, "\(run.output)")
        #expect(!run.output.contains("Bad file descriptor"), "\(run.output)")
    }

    @Test func theSummaryNamesTheFailedHosts() throws {
        let s = try server()
        let run = try mrctl([
            "exec", "--no-color", "--runner", runnerPath, "--ssh-config", s.clientConfig, "--host", "h13", "--host",
            "closed",
            "--", "true",
        ])
        #expect(run.status == 4, "an unreachable host: 4, as Ansible")
        #expect(run.stdout.contains("failed: closed"), "\(run.stdout)")
        // A command that fails is 2 and both kinds together 4, as ansible-core 2.19.14 answered for the same
        // situations (measured once, see the README): unreachable wins.
        let failed = try mrctl([
            "exec", "--runner", runnerPath, "--ssh-config", s.clientConfig, "--host", "h13", "--", "false",
        ])
        #expect(failed.status == 2)
        let both = try mrctl([
            "exec", "--runner", runnerPath, "--ssh-config", s.clientConfig, "--host", "h13", "--host", "closed",
            "--", "false",
        ])
        #expect(both.status == 4)
    }

    @Test func anAnsibleInventoryRunsEndToEnd() throws {
        let s = try server()
        let inventory = NSTemporaryDirectory() + "mr-inventory-\(getpid()).ini"
        defer { try? FileManager.default.removeItem(atPath: inventory) }
        try """
        [loop]
        box[1:2] ansible_host=127.0.0.1 ansible_port=\(s.port) ansible_user=\(SSHServer.user)

        [controller]
        ctl ansible_connection=local
        ctl-root ansible_connection=local ansible_become=yes

        [needs_root]
        box-sudo ansible_host=127.0.0.1 ansible_port=\(s.port) ansible_user=\(SSHServer.user) ansible_become=true

        [all:vars]
        ansible_ssh_private_key_file=\(s.clientKey)
        """.write(toFile: inventory, atomically: true, encoding: .utf8)
        let run = try mrctl([
            "exec", "--json", "--runner", runnerPath, "--ssh-config", s.clientConfig, "-i", inventory, "--limit",
            "all:!ctl-root:!needs_root", "--", "id", "-un",
        ])
        #expect(run.status == 0, "\(run.stderr)")
        let byHost = Dictionary(uniqueKeysWithValues: run.objects.map { ($0["host"]?.stringValue ?? "", $0) })
        #expect(byHost.keys.sorted() == ["box1", "box2", "ctl"])
        #expect(byHost["box1"]?["result"]?["stdout"] == .string("\(SSHServer.user)\n"))
        #expect(byHost["ctl"]?["result"]?["stdout"] == .string("root\n"))
        // ansible_become: the whole runner starts through sudo. The test user may not use sudo, so sudo's
        // refusal, before anything ran, is what shows that it was asked (BecomeTests covers users who may).
        let become = try mrctl([
            "exec", "--json", "--runner", runnerPath, "--ssh-config", s.clientConfig, "-i", inventory, "-l", "box-sudo",
            "--", "id", "-un",
        ])
        let error = become.objects.first?["error"]
        #expect(become.status == 4, "\(become.stdout)")
        #expect(error?["code"] == .string("CLIENT_BECOME_FAILED"), "\(become.stdout)")
        #expect(error?["message"]?.stringValue?.contains("sudo") == true, "\(become.stdout)")
    }

    @Test func aSecondCallReusesThePersistentConnection() throws {
        let s = try server()
        let dir = try SSHOptions.persistentDirectory()
        var o = SSHOptions()
        o.configFile = s.clientConfig
        let socket = SSHTransport(host: HostSpec(host: "h14"), options: o).controlPath(dir)
        // A stale socket from a master that is gone: ssh must replace it, not fail.
        unlink(socket)
        let fd = Foundation.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in socket.utf8.enumerated() { raw[i] = b }
        }
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        close(fd)
        #expect(FileManager.default.fileExists(atPath: socket))
        let first = try mrctl([
            "exec", "--runner", runnerPath, "--ssh-config", s.clientConfig, "--host", "h14", "--", "true",
        ])
        #expect(first.status == 0, "\(first.stdout) \(first.stderr)")
        // The master outlives the call, and the next call goes through it.
        #expect(shell("ssh -o ControlPath=\(socket) -O check h14 2>&1").status == 0)
        let second = try mrctl([
            "exec", "--runner", runnerPath, "--ssh-config", s.clientConfig, "--host", "h14", "--", "true",
        ])
        #expect(second.status == 0)
        shell("ssh -o ControlPath=\(socket) -O exit h14 2>&1")
        // --persist 0: nothing is kept (h49: no other test reaches it, so no master of theirs can be there).
        let kept = SSHTransport(host: HostSpec(host: "h49"), options: o).controlPath(dir)
        shell("ssh -o ControlPath=\(kept) -O exit h49 2>&1; rm -f \(kept)")
        let none = try mrctl([
            "exec", "--persist", "0", "--runner", runnerPath, "--ssh-config", s.clientConfig, "--host", "h49", "--",
            "true",
        ])
        #expect(none.status == 0)
        #expect(!FileManager.default.fileExists(atPath: kept))
    }

    @Test func jsonPerHostAndFailureExitStatus() throws {
        let s = try server()
        let run = try mrctl([
            "exec", "--json", "--runner", runnerPath, "--ssh-config", s.clientConfig, "--host", "h7", "--host",
            "closed",
            "--", "echo", "hi",
        ])
        #expect(run.status == 4, "one host was unreachable, so the status is non-zero (4)")
        let byHost = Dictionary(uniqueKeysWithValues: run.objects.map { ($0["host"]?.stringValue ?? "", $0) })
        #expect(byHost["h7"]?["ok"] == .bool(true))
        #expect(byHost["h7"]?["result"]?["stdout"] == .string("hi\n"))
        #expect(byHost["closed"]?["ok"] == .bool(false))
        #expect(byHost["closed"]?["error"]?["code"] == .string("CLIENT_UNREACHABLE"), "a refused port is unreachable")
    }

    @Test func putIsIdempotentAndDryRunShowsADiff() throws {
        let s = try server()
        let local = FileManager.default.temporaryDirectory.appendingPathComponent("mr-cli-\(UUID().uuidString)").path
        try "line one\nline two\n".write(toFile: local, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: local) }
        let remote = "/tmp/mr-cli-put-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: remote) }
        let base = ["--json", "--runner", runnerPath, "--ssh-config", s.clientConfig, "--host", "h8"]
        let first = try mrctl(["put"] + base + ["--mode", "0640", local, remote])
        #expect(first.status == 0, "\(first.stdout) \(first.stderr)")
        #expect(first.objects.first?["changed"] == .bool(true))
        #expect(FileManager.default.contents(atPath: remote) == Data("line one\nline two\n".utf8))
        let second = try mrctl(["put"] + base + ["--mode", "0640", local, remote])
        #expect(second.objects.first?["changed"] == .bool(false))
        try "line one\nline 2\n".write(toFile: local, atomically: true, encoding: .utf8)
        let dry = try mrctl(["put"] + base + ["--dry-run", local, remote])
        #expect(dry.objects.first?["changed"] == .bool(true))
        #expect(dry.objects.first?["result"]?["diff"]?.stringValue?.contains("+line 2") == true)
        #expect(FileManager.default.contents(atPath: remote) == Data("line one\nline two\n".utf8))
    }

    @Test func inventoryWithUserHostPortLines() throws {
        let s = try server()
        let inventory = "\(s.dir)/inventory"
        try """
        # web servers
        \(SSHServer.user)@127.0.0.1:\(s.port)

        h9   # an alias
        """.write(toFile: inventory, atomically: true, encoding: .utf8)
        let run = try mrctl([
            "exec", "--json", "--runner", runnerPath, "--ssh-config", s.clientConfig, "--inventory", inventory,
            "--known-hosts", s.knownHosts, "--identity", s.clientKey, "--argv", "--", "id", "-un",
        ])
        #expect(run.status == 0, "\(run.stdout) \(run.stderr)")
        #expect(run.objects.count == 2)
        #expect(run.objects.allSatisfy { $0["result"]?["stdout"] == .string("\(SSHServer.user)\n") })
    }

    @Test func localMachineByDefaultAndHumanSummary() throws {
        let run = try mrctl(["exec", "--runner", runnerPath, "--no-color", "--", "echo", "local run"])
        #expect(run.status == 0)
        #expect(run.stdout.contains("local  OK  rc=0"))
        #expect(run.stdout.contains("local run"))
        #expect(run.stdout.contains("1 host: 1 ok, 0 changed, 0 failed"))
    }

    @Test func scriptStopsAtTheFirstFailure() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("mr-script-\(UUID().uuidString)").path
        try "echo one\nfalse\necho never\n".write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        for pipeline in [false, true] {
            let run = try mrctl(
                ["script", "--lines", "--json", "--runner", runnerPath] + (pipeline ? [] : ["--no-pipeline"]) + [file]
            )
            #expect(run.status == 2)
            let results = run.objects.first?["result"]
            guard case .array(let items)? = results else {
                Issue.record("no results: \(run.stdout)")
                continue
            }
            #expect(items.first?["stdout"] == .string("one\n"))
            #expect(items.count == (pipeline ? 3 : 2))
            if pipeline { #expect(items.last?["code"] == .string("CANCELLED")) }
        }
    }

    /// `script` runs the file as one script, as Ansible's script module does: cd, variables, if/fi and heredocs
    /// carry from line to line; its #! line picks the interpreter; arguments after --; a failure's stderr shows.
    @Test func scriptRunsTheFileAsOneScript() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mr-whole-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try """
        cd \(dir)
        greeting=hello
        if [ -d . ]; then echo "$greeting from $(pwd) with $1 and $2"; fi
        cat <<EOF
        heredoc says $greeting
        EOF
        echo "the reason it failed" >&2
        exit 3
        """.write(toFile: dir + "/deploy.sh", atomically: true, encoding: .utf8)
        let run = try mrctl([
            "script", "--runner", runnerPath, "--no-color", dir + "/deploy.sh", "--", "one", "two words",
        ])
        #expect(run.status == 2, "\(run.stdout) \(run.stderr)")
        #expect(run.stdout.contains("hello from \(dir) with one and two words"), "\(run.stdout)")
        #expect(run.stdout.contains("heredoc says hello"), "\(run.stdout)")
        #expect(run.stdout.contains("the reason it failed") && run.stdout.contains("rc=3"), "\(run.stdout)")
        try "#!/usr/bin/env python3\nimport sys\nprint('python got', sys.argv[1:])\n".write(
            toFile: dir + "/tool.py",
            atomically: true,
            encoding: .utf8
        )
        let python = try mrctl(["script", "--runner", runnerPath, dir + "/tool.py", "--", "x"])
        #expect(python.status == 0 && python.stdout.contains("python got ['x']"), "\(python.stdout) \(python.stderr)")
        #expect(shell("ls /tmp/mrctl-script.* 2>/dev/null").output.isEmpty, "the host's copy is removed")
    }

    /// A dry run never runs an exec or a script line anywhere: `--dry-run`, `-C` and `--check` all skip them, as
    /// Ansible's check mode skips shell and command tasks.
    @Test func aDryRunRunsNoCommand() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mr-dry-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let marker = dir + "/ran"
        try "touch \(marker)\n".write(toFile: dir + "/s.sh", atomically: true, encoding: .utf8)
        for args in [
            ["exec", "--dry-run", "--", "touch", marker], ["exec", "-C", "--", "touch \(marker)"],
            ["exec", "--check", "--argv", "--", "touch", marker], ["script", "--dry-run", dir + "/s.sh"],
            ["script", "--lines", "--check", dir + "/s.sh"],
        ] {
            let run = try mrctl([args[0], "--runner", runnerPath] + args.dropFirst())
            #expect(run.status == 0, "\(args): \(run.stdout) \(run.stderr)")
            #expect(run.stdout.contains("skipped (dry run)"), "\(args): \(run.stdout)")
            #expect(!FileManager.default.fileExists(atPath: marker), "\(args) ran the command")
        }
    }

    /// Ansible's flags are mrctl's options wherever they stand; anything dash-led that is no option is an error,
    /// never text for the hosts' shell, and never swallows what follows (-i once became host text, and the
    /// command ran here).
    @Test func optionsAreNeverHostText() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mr-flags-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let marker = dir + "/ran"
        let unknown = try mrctl(["exec", "--runner", runnerPath, "touch", marker, "--bogus"])
        #expect(unknown.status == 64 && unknown.stderr.contains("--bogus"), "\(unknown.stderr)")
        let dashed = try mrctl(["exec", "--runner", runnerPath, "touch", marker, "-z"])
        #expect(dashed.status == 64, "\(dashed.stdout) \(dashed.stderr)")
        #expect(!FileManager.default.fileExists(atPath: marker))
        // Options after the command are options: -f, -o and -e (an unreachable inventory host proves -i was read).
        try "nowhere ansible_host=127.0.0.1 ansible_port=1\n".write(
            toFile: dir + "/inv",
            atomically: true,
            encoding: .utf8
        )
        let late = try mrctl(["exec", "--runner", runnerPath, "touch", marker, "-f", "2", "-o", "-i", dir + "/inv"])
        #expect(late.status == 4, "the inventory's host was tried: \(late.stdout) \(late.stderr)")
        #expect(!FileManager.default.fileExists(atPath: marker), "nothing ran on this machine")
        let listed = try mrctl(["exec", "--list-hosts", "-i", dir + "/inv", "-e", "ansible_port=2"])
        #expect(listed.status == 0 && listed.stdout.contains("hosts (1):") && listed.stdout.contains("nowhere"))
        // After --, words are the command's, dashes and all.
        let words = try mrctl(["exec", "--runner", runnerPath, "--", "echo", "-n", "--bogus"])
        #expect(words.status == 0 && words.stdout.contains("--bogus"), "\(words.stdout)")
    }

    /// -u, -e and -T against the loopback sshd: -u fills in the login, -e's ansible_user wins over it.
    @Test func ansibleConnectionFlags() throws {
        let s = try server()
        let base = [
            "exec", "--runner", runnerPath, "--known-hosts", s.knownHosts, "--identity", s.clientKey, "-T", "5",
            "--host", "127.0.0.1:\(s.port)",
        ]
        let withUser = try mrctl(base + ["-u", SSHServer.user, "--json", "--", "id", "-un"])
        #expect(withUser.objects.first?["result"]?["stdout"] == .string("\(SSHServer.user)\n"), "\(withUser.stdout)")
        let extra = try mrctl(base + ["-u", "nobody", "-e", "ansible_user=mr-ssh-bash", "--json", "--", "id", "-un"])
        #expect(
            extra.objects.first?["result"]?["stdout"] == .string("mr-ssh-bash\n"),
            "\(extra.stdout) \(extra.stderr)"
        )
    }

    /// Output past the runner's capture limit is never cut silently in text mode.
    @Test func outputPastTheCaptureLimitSaysSo() throws {
        let run = try mrctl(["exec", "--runner", runnerPath, "--", "head -c 5000000 /dev/zero | tr '\\0' a"])
        #expect(run.status == 0)
        #expect(run.stdout.contains("[output cut: stdout went past"), "\(run.stdout.suffix(400))")
        #expect(run.stdout.contains("rc=0 (output cut)"))
    }

    /// The runner outlives the longest command it is sent: --timeout 900 used to die at the default 10 minutes.
    @Test func theRunnersLifetimeFollowsTheTimeout() throws {
        let ping = try mrctl(["ping", "--json", "--runner", runnerPath, "--timeout", "900"])
        #expect(ping.objects.first?["result"]?["metadata"]?["ttl"] == .string("16m0s"), "\(ping.stdout)")
        let refused = try mrctl(["exec", "--runner", runnerPath, "--ttl", "1m", "--timeout", "120", "--", "true"])
        #expect(refused.status == 64 && refused.stderr.contains("shorter than --timeout"), "\(refused.stderr)")
    }

    /// mrctl finds its runners beside itself from any working directory, by the path it was run by and by its
    /// real one (.build/release is a symlink to .build/<triple>/release).
    @Test func runnersAreFoundFromAnyWorkingDirectory() throws {
        let real = URL(fileURLWithPath: mrctlPath).resolvingSymlinksInPath().path
        for program in [mrctlPath, real] {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: program)
            p.arguments = ["ping"]
            p.currentDirectoryURL = URL(fileURLWithPath: "/")
            var env = ProcessInfo.processInfo.environment
            env["MICRO_RUNNER_DIR"] = nil
            p.environment = env
            let out = Pipe()
            p.standardOutput = out
            p.standardError = out
            try p.run()
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            #expect(p.terminationStatus == 0, "\(program): \(text)")
        }
    }

    /// The host's own refusal reaches the operator: a ForceCommand's and nologin's words, printed on stdout
    /// before any runner started, used to end as "ssh failed".
    @Test func theHostsOwnRefusalIsQuoted() throws {
        let s = try server()
        for (host, words) in [
            ("refusing1", "Please login as the user ubuntu"), ("nologin1", "This account is currently not available"),
        ] {
            let run = try mrctl([
                "exec", "--runner", runnerPath, "--ssh-config", s.clientConfig, "--host", host, "--", "true",
            ])
            #expect(run.status == 4, "\(host): \(run.stdout) \(run.stderr)")
            #expect(run.stdout.contains(words), "\(host): \(run.stdout)")
        }
    }

    /// As scp and Ansible's copy do: into a directory that exists on the host, or a destination ending in /,
    /// the file goes inside under its own name.
    @Test func putIntoADirectoryPutsTheFileInside() throws {
        let s = try server()
        let dir = "/tmp/mr-put-dir-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir + "/sub", withIntermediateDirectories: true)
        shell("chown -R \(SSHServer.user) \(dir)")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let source = NSTemporaryDirectory() + "mr-put-src-\(getpid()).txt"
        try "inside\n".write(toFile: source, atomically: true, encoding: .utf8)
        defer { unlink(source) }
        let name = URL(fileURLWithPath: source).lastPathComponent
        for destination in [dir, dir + "/sub/"] {
            let run = try mrctl([
                "put", "--runner", runnerPath, "--ssh-config", s.clientConfig, "--host", "h21", source, destination,
            ])
            #expect(run.status == 0, "\(destination): \(run.stdout) \(run.stderr)")
            let landed = destination.hasSuffix("/") ? destination + name : destination + "/" + name
            #expect((try? String(contentsOfFile: landed, encoding: .utf8)) == "inside\n", "\(landed)")
        }
    }

    /// `fetch` (Ansible's): each host's file lands under DEST/HOST/PATH, byte for byte, verified by SHA-256.
    @Test func fetchSavesEachHostsFileVerified() throws {
        let s = try server()
        let dir = "/tmp/mr-fetch-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir + "/dest", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        chmod(dir, 0o755)
        shell("head -c \(20 << 20) /dev/urandom > \(dir)/data.bin && chmod 644 \(dir)/data.bin")
        let run = try mrctl([
            "fetch", "--runner", runnerPath, "--ssh-config", s.clientConfig, "--host", "h22", "--host", "h23",
            dir + "/data.bin", dir + "/dest",
        ])
        #expect(run.status == 0, "\(run.stdout) \(run.stderr)")
        for host in ["h22", "h23"] {
            #expect(shell("cmp \(dir)/data.bin \(dir)/dest/\(host)\(dir)/data.bin").status == 0, "\(host)")
        }
        let leftovers = shell("find \(dir)/dest -name '*.mrctl-fetch.*'").output
        #expect(leftovers.isEmpty, "no staging file left: \(leftovers)")
        let missing = try mrctl([
            "fetch", "--runner", runnerPath, "--ssh-config", s.clientConfig, "--host", "h22", dir + "/none",
            dir + "/dest",
        ])
        #expect(missing.status == 2 && missing.stdout.contains("NOT_FOUND"), "\(missing.stdout)")
    }

    /// Several mrctl runs started together against one host, all asking for the kept connection (--persist):
    /// each runs, none waits for another's master. (The review saw all but one wait 60 s; not reproduced here,
    /// where this passes with and without a master left from an earlier call.)
    @Test func concurrentRunsAgainstOneHostAllRun() throws {
        let s = try server()
        let dir = try SSHOptions.persistentDirectory()
        var o = SSHOptions()
        o.configFile = s.clientConfig
        unlink(SSHTransport(host: HostSpec(host: "h24"), options: o).controlPath(dir))
        for round in 0..<2 {
            let started = Date()
            let runs = Box<[CLIRun]>([])
            let lock = NSLock()
            DispatchQueue.concurrentPerform(iterations: 6) { i in
                let run = try? mrctl([
                    "exec", "--runner", runnerPath, "--ssh-config", s.clientConfig, "--persist", "30", "--host", "h24",
                    "--", "echo run-\(i)",
                ])
                if let run { lock.withLock { runs.value.append(run) } }
            }
            let seconds = Date().timeIntervalSince(started)
            #expect(runs.value.count == 6 && runs.value.allSatisfy { $0.status == 0 }, "round \(round): \(runs.value)")
            #expect(seconds < 20, "round \(round) took \(seconds) s")
        }
    }
}
