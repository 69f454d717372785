import Foundation
import MicroRunnerClient
import MicroRunnerProtocol
import MicroRunnerTestSupport
import Testing

/// One sshd for the whole suite.
let sharedServer: Result<SSHServer, any Error> = Result { try SSHServer(aliases: 50) }

func server() throws -> SSHServer { try sharedServer.get() }

/// The directory a runner process (on this machine, as the sshd fixture's hosts are) was started from.
func runnerDirectory(pid: Int) throws -> String {
    let exe = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe")
    return URL(fileURLWithPath: exe).deletingLastPathComponent().path
}

func sshOptions(_ s: SSHServer) -> SSHOptions {
    var o = SSHOptions()
    o.configFile = s.clientConfig
    return o
}

func transport(_ alias: String, _ s: SSHServer) -> SSHTransport {
    SSHTransport(host: HostSpec(host: alias), options: sshOptions(s))
}

final class Box<T>: @unchecked Sendable {
    var value: T
    init(_ v: T) { value = v }
}

@Suite(.serialized, .enabled(if: geteuid() == 0, "starts sshd and creates a test user"))
struct SSHTransportTests {
    @Test func uploadRunStreamAndCleanUp() async throws {
        let s = try server()
        let runner = try RunnerBinary(path: runnerPath)
        let seenDir = Box<String?>(nil)
        let lines = Box<[String]>([])
        let exit = try await RunnerClient.withRunner(transport: transport("h1", s), runner: runner) { client in
            let ready = await client.ready
            #expect(ready.capabilities["exec"] == true)
            // The runner sits in a private directory of the remote user, mode 0700.
            let dir = try runnerDirectory(pid: ready.pid)
            seenDir.value = dir
            #expect(dir.hasPrefix("/tmp/micro-runner."))
            let attributes = try FileManager.default.attributesOfItem(atPath: dir)
            #expect((attributes[.posixPermissions] as? Int) == 0o700)
            #expect((attributes[.ownerAccountName] as? String) == SSHServer.user)

            var p = ExecParams(command: "echo one; sleep 0.2; echo two; id -un")
            p.streamLines = true
            p.captureOut = true
            let r = try await client.exec(p) { event in lines.value.append(event.message) }
            #expect(r.stdout == "one\ntwo\n\(SSHServer.user)\n")
            return try await client.close()
        }
        _ = exit
        #expect(lines.value == ["one", "two", SSHServer.user])
        let dir = try #require(seenDir.value)
        #expect(!FileManager.default.fileExists(atPath: dir), "remote directory left behind")
    }

    /// The bootstrap is started with the cache entry's size while the entry is still being checked: an entry
    /// someone replaced (here: another file, compressed, of another size) is caught before a byte is sent, and the
    /// host is started again with the checked copy.
    @Test func aCacheEntryReplacedBeforeTheCheckIsNotSentAndTheHostStillStarts() async throws {
        let s = try server()
        // A runner this process has not checked yet: the real one with bytes after its end (still a valid ELF).
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mr-fresh-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/micro-runner"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: runnerPath))
        bytes.append(contentsOf: Array("\(UUID().uuidString)".utf8))
        try bytes.write(to: URL(fileURLWithPath: path))
        chmod(path, 0o755)
        let runner = try RunnerBinary(path: path)
        let entry = try cacheEntry(of: runner)
        defer { try? FileManager.default.removeItem(at: entry) }
        try Data([0x1F, 0x8B] + Array(repeating: 0x41, count: 1000)).write(to: entry)
        #expect(runner.expectedGzipSize() == 1002, "the entry as it stands goes in argv")
        let out = try await RunnerClient.withRunner(transport: transport("h1", s), runner: runner) { client in
            try await client.exec(ExecParams(command: "echo started")).stdout
        }
        #expect(out == "started\n")
        let good = try runner.gzippedUncached()
        let replaced = try Data(contentsOf: entry) == good
        #expect(replaced, "the entry was replaced by the checked copy")
        #expect(runner.expectedGzipSize() == good.count)
    }

