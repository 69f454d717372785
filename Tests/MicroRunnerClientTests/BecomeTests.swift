import Foundation
import MicroRunnerClient
import MicroRunnerProtocol
import MicroRunnerTestSupport
import Testing

/// An sshd of its own for become (one test hardens it), with the users of `BecomeUsers`.
private let becomeServer = Result { try SSHServer(aliases: 1, become: true) }

/// Become, against a real sshd on loopback and real sudo, logging in as users who are not root.
@Suite(.serialized, .enabled(if: geteuid() == 0, "creates users and sudo rules, starts sshd"))
struct BecomeTests {
    /// mrctl against the become fixture: its ssh config, the built runners, no kept connections.
    func run(_ arguments: [String], environment: [String: String] = [:]) throws -> (CLIRun, Double) {
        let s = try becomeServer.get()
        let started = Date()
        let run = try mrctl(
            [arguments[0], "--ssh-config", s.clientConfig, "--runner", runnerPath, "--persist", "0"]
                + arguments.dropFirst(),
            environment: environment
        )
        return (run, Date().timeIntervalSince(started))
    }

    /// `mrctl pkg -b` for the repository's package, tried again while AptPackageTests (which may run at the
    /// same time in this process) holds dpkg's lock: the runner answers that with a retryable CONFLICT.
    func ensurePackage(_ repo: AptRepo) throws -> CLIRun {
        var attempt = 0
        while true {
            let (pkg, _) = try run(["pkg", "-b", "--host", "become-nopw", "--timeout", "300", repo.name])
            attempt += 1
            guard pkg.status != 0, pkg.stdout.contains("CONFLICT"), attempt < 10 else { return pkg }
            sleep(3)
        }
    }

    /// The runner directories a user has in /tmp (the bootstrap's `micro-runner.*`).
    func leftovers(of user: String) -> [String] {
        // find's complaints go: another test's directory that vanishes while find looks at it is not a leftover
        // (a fresh-clone run failed on "find: '/tmp/mr-kinds-10458': No such file or directory").
        let out = shell("find /tmp -maxdepth 1 -name 'micro-runner.*' -user \(user) 2>/dev/null").output
        return out.split(separator: "\n").map(String.init)
    }

    @Test func nopasswdBecomeRunsEveryCommandTypeAsRoot() throws {
        let user = BecomeUsers.nopasswd
        let tag = UUID().uuidString.prefix(8)
        let target = "/etc/mr-become-\(tag).conf"
        let secret = "/root/mr-become-\(tag).secret"
        defer {
            unlink(target)
            unlink(secret)
            unlink("/etc/sudoers.d/froyo-mr-ssh-test")
        }
        try "root only\n".write(toFile: secret, atomically: true, encoding: .utf8)
        chmod(secret, 0o600)
        let source = NSTemporaryDirectory() + "mr-become-\(tag).src"
        defer { unlink(source) }
        try "managed by mrctl\n".write(toFile: source, atomically: true, encoding: .utf8)

        // ping says who the runner is, before anything changes.
        let (ping, _) = try run(["ping", "--host", "become-nopw", "-b"])
        #expect(ping.status == 0, "\(ping.stderr)")
        #expect(ping.stdout.contains("become root"), "\(ping.stdout)")
        let (pingJSON, _) = try run(["ping", "--json", "--host", "become-nopw", "--become"])
        #expect(pingJSON.objects.first?["result"]?["metadata"]?["uid"] == .string("0"), "\(pingJSON.stdout)")
        // Without become, the same login is itself.
        let (plain, _) = try run(["ping", "--host", "become-nopw"])
        #expect(plain.stdout.contains("as \(user)"), "\(plain.stdout)")

        // put into /etc, root-owned 0644.
        let (put, _) = try run(["put", "-b", "--host", "become-nopw", "--mode", "0644", source, target])
        #expect(put.status == 0, "\(put.stdout) \(put.stderr)")
        var st = stat()
        #expect(stat(target, &st) == 0)
        #expect(st.st_uid == 0 && st.st_mode & 0o7777 == 0o644, "uid \(st.st_uid) mode \(String(st.st_mode, radix: 8))")
        #expect((try? String(contentsOfFile: target, encoding: .utf8)) == "managed by mrctl\n")

        // read a 0600 root file.
        let (read, _) = try run(["read", "--become", "--host", "become-nopw", secret])
        #expect(read.status == 0 && read.stdout.contains("root only"), "\(read.stdout) \(read.stderr)")

        // sudoers: a validated rule for another user.
        let (sudoers, _) = try run([
            "sudoers", "-b", "--host", "become-nopw", "--nopasswd", SSHServer.user, "/usr/bin/true",
        ])
        #expect(sudoers.status == 0, "\(sudoers.stdout) \(sudoers.stderr)")
        #expect(FileManager.default.fileExists(atPath: "/etc/sudoers.d/froyo-mr-ssh-test"), "\(sudoers.stdout)")

        // pkg from a local apt repository (APT_CONFIG reaches the runner through the sudo rule's env_keep).
        let repo = try AptRepo(package: "mr-become-pkg")
        let s = try becomeServer.get()
        unlink("\(s.dir)/apt.conf")
        try FileManager.default.copyItem(atPath: repo.aptConfig, toPath: "\(s.dir)/apt.conf")
        chmod("\(s.dir)/apt.conf", 0o644)
        let pkg = try ensurePackage(repo)
        #expect(pkg.status == 0, "\(pkg.stdout) \(pkg.stderr)")
        #expect(repo.installed == "1.1", "\(pkg.stdout)")

        // Nothing left behind: the runner deleted itself as root, the bootstrap removed its directory.
        #expect(leftovers(of: user).isEmpty, "\(leftovers(of: user))")
    }

