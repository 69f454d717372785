import Foundation
import MicroRunnerClient
import MicroRunnerProtocol
import MicroRunnerTestSupport
import Testing

/// A runner that behaves like the Go original, as far as the client can tell: READY without extensions,
/// unknown fields ignored (`content_base64`, `dry_run`, `metadata`), no EVENTs, `file.write` writes `content`
/// and reports it, and any message type it does not know (CANCEL) ends the session. Every message it
/// receives is logged, so tests can see what the client sent. `OLD_RUNNER_MODE=lying` makes it list the
/// extensions while still ignoring them: a broken runner the client must catch by checking answers.
enum OlderRunner {
    static let script = #"""
        #!/usr/bin/env python3
        import datetime, hashlib, json, os, subprocess, sys, time
        mode = os.environ.get("OLD_RUNNER_MODE", "")
        log = os.environ.get("OLD_RUNNER_LOG")
        def send(t, data):
            ts = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            sys.stdout.write(json.dumps({"type": t, "timestamp": ts, "data": data}) + "\n")
            sys.stdout.flush()
        caps = {"exec": True, "file.write": True, "file.read": True, "pkg.ensure": False,
                "service.reload": False, "sshd.harden": False, "sudoers.ensure": False}
        meta = {"ttl": "10m0s"}
        if mode == "lying":
            meta["extensions"] = "file.content_base64,dry_run,cancel,run_if_succeeded,file.chunked_write"
        send("READY", {"version": "go-1.2.3", "platform": "linux", "arch": "amd64", "pid": os.getpid(),
                       "capabilities": caps, "metadata": meta})
        total = 0
        for line in sys.stdin:
            msg = json.loads(line)
            d = msg.get("data", {})
            if log:
                with open(log, "a") as f:
                    f.write(msg.get("type", "") + " " + json.dumps(d.get("params", d), sort_keys=True) + "\n")
            if msg.get("type") != "CMD":
                send("EXIT", {"reason": "error", "exit_code": 1, "self_deleted": False, "commands_total": total})
                sys.exit(1)
            total += 1
            p, start = d.get("params", {}), time.time()
            if d["type"] == "exec":
                argv = [p["command"]] + p["args"] if p.get("args") else [p.get("shell") or "/bin/sh", "-c", p["command"]]
                r = subprocess.run(argv, capture_output=True)
                res = {"exit_code": r.returncode, "stdout": r.stdout.decode() if p.get("capture_out") else "",
                       "stderr": r.stderr.decode() if p.get("capture_err") else "", "duration": time.time() - start}
                send("DONE", {"command_id": d["id"], "result": res, "duration": time.time() - start})
            elif d["type"] == "file.write":
                content, path = p.get("content", "").encode(), p["path"]
                existed = os.path.exists(path)
                if not existed and not p.get("create"):
                    send("ERROR", {"command_id": d["id"], "code": "EXEC_FAILED", "message": "no such file", "retryable": False})
                    continue
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "wb") as f:
                    f.write(content)
                send("DONE", {"command_id": d["id"], "result": {"bytes_written": len(content), "created": not existed,
                              "checksum": hashlib.sha256(content).hexdigest()}, "duration": time.time() - start})
            else:
                send("ERROR", {"command_id": d["id"], "code": "INVALID_CMD", "message": "unknown type", "retryable": False})
        send("EXIT", {"reason": "stdin_closed", "exit_code": 0, "self_deleted": False, "commands_total": total})
        """#

    /// The script in a fresh directory, with a log of what it received.
    final class Instance {
        let dir: String
        var path: String { dir + "/old-runner" }
        var logPath: String { dir + "/received.log" }
        var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
        init() throws {
            dir = FileManager.default.temporaryDirectory.appendingPathComponent("mr-old-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try OlderRunner.script.write(toFile: path, atomically: true, encoding: .utf8)
            chmod(path, 0o755)
        }
        deinit { try? FileManager.default.removeItem(atPath: dir) }
        func file(_ name: String) -> String { dir + "/" + name }
    }

    /// Runs `body` against the older runner through the local transport.
    static func with<T: Sendable>(
        _ instance: Instance,
        mode: String = "",
        _ body: @Sendable (RunnerClient) async throws -> T
    ) async throws -> T {
        setenv("OLD_RUNNER_LOG", instance.logPath, 1)
        setenv("OLD_RUNNER_MODE", mode, 1)
        return try await RunnerClient.withRunner(
            transport: LocalTransport(),
            runner: try RunnerBinary(path: instance.path),
            _: body
        )
    }
}

/// The client trusts nothing the runner was not asked to confirm (issue 11), proven against a runner that
/// behaves like the Go original, and against ours where the fallback must not be taken.
@Suite(.serialized) struct OlderRunnerTests {
    @Test func textContentGoesAsTextAndIsVerified() async throws {
        let old = try OlderRunner.Instance()
        let target = old.file("sub/dir/motd")
        let r = try await OlderRunner.with(old) { client in
            try await client.putFile(Array("hello from the client\n".utf8), to: target)
        }
        #expect(r.bytesWritten == 22)
        #expect(try String(contentsOfFile: target, encoding: .utf8) == "hello from the client\n")
        #expect(old.log.contains(#""content": "hello from the client\n""#), "sent as text: \(old.log)")
        #expect(!old.log.contains("content_base64"))
    }

    /// Batched lines are an extension: a runner that does not list it is never asked for them, and the
    /// output still comes in the result (the Go runner sends no EVENTs at all).
    @Test func streamBatchIsNotSentToARunnerThatDoesNotListIt() async throws {
        let old = try OlderRunner.Instance()
        let r = try await OlderRunner.with(old) { client in
            try await client.exec(ExecParams(command: "echo one; echo two", streamBatch: true), onEvent: { _ in })
        }
        #expect(r.stdout == "one\ntwo\n")
        #expect(old.log.contains(#""stream_lines": true"#), "streaming asked for: \(old.log)")
        #expect(!old.log.contains("stream_batch"), "batches not asked for: \(old.log)")
    }

    @Test func binaryContentIsRefusedBeforeAnythingIsSent() async throws {
        let old = try OlderRunner.Instance()
        let target = old.file("bin")
        await #expect(throws: ClientError.self) {
            try await OlderRunner.with(old) { client in try await client.putFile([0xFF, 0x00, 0xFE], to: target) }
        }
        #expect(!FileManager.default.fileExists(atPath: target))
        #expect(!old.log.contains("CMD"), "nothing was sent: \(old.log)")
    }

    @Test func dryRunIsRefusedNeverRunForReal() async throws {
        let old = try OlderRunner.Instance()
        let target = old.file("keep")
        try "seventeen bytes!\n".write(toFile: target, atomically: true, encoding: .utf8)
        do {
            _ = try await OlderRunner.with(old) { client in
                try await client.putFile(Array("new".utf8), to: target, dryRun: true)
            }
            Issue.record("a dry run was sent to a runner that would run it for real")
        } catch let e as ClientError {
            #expect(e.kind == .unsupported)
            #expect(e.message.contains("go-1.2.3"), "\(e.message)")
        }
        #expect(try String(contentsOfFile: target, encoding: .utf8) == "seventeen bytes!\n")
    }

    @Test func aRunnerThatWritesSomethingElseIsCaught() async throws {
        let old = try OlderRunner.Instance()
        let target = old.file("f")
        do {
            _ = try await OlderRunner.with(old, mode: "lying") { client in
                try await client.putFile(Array("twenty-four bytes here!\n".utf8), to: target)
            }
            Issue.record("an empty write was reported as success")
        } catch let e as ClientError {
            #expect(e.kind == .verificationFailed)
            #expect(e.message.contains("wrote 0 of 24 bytes"), "\(e.message)")
        }
    }

    @Test func aStopOnFailureBatchRunsOneAtATime() async throws {
        let old = try OlderRunner.Instance()
        let marker = old.file("never")
        let answers = try await OlderRunner.with(old) { client in
            try await client.sendBatch(
                [
                    CommandMessage(
                        id: "a",
                        type: .exec,
                        timeout: 10,
                        params: .object(JSONObject([("command", .string("false"))]))
                    ),
                    CommandMessage(
                        id: "b",
                        type: .exec,
                        timeout: 10,
                        params: .object(JSONObject([("command", .string("touch \(marker)"))]))
                    ),
                ],
                stopOnFailure: true
            )
        }
        #expect(answers.count == 2)
        if case .error(let e) = answers[1] { #expect(e.code == .cancelled) } else { Issue.record("b ran") }
        #expect(!FileManager.default.fileExists(atPath: marker))
        #expect(old.log.split(separator: "\n").count == 1, "only the first command was sent: \(old.log)")
        #expect(!old.log.contains("run_if_succeeded"))
    }

    @Test func cancelClosesTheSessionInsteadOfSendingCancel() async throws {
        let old = try OlderRunner.Instance()
        let marker = "600.\(Int.random(in: 100_000...999_999))"
        defer {
            // The older runner was killed; the sleep it started is an orphan of this test.
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/pkill")
            p.arguments = ["-f", "sleep \(marker)"]
            try? p.run()
            p.waitUntilExit()
        }
        let outcome = try await OlderRunner.with(old) { client -> String in
            // Long enough that it cannot end by itself, however slow a loaded machine is.
            async let running: ExecResult = client.exec(ExecParams(command: "sleep \(marker)"))
            try await Task.sleep(for: .milliseconds(500))
            try await client.cancel("c1")
            do {
                _ = try await running
                return "finished"
            } catch let e as ClientError {
                return e.kind.rawValue
            }
        }
        #expect(outcome == ClientError.Kind.runnerExited.rawValue)
        #expect(!old.log.contains("CANCEL"), "no CANCEL reached a runner that would die of it: \(old.log)")
    }

    @Test func aCapabilityThatIsOffIsRefusedWithTheRunnersVersion() async throws {
        let old = try OlderRunner.Instance()
        do {
            _ = try await OlderRunner.with(old) { client in
                try await client.run(.pkgEnsure, PkgEnsureParams(name: "curl"), as: PkgEnsureResult.self)
            }
            Issue.record("sent")
        } catch let e as ClientError {
            #expect(e.kind == .unsupported)
            #expect(e.message.contains("go-1.2.3"), "\(e.message)")
        }
        #expect(!old.log.contains("CMD"))
    }

    @Test func mrctlAgainstTheOlderRunner() throws {
        let old = try OlderRunner.Instance()
        let env = ["OLD_RUNNER_LOG": old.logPath]
        // put: a lying runner fails the host and mrctl exits 1, naming what happened.
        let source = old.file("src")
        try "twenty-four bytes here!\n".write(toFile: source, atomically: true, encoding: .utf8)
        var lying = env
        lying["OLD_RUNNER_MODE"] = "lying"
        let put = try mrctl(
            ["put", "--host", "local", "--runner", old.path, source, old.file("dst")],
            environment: lying
        )
        #expect(put.status == 2)
        #expect((put.stdout + put.stderr).contains("wrote 0 of 24 bytes"), "\(put.stdout)\(put.stderr)")
        // exec --stream: no EVENTs come from this runner, so the final output is printed.
        let stream = try mrctl(
            ["exec", "--stream", "--host", "local", "--runner", old.path, "echo", "streamed-text"],
            environment: env
        )
        #expect(stream.status == 0)
        #expect(stream.stdout.contains("streamed-text"), "\(stream.stdout)")
        // script: one command at a time, stopping at the first failure.
        let script = old.file("script.sh")
        try "echo one\nfalse\ntouch \(old.file("after"))\n".write(toFile: script, atomically: true, encoding: .utf8)
        let run = try mrctl(["script", "--lines", "--host", "local", "--runner", old.path, script], environment: env)
        #expect(run.status == 2)
        #expect(!FileManager.default.fileExists(atPath: old.file("after")))
        // --help is help, not a command for the hosts.
        let help = try mrctl(["exec", "--help"])
        #expect(help.status == 0)
        #expect(help.stdout.contains("USAGE"), "\(help.stdout)")
    }
}

@Suite struct PromiseTests {
    @Test func aTimedWaitEndsOnlyItself() async throws {
        let p = Promise<Int>()
        await #expect(throws: ClientError.self) {
            try await p.value(timeout: .milliseconds(20), orFail: ClientError(.startTimeout, "slow"))
        }
        #expect(!p.isComplete, "the timeout did not settle the promise for others")
        async let later = p.value()
        p.complete(.success(7))
        #expect(try await later == 7)
    }

    @Test func aWaitEndsWhenItsTaskIsCancelled() async throws {
        let p = Promise<Int>()
        let task = Task { try await p.value() }
        try await Task.sleep(for: .milliseconds(20))
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
        #expect(!p.isComplete)
    }
}

/// Ctrl-C during a command: the command stops on the host, the runner and its directory go, mrctl says what it
/// stopped and exits 130.
@Suite(.serialized) struct InterruptTests {
    @Test func sigintStopsTheRunningCommandAndCleansUp() throws {
        let marker = uniqueSleep(31)
        // A private TMPDIR: the local transport puts the runner's directory there, and nothing else does.
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("mr-int-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        var during: [String] = []
        let run = try Self.interruptMrctl(
            ["exec", "--host", "local", "--runner", runnerPath, "--", "sleep \(marker)"],
            marker: marker,
            environment: ["TMPDIR": tmp]
        ) { during = (try? FileManager.default.contentsOfDirectory(atPath: tmp)) ?? [] }
        #expect(run.started, "the command started on the host")
        #expect(during.contains { $0.hasPrefix("micro-runner.") }, "the runner runs from a directory in TMPDIR")
        #expect(run.status == 130, "\(run.stdout)\(run.stderr)")
        #expect(run.stderr.contains("interrupted"), "\(run.stderr)")
        #expect(run.stdout.contains("INTERRUPTED"), "\(run.stdout)")
        #expect(!run.runningAtExit, "the command was stopped, not left to run to its end")
        let left = (try? FileManager.default.contentsOfDirectory(atPath: tmp)) ?? []
        #expect(left.isEmpty, "the runner's directory was removed: \(left)")
    }

    /// A local runner too slow to stop within mrctl's 3 s (stopped with SIGSTOP, let go once a SIGTERM is pending
    /// for it): mrctl sends it SIGTERM, on which it stops the command's process group, before any SIGKILL, which
    /// would end the runner alone and leave the command running. Fails with an mrctl that went straight to SIGKILL.
    @Test func aSlowLocalRunnerIsTerminatedNotKilled() throws {
        let marker = uniqueSleep(34)
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("mr-int-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        var found: (pid: Int32, dir: String)?
        let run = try Self.interruptMrctl(
            ["exec", "--host", "local", "--runner", runnerPath, "--", "sleep \(marker)"],
            marker: marker,
            environment: ["TMPDIR": tmp]
        ) {
            found = Self.runner(of: marker)
            if let pid = found?.pid { Self.stopUntilTERM(pid) }
        }
        let runner = try #require(found, "the runner was found")
        #expect(run.status == 130, "\(run.stderr)")
        #expect(!run.runningAtExit, "the command was stopped (mrctl took \(run.seconds) s: \(run.stderr))")
        #expect(kill(runner.pid, 0) != 0, "the runner is gone")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: tmp)) ?? []).isEmpty)
        kill(runner.pid, SIGCONT)
    }

    /// The same over ssh: the command's process group stops on the host, the runner's directory goes, and the
    /// connection mrctl would otherwise keep (--persist) is closed.
    @Test(.enabled(if: geteuid() == 0, "uses the sshd fixture")) func sigintOverSSHStopsEverything() throws {
        let s = try server()
        let marker = uniqueSleep(32)
        var runnerDir: String?
        let run = try Self.interruptMrctl(
            [
                "exec", "--ssh-config", s.clientConfig, "--host", "h17", "--runner", runnerPath, "--",
                "sleep \(marker)",
            ],
            marker: marker
        ) { runnerDir = Self.runner(of: marker)?.dir }
        #expect(run.started, "the command started on the host")
        #expect(runnerDir?.hasPrefix("/tmp/micro-runner.") == true, "\(runnerDir ?? "no runner found")")
        #expect(run.status == 130, "\(run.stderr)")
        #expect(run.stdout.contains("INTERRUPTED"), "\(run.stdout)")
        #expect(
            !run.runningAtExit,
            "the command was stopped on the host (mrctl took \(run.seconds) s: \(run.stderr))"
        )
        if let runnerDir { #expect(!FileManager.default.fileExists(atPath: runnerDir), "\(runnerDir) was removed") }
        var o = SSHOptions()
        o.configFile = s.clientConfig
        let socket = SSHTransport(host: HostSpec(host: "h17"), options: o).controlPath(
            try SSHOptions.persistentDirectory()
        )
        #expect(!FileManager.default.fileExists(atPath: socket), "the kept connection was closed")
    }

    /// A runner too slow to stop within the 3 s mrctl gives it after Ctrl-C (here: stopped with SIGSTOP, and let
    /// go once a SIGTERM is pending for it): mrctl's tidy-up over a new connection stops it by its pid and waits
    /// for it, so the command is gone when mrctl returns. Before, mrctl removed the directory and returned while
    /// the runner, whose stdin had closed, was left to run the command to its end.
    @Test(.enabled(if: geteuid() == 0, "uses the sshd fixture")) func aRunnerTooSlowToStopIsStoppedByTheTidyUp()
        throws
    {
        let s = try server()
        let marker = uniqueSleep(33)
        var found: (pid: Int32, dir: String)?
        let run = try Self.interruptMrctl(
            [
                "exec", "--ssh-config", s.clientConfig, "--host", "h18", "--runner", runnerPath, "--",
                "sleep \(marker)",
            ],
            marker: marker
        ) {
            found = Self.runner(of: marker)
            if let pid = found?.pid { Self.stopUntilTERM(pid) }
        }
        let runner = try #require(found, "the runner was found on the host")
        #expect(run.started)
        #expect(run.status == 130, "\(run.stderr)")
        #expect(!run.runningAtExit, "the command was stopped (mrctl took \(run.seconds) s: \(run.stderr))")
        #expect(kill(runner.pid, 0) != 0, "the runner is gone")
        #expect(!FileManager.default.fileExists(atPath: runner.dir), "\(runner.dir) was removed")
        kill(runner.pid, SIGCONT)  // never leave it stopped, whatever happened
    }

    /// Stops `pid` (SIGSTOP) and lets it go (SIGCONT) once a SIGTERM is pending for it, or after 30 s.
    static func stopUntilTERM(_ pid: Int32) {
        kill(pid, SIGSTOP)
        Thread.detachNewThread {
            let deadline = Date().addingTimeInterval(30)
            while !hasPendingTERM(pid) && kill(pid, 0) == 0 && Date() < deadline { usleep(10_000) }
            kill(pid, SIGCONT)
        }
    }

    /// Whether a SIGTERM is pending for `pid` (/proc/PID/status, ShdPnd for the process or SigPnd for its thread).
    static func hasPendingTERM(_ pid: Int32) -> Bool {
        guard let status = FileManager.default.contents(atPath: "/proc/\(pid)/status") else { return false }
        for line in String(decoding: status, as: UTF8.self).split(separator: "\n")
        where line.hasPrefix("ShdPnd:") || line.hasPrefix("SigPnd:") {
            let mask = UInt64(line.split(separator: "\t").last ?? "", radix: 16) ?? 0
            if mask & (1 << UInt64(SIGTERM - 1)) != 0 { return true }
        }
        return false
    }

    /// The runner serving `sleep marker`: its pid and directory, from the command's ancestors (the shell of the
    /// shell form, then the runner).
    static func runner(of marker: String) -> (pid: Int32, dir: String)? {
        var ancestor = pid(of: marker)
        for _ in 0..<5 {
            guard let pid = ancestor.flatMap({ parent(of: $0) }) else { return nil }
            let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe")) ?? ""
            if exe.hasSuffix("/micro-runner") {
                return (Int32(pid), URL(fileURLWithPath: exe).deletingLastPathComponent().path)
            }
            ancestor = pid
        }
        return nil
    }

    /// The pid of the process whose command line starts with `sleep marker`.
    static func pid(of marker: String) -> Int? {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        for pid in entries where Int(pid) != nil {
            guard let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { continue }
            let text = String(decoding: cmdline.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
            if text.hasPrefix("sleep \(marker)") { return Int(pid) }
        }
        return nil
    }

    /// A process's parent, from /proc/PID/stat.
    static func parent(of pid: Int) -> Int? {
        procStat(Int32(pid)).flatMap { $0.count > 1 ? Int($0[1]) : nil }
    }

    static func running(_ marker: String) -> Bool { pid(of: marker) != nil }

    /// Whether `pid` runs (neither gone nor a zombie).
    static func alive(_ pid: Int32) -> Bool {
        guard let fields = procStat(pid) else { return false }
        return fields.first != "Z"
    }

    /// Starts mrctl as a terminal would (`startWithSignalsUnblocked`), waits until `sleep marker` runs, calls `whileRunning`, sends SIGINT, and returns how mrctl ended.
    static func interruptMrctl(
        _ arguments: [String],
        marker: String,
        environment: [String: String] = [:],
        whileRunning: () -> Void
    ) throws -> (started: Bool, status: Int32, stdout: String, stderr: String, seconds: Double, runningAtExit: Bool) {
        let out = Pipe()
        let err = Pipe()
        let p = try startWithSignalsUnblocked([mrctlPath] + arguments, environment: environment) {
            $0.standardOutput = out
            $0.standardError = err
        }
        var started = false
        for _ in 0..<200 where !started {
            started = running(marker)
            if !started { usleep(50_000) }
        }
        whileRunning()
        let interrupted = Date()
        kill(p.processIdentifier, SIGINT)
        // Whether the command outlived mrctl, seen the moment mrctl ends (it is then a zombie or gone). Not after
        // waitUntilExit: Foundation's Process waits there for a socket that every descendant inherits, so a
        // command left running on this machine would hold it up until its own end, and then be seen gone.
        let deadline = Date().addingTimeInterval(120)
        while alive(p.processIdentifier) && Date() < deadline { usleep(5_000) }
        let runningAtExit = running(marker)
        p.waitUntilExit()
        let seconds = (Date().timeIntervalSince(interrupted) * 100).rounded() / 100
        return (
            started,
            p.terminationStatus,
            String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self),
            String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self),
            seconds,
            runningAtExit
        )
    }
}

/// Free strings of the CLI are typed: a bad value fails locally, listing the valid ones.
@Suite struct TypedCLITests {
    @Test(arguments: [
        (["pkg", "--state", "installed", "curl"], ["present", "absent", "latest"]),
        (["pkg", "--manager", "brew", "curl"], ["apt", "dnf", "yum", "zypper"]),
        (["service", "nginx", "bounce"], ["reload", "restart", "start", "stop", "enable", "disable"]),
        (["sudoers", "--state", "gone", "bob", "/usr/bin/id"], ["present", "absent"]),
    ])
    func badValuesFailLocallyWithTheValidOnes(_ arguments: [String], _ valid: [String]) throws {
        // No --host: a value that got past parsing would start a runner on this machine; none may.
        let run = try mrctl(arguments + ["--runner", "/nonexistent/runner"])
        #expect(run.status == 64, "\(run.stdout)\(run.stderr)")
        for v in valid { #expect(run.stderr.contains(v), "\(v) listed: \(run.stderr)") }
        #expect(!run.stderr.contains("/nonexistent/runner"), "failed before looking for a runner")
    }
}

/// Child processes are served by one poll thread: many sessions at once do not cost threads each.
@Suite(.serialized) struct ChildThreadsTests {
    static func threads() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").count) ?? -1
    }

    @Test func thirtySessionsAtOnceAddNoThreadPerChild() async throws {
        let runner = try RunnerBinary(path: runnerPath)
        // Warm up: the shared I/O thread and the runtime's pools exist before counting.
        _ = try await RunnerClient.withRunner(transport: LocalTransport(), runner: runner) { _ in 0 }
        let before = Self.threads()
        let peak = PeakCounter()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<30 {
                group.addTask {
                    _ = try await RunnerClient.withRunner(transport: LocalTransport(), runner: runner) { client in
                        peak.note(Self.threads())
                        return try await client.exec(ExecParams(command: "sleep 0.5")).exitCode
                    }
                }
            }
            try await group.waitForAll()
        }
        // Four threads per child (the old design) would be 120 more. The count is the whole test process's, and
        // suites running beside this one start threads of their own (measured alone: 6 before, 6 at the peak).
        #expect(peak.value - before < 60, "threads before \(before), peak \(peak.value)")
    }
}

final class PeakCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var peak = 0
    func note(_ n: Int) { lock.withLock { peak = max(peak, n) } }
    var value: Int { lock.withLock { peak } }
}