    /// A kept connection (`--persist`) keeps the runner on the host: the next session starts it from the same
    /// directory with no upload; a directory that is no longer this user's, or a link, is never run from (the
    /// runner is sent again, to a new directory); and the host sweeps the directory once the keep time passes
    /// without a session.
    @Test func aKeptConnectionKeepsTheRunnerOnlyWhereOnlyItsUserCanWrite() async throws {
        let s = try server()
        var template = Array((NSTemporaryDirectory() + "/mr-kept.XXXXXX").utf8CString)
        let dir = try #require(mkdtemp(&template).map { String(cString: $0) })
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var o = sshOptions(s)
        // 5 s: with 3, a loaded full run once took longer than that between the first session and the second,
        // and the host had swept the directory (as it should) before the second could use it.
        o.sharing = .persistent(directory: dir, persist: 5)
        let t = SSHTransport(host: HostSpec(host: "h31"), options: o)
        let runner = try RunnerBinary(path: runnerPath)
        let record = t.controlPath(dir) + ".runner"
        func session() async throws -> (directory: String, inode: UInt64) {
            try await RunnerClient.withRunner(transport: t, runner: runner) { client in
                let pid = await client.ready.pid
                let r = try await client.exec(ExecParams(command: "echo here"))
                #expect(r.stdout == "here\n")
                let path = try runnerDirectory(pid: pid)
                var st = stat()
                #expect(stat(path + "/micro-runner", &st) == 0)
                return (path, UInt64(st.st_ino))
            }
        }
        func remembered() -> String? {
            (try? String(contentsOfFile: record, encoding: .utf8)).flatMap { $0.split(separator: " ").last }.map {
                $0.trimmingCharacters(in: .newlines)
            }
        }
        let first = try await session()
        #expect(remembered() == first.directory, "the controller remembers where the runner stays")
        #expect(FileManager.default.fileExists(atPath: first.directory + "/" + runner.sha256))
        let second = try await session()
        // Run from a directory of the session's own inside the kept one, linked to the same file: nothing uploaded.
        #expect(URL(fileURLWithPath: second.directory).deletingLastPathComponent().path == first.directory)
        #expect(second.inode == first.inode, "the same runner file ran again")
        #expect(!FileManager.default.fileExists(atPath: second.directory), "the session's own directory went with it")

        // No longer the login user's (as if another user had made a directory of that name): not run from.
        shell("chown nobody \(first.directory)")
        defer { shell("rm -rf \(first.directory)") }
        let third = try await session()
        #expect(!third.directory.hasPrefix(first.directory))
        #expect(remembered() == third.directory)

        // A link in the remembered directory's place (to the login user's own kept directory): not run from either.
        let link = third.directory + "-link"
        shell("ln -s \(third.directory) \(link) && chown -h \(SSHServer.user) \(link)")
        defer { unlink(link) }
        try "\(runner.sha256) \(link)\n".write(toFile: record, atomically: true, encoding: .utf8)
        let fourth = try await session()
        #expect(!fourth.directory.hasPrefix(third.directory) && !fourth.directory.hasPrefix(link))

        // Swept by the host 5-10 s after its last session (the keep time is the connection's ControlPersist).
        var gone = false
        for _ in 0..<150 where !gone {
            try await Task.sleep(for: .milliseconds(100))
            gone = !FileManager.default.fileExists(atPath: fourth.directory)
        }
        #expect(gone, "\(fourth.directory) swept")
        await t.closeMaster(includingPersistent: true)
    }