    /// The story that used to end badly: sshd-harden turns root login off, and the same tool, logged in as a
    /// normal user, still manages the host through become.
    @Test func hardenThenManageAsANormalUser() throws {
        let s = try becomeServer.get()
        let repo = try AptRepo(package: "mr-become-pkg")
        unlink("\(s.dir)/apt.conf")
        try FileManager.default.copyItem(atPath: repo.aptConfig, toPath: "\(s.dir)/apt.conf")
        chmod("\(s.dir)/apt.conf", 0o644)
        let (harden, _) = try run(["sshd-harden", "-b", "--host", "become-nopw"])
        #expect(harden.status == 0, "\(harden.stdout) \(harden.stderr)")
        let effective = shell("/usr/sbin/sshd -T -f \(s.dir)/sshd_config -C user=root,host=x,addr=127.0.0.1").output
        #expect(effective.contains("permitrootlogin no"), "\(effective.prefix(400))")

        let pkg = try ensurePackage(repo)
        #expect(pkg.status == 0, "\(pkg.stdout) \(pkg.stderr)")
        #expect(repo.installed == "1.1")
        let source = NSTemporaryDirectory() + "mr-become-harden.src"
        defer {
            unlink(source)
            unlink("/etc/mr-become-after-harden.conf")
        }
        try "after harden\n".write(toFile: source, atomically: true, encoding: .utf8)
        let (put, _) = try run(["put", "-b", "--host", "become-nopw", source, "/etc/mr-become-after-harden.conf"])
        #expect(put.status == 0, "\(put.stdout) \(put.stderr)")
        var st = stat()
        #expect(stat("/etc/mr-become-after-harden.conf", &st) == 0 && st.st_uid == 0)
    }