    @Test func aSharedConnectionServesSeveralSessionsAndShutdownClosesIt() async throws {
        let s = try server()
        var template = Array((NSTemporaryDirectory() + "/mr-cm.XXXXXX").utf8CString)
        let dir = try #require(mkdtemp(&template).map { String(cString: $0) })
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var o = sshOptions(s)
        o.sharing = .master(directory: dir, persist: 30)
        let t = SSHTransport(host: HostSpec(host: "h2"), options: o)
        let runner = try RunnerBinary(path: runnerPath)
        for _ in 0..<2 {
            let r = try await RunnerClient.withRunner(transport: t, runner: runner) { client in
                try await client.exec(ExecParams(command: "true"))
            }
            #expect(r.exitCode == 0)
        }
        // One master socket served both sessions, and shutdown() closed it.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).count == 1)
        await t.shutdown()
        // The master unlinks its socket as it exits, just after it answered `-O exit`.
        for _ in 0..<250 where !(try FileManager.default.contentsOfDirectory(atPath: dir).isEmpty) {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).isEmpty)
    }

    @Test func withoutSharingNoMasterIsLeftAnywhere() async throws {
        let s = try server()
        let t = transport("h3", s)
        let args = t.sshArguments("true")
        #expect(args.contains("ControlMaster=no"))
        let r = try await RunnerClient.withRunner(transport: t, runner: try RunnerBinary(path: runnerPath)) { client in
            try await client.exec(ExecParams(command: "true"))
        }
        #expect(r.exitCode == 0)
    }

    @Test func eachHostGetsTheRunnerForItsArchitecture() async throws {
        let s = try server()
        let runners = try builtRunners()
        try #require(runners.runners["arm64"] != nil, "scripts/build-runner builds the arm64 runner too")
        let o = sshOptions(s)
        // The runner passed to withRunner is amd64's; the transport must pick arm64 for this host.
        let amd64 = try runners.runner(for: "amd64")
        for _ in 0..<2 {  // the second start uses what the first learned (no "-" bootstrap)
            let (arch, out) = try await RunnerClient.withRunner(
                transport: SSHTransport(host: HostSpec(host: "arm1"), options: o, runners: runners),
                runner: amd64
            ) { client in
                (await client.ready.arch, try await client.exec(ExecParams(command: "echo ran")).stdout)
            }
            #expect(arch == "arm64")
            #expect(out == "ran\n")
        }
        let plain = try await RunnerClient.withRunner(
            transport: SSHTransport(host: HostSpec(host: "h9"), options: sshOptions(s), runners: runners),
            runner: amd64
        ) { client in await client.ready.arch }
        #expect(plain == "amd64")
    }

    @Test func aHostWithoutARunnerForItsArchitectureIsNamed() async throws {
        let s = try server()
        let o = sshOptions(s)
        let runners = try builtRunners()
        do {
            _ = try await RunnerClient.withRunner(
                transport: SSHTransport(host: HostSpec(host: "riscv1"), options: o, runners: runners),
                runner: try runners.runner(for: "amd64")
            ) { client in await client.ready.arch }
            Issue.record("started a runner on a riscv64 host")
        } catch let error as ClientError {
            #expect(error.message.contains("no runner for architecture riscv64"))
        }
    }

    @Test(.timeLimit(.minutes(1))) func aHostThatNeverReadsIsBoundedByTheStartTimeout() async throws {
        let s = try server()
        do {
            _ = try await RunnerClient.withRunner(
                transport: transport("slow1", s),
                runner: try RunnerBinary(path: runnerPath),
                startTimeout: .seconds(3)
            ) { client in await client.ready.version }
            Issue.record("a host that never reads started a runner")
        } catch let error as ClientError {
            #expect(error.kind == .startTimeout, "\(error)")
        }
    }

    @Test func textALoginRcPrintsBeforeTheRunnerIsSkipped() async throws {
        let s = try server()
        let out = try await RunnerClient.withRunner(
            transport: transport("noisy1", s),
            runner: try RunnerBinary(path: runnerPath)
        ) { client in try await client.exec(ExecParams(command: "echo fine")).stdout }
        #expect(out == "fine\n")
    }

    @Test func aNoexecTmpFallsBackToTheHomeCache() async throws {
        let s = try server()
        let seen = Box<String?>(nil)
        _ = try await RunnerClient.withRunner(
            transport: transport("noexec1", s),
            runner: try RunnerBinary(path: runnerPath)
        ) { client in
            seen.value = try runnerDirectory(pid: await client.ready.pid)
            return try await client.exec(ExecParams(command: "true")).exitCode
        }
        let dir = try #require(seen.value)
        #expect(dir.contains("/.cache/micro-runner/run."), "\(dir)")
        #expect(!FileManager.default.fileExists(atPath: dir), "the fallback directory is removed at exit too")
        // An explicit directory gets no fallback: the error says what to do.
        var o = sshOptions(s)
        o.remoteDirectory = SSHServer.noexecDirectory
        do {
            _ = try await RunnerClient.withRunner(
                transport: SSHTransport(host: HostSpec(host: "h12"), options: o),
                runner: try RunnerBinary(path: runnerPath),
                startTimeout: .seconds(20)
            ) { client in await client.ready.pid }
            Issue.record("ran a runner from a noexec directory")
        } catch let error as ClientError {
            #expect(error.message.contains("--remote-tmp"), "\(error)")
        }
    }

    /// `/tmp` itself noexec, through a mount namespace around sshd (no TMPDIR involved): the bootstrap finds out
    /// and runs the runner from the user's home cache.
    @Test func aNoexecTmpInAMountNamespaceFallsBackToTheHomeCache() async throws {
        let s = try SSHServer(aliases: 1, noexecTmp: true)
        let seen = Box<String?>(nil)
        let mounts = try await RunnerClient.withRunner(
            transport: transport("h1", s),
            runner: try RunnerBinary(path: runnerPath)
        ) { client in
            seen.value = try runnerDirectory(pid: await client.ready.pid)
            return try await client.exec(ExecParams(command: "grep ' /tmp ' /proc/self/mounts")).stdout
        }
        #expect(mounts.contains("noexec"), "the session's /tmp is noexec: \(mounts)")
        let dir = try #require(seen.value)
        #expect(dir.contains("/.cache/micro-runner/run."), "\(dir)")
        #expect(!FileManager.default.fileExists(atPath: dir), "the fallback directory is removed at exit too")
    }

    /// Real login shells (sshd runs `SHELL -c COMMAND` as the user's shell from the password database): the
    /// bootstrap is one line that bash, zsh, fish and tcsh all pass to /bin/sh intact, and the runner starts.
    @Test(arguments: SSHServer.loginShells.map(\.0))
    func aUserWithThisLoginShellRunsTheBootstrap(_ shellName: String) async throws {
        let s = try server()
        let out = try await RunnerClient.withRunner(
            transport: transport("\(shellName)-user", s),
            runner: try RunnerBinary(path: runnerPath)
        ) { client in try await client.exec(ExecParams(command: "echo \"$(id -un) via $SHELL\"")).stdout }
        let path = try #require(SSHServer.loginShells.first { $0.0 == shellName }?.1)
        #expect(out == "mr-ssh-\(shellName) via \(path)\n")
    }

    @Test func closeReturnsExitAndTheRunnerDeletedItself() async throws {
        let s = try server()
        let runner = try RunnerBinary(path: runnerPath)
        let exit = try await RunnerClient.withRunner(transport: transport("h2", s), runner: runner) { client in
            try await client.close()
        }
        #expect(exit.reason == .stdinClosed)
        #expect(exit.selfDeleted)
    }

    @Test func cancelOverSSH() async throws {
        let s = try server()
        let runner = try RunnerBinary(path: runnerPath)
        try await RunnerClient.withRunner(transport: transport("h3", s), runner: runner) { client in
            let id = await client.makeID()
            let cmd = CommandMessage(
                id: id,
                type: .exec,
                timeout: 60,
                params: WireEncoder().encodeToValue(ExecParams(command: "sleep 30"))
            )
            async let answer = client.send(cmd)
            try await Task.sleep(for: .milliseconds(300))
            try await client.cancel(id)
            let a = try await answer
            guard case .error(let e) = a else {
                Issue.record("expected CANCELLED, got \(a)")
                return
            }
            #expect(e.code == .cancelled)
        }
    }

    @Test func pipelinedBatchStopsOnFailureWhenAsked() async throws {
        let s = try server()
        let runner = try RunnerBinary(path: runnerPath)
        try await RunnerClient.withRunner(transport: transport("h4", s), runner: runner) { client in
            var commands: [CommandMessage] = []
            for command in ["true", "exit 3", "touch /tmp/mr-batch-should-not-run"] {
                commands.append(
                    CommandMessage(
                        id: await client.makeID(),
                        type: .exec,
                        timeout: 10,
                        params: WireEncoder().encodeToValue(ExecParams(command: command))
                    )
                )
            }
            let answers = try await client.sendBatch(commands, stopOnFailure: true)
            #expect(!answers[0].failed)
            #expect(answers[1].failed)
            guard case .error(let e) = answers[2] else {
                Issue.record("third command ran: \(answers[2])")
                return
            }
            #expect(e.code == .cancelled)
        }
        #expect(!FileManager.default.fileExists(atPath: "/tmp/mr-batch-should-not-run"))
    }

    @Test func wrongHostKeyIsRefused() async throws {
        let s = try server()
        let runner = try RunnerBinary(path: runnerPath)
        let bad = "\(s.dir)/known_hosts_wrong"
        shell("ssh-keygen -q -t ed25519 -N '' -f \(s.dir)/otherkey")
        let other = shell("cut -d' ' -f1,2 \(s.dir)/otherkey.pub").output.trimmingCharacters(
            in: .whitespacesAndNewlines
        )
        try "[127.0.0.1]:\(s.port) \(other)\n".write(toFile: bad, atomically: true, encoding: .utf8)
        var o = sshOptions(s)
        o.extraOptions = ["UserKnownHostsFile=\(bad)"]  // extra options come first and win
        do {
            try await RunnerClient.withRunner(
                transport: SSHTransport(host: HostSpec(host: "h5"), options: o),
                runner: runner
            ) { _ in }
            Issue.record("connected despite a wrong host key")
        } catch let error as ClientError {
            #expect(error.kind == .hostKey, "\(error)")
            #expect(error.message.contains("host key") || error.message.contains("HOST IDENTIFICATION"), "\(error)")
        }
    }

    @Test func unreachableHostIsReported() async throws {
        let s = try server()
        let runner = try RunnerBinary(path: runnerPath)
        do {
            try await RunnerClient.withRunner(transport: transport("closed", s), runner: runner) { _ in }
            Issue.record("connected to a closed port")
        } catch let error as ClientError {
            #expect(error.message.contains("refused"), "\(error)")
        }
    }

    @Test func killedRunnerFailsTheCommandAndTheDirectoryIsRemoved() async throws {
        let s = try server()
        let runner = try RunnerBinary(path: runnerPath)
        let dirBox = Box<String?>(nil)
        do {
            try await RunnerClient.withRunner(transport: transport("h6", s), runner: runner) { client in
                let pid = await client.ready.pid
                dirBox.value = try runnerDirectory(pid: pid)
                async let r = client.exec(ExecParams(command: "sleep 20"))
                try await Task.sleep(for: .milliseconds(300))
                kill(pid_t(pid), SIGKILL)
                _ = try await r
            }
            Issue.record("a killed runner did not fail the command")
        } catch let error as ClientError {
            #expect(error.kind == .runnerExited, "\(error)")
        }
        let dir = try #require(dirBox.value)
        #expect(!FileManager.default.fileExists(atPath: dir))
    }

    @Test func fanOutToFiftyAliasesWithOneFailingHost() async throws {
        let s = try server()
        let runner = try RunnerBinary(path: runnerPath)
        let transports: [any Transport] = (1...50).map { transport("h\($0)", s) } + [transport("closed", s)]
        let outcomes = Box<[String: Result<String, any Error>]>([:])
        await Fleet.run(transports, runner: runner, forks: 51) { client in
            try await client.exec(ExecParams(command: "echo hi", captureOut: true)).stdout
        } onOutcome: { outcome in
            outcomes.value[outcome.host] = outcome.result
        }
        #expect(outcomes.value.count == 51)
        let ok = outcomes.value.values.filter { (try? $0.get()) == "hi\n" }.count
        #expect(ok == 50)
        #expect((try? outcomes.value["closed"]?.get()) == nil)
        for t in transports { await (t as? SSHTransport)?.closeMaster() }
    }
}

/// What ssh's stderr becomes in an error: one line that says what to do.
/// The remote tidy-up after a killed or lost connection, run here through each login shell sshd would use: it
/// stops the runner (which would otherwise finish its command) only while the pid still names that runner.
@Suite struct CleanupScriptTests {
    /// A stand-in runner: a copy of sleep named micro-runner in its own directory, running.
    func standIn(named name: String = "micro-runner") throws -> (dir: String, process: Process) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mr-cleanup-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "/bin/sleep", toPath: dir + "/" + name)
        // With no signal blocked: a blocked SIGTERM would keep it alive.
        let p = try startWithSignalsUnblocked([dir + "/" + name, "60"])
        // Its pid names the copy once python has exec'd it.
        let deadline = Date().addingTimeInterval(5)
        while (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(p.processIdentifier)/exe"))
            != dir + "/" + name && Date() < deadline
        {
            usleep(5_000)
        }
        return (dir, p)
    }

    func run(_ command: String, in shell: String) throws -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: shell)
        p.arguments = ["-c", command]
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        return p.terminationStatus
    }

    func ended(_ p: Process, within seconds: Double = 5) -> Bool {
        p.exitStatus(within: seconds) != nil
    }

    @Test(arguments: SSHServer.loginShells.map(\.1))
    func theRunnerIsStoppedAndItsDirectoryRemoved(_ shell: String) throws {
        try #require(FileManager.default.isExecutableFile(atPath: shell), "scripts/test installs \(shell)")
        let runner = try standIn()
        defer { if runner.process.isRunning { runner.process.terminate() } }
        let script = SSHTransport.cleanupScript(
            directory: runner.dir,
            runnerPID: Int(runner.process.processIdentifier)
        )
        #expect(try run(script, in: shell) == 0)
        try #require(ended(runner.process))
        #expect(runner.process.terminationReason == .uncaughtSignal && runner.process.terminationStatus == SIGTERM)
        #expect(!FileManager.default.fileExists(atPath: runner.dir))
    }

    @Test func aPidThatNamesAnotherProgramIsLeftAlone() throws {
        let runner = try standIn()
        let other = try standIn(named: "something-else")
        defer {
            for p in [runner.process, other.process] where p.isRunning { p.terminate() }
            try? FileManager.default.removeItem(atPath: other.dir)
        }
        // The runner's pid, taken over by another program (here: the pid of one that never was the runner).
        let script = SSHTransport.cleanupScript(directory: runner.dir, runnerPID: Int(other.process.processIdentifier))
        #expect(try run(script, in: "/bin/sh") == 0)
        #expect(other.process.isRunning, "a process that is not this runner is never signalled")
        #expect(!FileManager.default.fileExists(atPath: runner.dir), "the directory goes all the same")
        // Without a pid (no READY came), only the directory is removed.
        let again = try standIn()
        defer { if again.process.isRunning { again.process.terminate() } }
        #expect(try run(SSHTransport.cleanupScript(directory: again.dir, runnerPID: nil), in: "/bin/sh") == 0)
        #expect(again.process.isRunning)
        #expect(!FileManager.default.fileExists(atPath: again.dir))
    }
}