    @Test func inventoriesBecomeWithAnsiblesVariables() throws {
        let s = try becomeServer.get()
        let dir = NSTemporaryDirectory() + "mr-become-inv-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try """
        [fleet]
        web ansible_host=127.0.0.1 ansible_port=\(s.port) ansible_user=\(BecomeUsers.nopasswd) ansible_become=yes
        pw ansible_host=127.0.0.1 ansible_port=\(s.port) ansible_user=\(BecomeUsers.password) ansible_become=true ansible_become_password='\(BecomeUsers.secret)'
        nobody ansible_host=127.0.0.1 ansible_port=\(s.port) ansible_user=\(BecomeUsers.nopasswd) ansible_become=yes ansible_become_user=nobody

        [fleet:vars]
        ansible_ssh_private_key_file=\(s.clientKey)
        """.write(toFile: "\(dir)/hosts.ini", atomically: true, encoding: .utf8)
        try """
        all:
          vars:
            ansible_ssh_private_key_file: \(s.clientKey)
          hosts:
            web:
              ansible_host: 127.0.0.1
              ansible_port: \(s.port)
              ansible_user: \(BecomeUsers.nopasswd)
              ansible_become: true
            pw:
              ansible_host: 127.0.0.1
              ansible_port: \(s.port)
              ansible_user: \(BecomeUsers.password)
              ansible_become: yes
              ansible_become_pass: \(BecomeUsers.secret)
        """.write(toFile: "\(dir)/hosts.yml", atomically: true, encoding: .utf8)
        for inventory in ["hosts.ini", "hosts.yml"] {
            let (exec, _) = try run(["exec", "--json", "-i", "\(dir)/\(inventory)", "--", "id -un"])
            #expect(exec.status == 0, "\(inventory): \(exec.stdout) \(exec.stderr)")
            let byHost = Dictionary(uniqueKeysWithValues: exec.objects.map { ($0["host"]?.stringValue ?? "", $0) })
            #expect(byHost["web"]?["result"]?["stdout"] == .string("root\n"), "\(inventory): \(exec.stdout)")
            // requiretty and a password: one line to sudo, through the pty the runner gives it.
            #expect(byHost["pw"]?["result"]?["stdout"] == .string("root\n"), "\(inventory): \(exec.stdout)")
            if inventory == "hosts.ini" {
                #expect(byHost["nobody"]?["result"]?["stdout"] == .string("nobody\n"), "\(exec.stdout)")
            }
        }
    }

    @Test func becomeUserNobodyWritesFilesAsNobody() throws {
        let target = "/tmp/mr-become-nobody-\(UUID().uuidString.prefix(8))"
        defer { unlink(target) }
        let source = NSTemporaryDirectory() + "mr-become-nobody.src"
        defer { unlink(source) }
        try "nobody's\n".write(toFile: source, atomically: true, encoding: .utf8)
        let (exec, _) = try run(["exec", "-b", "--become-user", "nobody", "--host", "become-nopw", "--", "id -un"])
        #expect(exec.status == 0 && exec.stdout.contains("nobody"), "\(exec.stdout) \(exec.stderr)")
        let (put, _) = try run(["put", "-b", "--become-user", "nobody", "--host", "become-nopw", source, target])
        #expect(put.status == 0, "\(put.stdout) \(put.stderr)")
        var st = stat()
        #expect(stat(target, &st) == 0)
        #expect(st.st_uid == getpwnam("nobody")!.pointee.pw_uid, "owner uid \(st.st_uid)")
        // The runner could not delete itself as nobody; the bootstrap removed the login user's directory.
        #expect(leftovers(of: BecomeUsers.nopasswd).isEmpty, "\(leftovers(of: BecomeUsers.nopasswd))")
    }

    /// Over a kept connection (`--persist`) the host keeps the runner for the next call, and become works from
    /// there: to root, and to another user, who reaches the session's directory through the kept one.
    @Test func aKeptRunnerBecomesRootAndAnotherUserAgain() throws {
        let s = try becomeServer.get()
        defer { for dir in leftovers(of: BecomeUsers.nopasswd) { shell("rm -rf \(dir)") } }
        for (flags, expected) in [([String](), "root"), (["--become-user", "nobody"], "nobody")] {
            for call in 0..<2 {
                let run = try mrctl(
                    [
                        "exec", "--ssh-config", s.clientConfig, "--runner", runnerPath, "--persist", "20", "-b",
                        "--host", "become-nopw",
                    ] + flags + ["--", "id -un"]
                )
                #expect(
                    run.status == 0 && run.stdout.contains(expected),
                    "\(expected) \(call): \(run.stdout) \(run.stderr)"
                )
                // One directory on the host: the first call's, kept and used again by the second.
                let kept = leftovers(of: BecomeUsers.nopasswd)
                #expect(kept.count == 1, "\(expected) \(call): \(kept)")
            }
        }
    }

    /// Counts sudo's "incorrect password attempt" lines for the password user.
    func failedAttempts() -> Int {
        let text = (try? String(contentsOfFile: BecomeUsers.passwordLog, encoding: .utf8)) ?? ""
        return text.components(separatedBy: "incorrect password attempt").count - 1
    }

    @Test func aWrongPasswordFailsAtOnceWithOneAttempt() throws {
        let before = failedAttempts()
        let s = try becomeServer.get()
        let inventory = NSTemporaryDirectory() + "mr-become-wrong-\(getpid()).ini"
        defer { unlink(inventory) }
        try """
        pw ansible_host=127.0.0.1 ansible_port=\(s.port) ansible_user=\(BecomeUsers.password) ansible_become=yes ansible_become_password=wrong-password ansible_ssh_private_key_file=\(s.clientKey)
        """.write(toFile: inventory, atomically: true, encoding: .utf8)
        let (exec, seconds) = try run(["exec", "-i", inventory, "--", "touch /root/mr-become-must-not-exist"])
        #expect(exec.status == 4, "unreachable, like Ansible's UNREACHABLE: \(exec.stdout) \(exec.stderr)")
        #expect(exec.stdout.contains("incorrect password") || exec.stdout.contains("did not accept"), "\(exec.stdout)")
        #expect(seconds < 3.5, "took \(seconds) s (PAM's fail delay is ~2.5 s of it)")
        #expect(failedAttempts() - before == 1, "sudo logged \(failedAttempts() - before) failed attempts")
        #expect(!FileManager.default.fileExists(atPath: "/root/mr-become-must-not-exist"))
        #expect(leftovers(of: BecomeUsers.password).isEmpty, "\(leftovers(of: BecomeUsers.password))")
    }

    @Test func aMissingPasswordOrNoRuleSaysWhatSudoSaid() throws {
        let (pw, _) = try run(["exec", "-b", "--host", "become-pw", "--", "id"])
        #expect(pw.status == 4, "\(pw.stdout) \(pw.stderr)")
        #expect(pw.stdout.contains("a password is required") && pw.stdout.contains("-K"), "\(pw.stdout)")
        let (none, _) = try run(["exec", "-b", "--host", "become-none", "--", "id"])
        #expect(none.status == 4, "\(none.stdout) \(none.stderr)")
        #expect(none.stdout.contains("become-none") && none.stdout.contains("sudo"), "\(none.stdout)")
    }

    /// A normal login without -b: the commands that need root say so and how to get it, instead of "capabilities
    /// false or absent".
    @Test func withoutBecomeRootCommandsSayHowToBecomeRoot() throws {
        let (pkg, _) = try run(["pkg", "--host", "become-nopw", "mr-become-pkg"])
        #expect(pkg.status != 0, "\(pkg.stdout)")
        #expect(
            pkg.stdout.contains("needs root") && pkg.stdout.contains(BecomeUsers.nopasswd)
                && pkg.stdout.contains("-b/--become"),
            "\(pkg.stdout)"
        )
    }

    /// -K asks once on the terminal (answered here through a pty) and the password serves every host.
    @Test func askBecomePassPromptsOnceOnTheTerminal() throws {
        let s = try becomeServer.get()
        let script = """
            import os, pty, sys, time
            pid, fd = pty.fork()
            if pid == 0:
                os.execv(sys.argv[1], sys.argv[1:])
            out = b""
            deadline = time.time() + 60
            while b"BECOME password:" not in out and time.time() < deadline:
                out += os.read(fd, 1024)
            os.write(fd, sys.stdin.readline().encode())
            while True:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            _, status = os.waitpid(pid, 0)
            sys.stdout.write(out.decode(errors="replace"))
            sys.exit(os.waitstatus_to_exitcode(status))
            """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        p.arguments =
            ["-c", script, mrctlPath, "exec", "--ssh-config", s.clientConfig, "--runner", runnerPath, "--persist", "0"]
            + ["-K", "-b", "--host", "become-pw", "--host", "become-pw", "--", "id -un"]
        let input = Pipe()
        let output = Pipe()
        p.standardInput = input
        p.standardOutput = output
        try p.run()
        input.fileHandleForWriting.write(Data("\(BecomeUsers.secret)\n".utf8))
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "\(text)")
        #expect(text.components(separatedBy: "BECOME password:").count == 2, "asked once: \(text)")
        #expect(!text.contains(BecomeUsers.secret), "the password was not echoed")
        #expect(text.components(separatedBy: "root").count >= 3, "both hosts ran as root: \(text)")
    }

    @Test func aVaultEncryptedPasswordIsRefusedBeforeConnecting() throws {
        let inventory = NSTemporaryDirectory() + "mr-become-vault-\(getpid()).yml"
        defer { unlink(inventory) }
        try """
        all:
          hosts:
            vaulted:
              ansible_host: 127.0.0.1
              ansible_port: 1
              ansible_become: true
              ansible_become_password: !vault |
                $ANSIBLE_VAULT;1.1;AES256
                62313365396662343061393464336163383764373764613633653634306231386433626436623361
                6134333665353966363534333632666535333761666131620a663537646436643839616531643561
        """.write(toFile: inventory, atomically: true, encoding: .utf8)
        let (exec, seconds) = try run(["exec", "-i", inventory, "--", "true"])
        #expect(exec.status != 0 && exec.status != 4, "a usage error, not an unreachable host: \(exec.status)")
        #expect(exec.stderr.contains("vault-encrypted: decrypt it first or use -K"), "\(exec.stderr)")
        #expect(seconds < 2, "took \(seconds) s")
    }

    /// Ctrl-C during a command of a root runner: the login user cannot signal it, so the tidy-up signals the
    /// launcher, which sends it on through sudo; nothing keeps running and the directory goes.
    @Test func interruptStopsARootRunnersCommand() throws {
        let s = try becomeServer.get()
        let marker = uniqueSleep(34)
        let run = try InterruptTests.interruptMrctl(
            [
                "exec", "-b", "--ssh-config", s.clientConfig, "--persist", "0", "--host", "become-nopw", "--runner",
                runnerPath, "--", "sleep \(marker)",
            ],
            marker: marker
        ) {}
        #expect(run.started, "the command started on the host")
        #expect(run.status == 130, "\(run.stderr)")
        #expect(!run.runningAtExit, "the command was stopped (mrctl took \(run.seconds) s: \(run.stderr))")
        #expect(leftovers(of: BecomeUsers.nopasswd).isEmpty, "\(leftovers(of: BecomeUsers.nopasswd))")
    }
}