@Suite struct SSHMessageTests {
    @Test func aChangedHostKeyIsOneLineWithTheRemedy() {
        let stderr = """
            @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\r
            @    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\r
            @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\r
            IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\r
            Host key verification failed.\r

            """
        let text = SSHTransport.explain(
            stderr.replacingOccurrences(
                of: "Host key verification failed.",
                with: "Offending ED25519 key in /root/.ssh/known_hosts:3\r\nHost key verification failed."
            )
        )
        #expect(text.contains("ssh-keygen -R"))
        #expect(text.contains("/root/.ssh/known_hosts:3"), "\(text)")
        #expect(!text.contains("@@@"))
    }

    @Test func anUnknownHostKeyNamesTheFlag() {
        let text = SSHTransport.explain(
            "No ED25519 host key is known for [127.0.0.1]:2222 and you have requested strict checking.\r\nHost key verification failed.\r\n"
        )
        #expect(text.contains("--accept-new-host-keys"))
    }

    @Test func crlfLinesAreSplitAndTrimmed() {
        let text = SSHTransport.explain("ssh: connect to host 10.0.0.1 port 22: Connection refused\r\n")
        #expect(text == "ssh: connect to host 10.0.0.1 port 22: Connection refused")
    }
}

/// Which failures Fleet retries: a server turning connections away under load, before the runner started.
@Suite struct BusyServerTests {
    @Test(arguments: [
        ("h1: kex_exchange_identification: read: Connection reset by peer", true),
        ("h1: Connection closed by remote host", true),
        ("h1: Permission denied (publickey)", false),
        ("h1: ssh: connect to host 10.0.0.1 port 22: Connection refused", false),
        // A reset after the handshake is a broken connection, not a busy server: reported at once, never
        // retried for 12 s and blamed on --forks.
        ("h1: client_loop: send disconnect: Connection reset by peer", false),
        ("h1: Read from remote host 127.0.0.1: Connection reset by peer", false),
    ])
    func busyServerIsRecognised(_ message: String, _ busy: Bool) {
        // ssh's words are read once, where the error is made; Fleet decides on the kind alone.
        let kind = ClientError.sshFailureKind(message)
        #expect((kind == .busy) == busy)
        #expect(Fleet.isBusyServer(ClientError(kind, message)) == busy)
        #expect(Fleet.isBusyServer(ClientError(.usage, message)) == false)
        #expect(Fleet.isBusyServer(ClientError(.transport, message)) == false)
    }
}

@Suite struct HostTransportTests {
    @Test func aParsedHostBecomesItsTransport() throws {
        #expect(try HostSpec(parsing: "local").transport() is LocalTransport)
        let ssh = try HostSpec(parsing: "deploy@web1:2222").transport()
        #expect(ssh is SSHTransport)
        #expect(ssh.name == "deploy@web1:2222")
        #expect(LocalTransport(name: "local (staging runner)").name == "local (staging runner)")
    }
}

@Suite struct DynamicRunnerTests {
    /// A dynamically linked runner (what `swift build` leaves as `micro-runner`) is refused for ssh hosts; the
    /// static one is not.
    @Test func aDynamicallyLinkedRunnerIsNeverUploaded() async throws {
        #expect(try RunnerBinary(path: BuiltRunner.path).isDynamicallyLinked == false)
        let dynamic = try RunnerBinary(path: "/bin/true")  // any dynamically linked executable
        #expect(dynamic.isDynamicallyLinked)
        do {
            _ = try await SSHTransport(host: HostSpec(host: "nowhere.invalid")).start(runner: dynamic, arguments: [])
            Issue.record("started an upload of a dynamically linked runner")
        } catch let error as ClientError {
            #expect(error.kind == .usage)
            #expect(error.message.contains("dynamically linked"))
        }
    }
}

/// The error kinds a program switches on, each against the real failure over the loopback sshd.
@Suite(.serialized, .enabled(if: geteuid() == 0, "uses the sshd fixture")) struct ErrorKindTests {
    func kind(_ host: String, _ configure: (inout SSHOptions) -> Void = { _ in }) async throws -> ClientError.Kind? {
        let s = try server()
        var o = SSHOptions()
        o.configFile = s.clientConfig
        configure(&o)
        do {
            try await RunnerClient.withRunner(
                transport: SSHTransport(host: HostSpec(host: host), options: o),
                runner: try RunnerBinary(path: runnerPath),
                startTimeout: .seconds(30)
            ) { _ in }
            return nil
        } catch let error as ClientError {
            #expect(error.isUnreachable, "\(error)")
            return error.kind
        }
    }

    @Test func eachFailureHasItsKind() async throws {
        let s = try server()
        let dir = NSTemporaryDirectory() + "mr-kinds-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        shell("ssh-keygen -q -t ed25519 -N '' -f \(dir)/stranger")
        try "".write(toFile: dir + "/empty_known_hosts", atomically: true, encoding: .utf8)
        // A name that cannot resolve without asking DNS (an IPv6 address, IPv4 only): this sandbox's resolver
        // drops queries under load (40 at once: 5 s), and one fresh-clone run waited out the start timeout on a
        // `.invalid` name.
        try "Host nowhere\n  HostName ::1\n  AddressFamily inet\n".write(
            toFile: dir + "/cfg",
            atomically: true,
            encoding: .utf8
        )

        #expect(try await kind("nowhere") { $0.configFile = dir + "/cfg" } == .unreachable)
        #expect(try await kind("closed") == .unreachable)
        #expect(
            try await kind("127.0.0.1") {
                $0.configFile = nil
                $0.identityFile = dir + "/stranger"
                $0.knownHostsFile = s.knownHosts
                $0.extraOptions = ["Port=\(s.port)", "User=\(SSHServer.user)"]
            } == .authentication
        )
        #expect(try await kind("h25") { $0.knownHostsFile = dir + "/empty_known_hosts" } == .hostKey)
        #expect(try await kind("refusing1") == .refusedByHost)
        #expect(
            Fleet.isBusyServer(ClientError(.busy, "h1: kex_exchange_identification: read: Connection reset by peer"))
        )
    }
}
