import CTestSupport
import Foundation
import MicroRunnerProtocol

/// The test process as a whole.
package enum TestProcess {
    /// Whether SIGPIPE is ignored, as CTestSupport's constructor arranges before any test runs: a write to a
    /// runner or agent that already exited must fail with EPIPE, never end the whole run.
    package static var ignoresSIGPIPE: Bool { mr_test_sigpipe_ignored() == 1 }
}

/// The static runner built by `scripts/build-runner` (or `MICRO_RUNNER_BIN`). (Not named `RunnerBinary`: that
/// is the client library's public type.)
package enum BuiltRunner {
    package static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    package static var path: String {
        ProcessInfo.processInfo.environment["MICRO_RUNNER_BIN"]
            ?? repo.appendingPathComponent(".build/runner/amd64/micro-runner").path
    }

    /// A private copy, since the runner deletes itself at exit.
    package static func copy() throws -> String {
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw TestFailure("runner binary missing at \(path): run scripts/build-runner first (scripts/test does)")
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mr-it-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let dest = dir.appendingPathComponent("micro-runner").path
        try copy(to: dest)
        return dest
    }

    /// Copies the runner to `dest` (a new file, mode 0755).
    package static func copy(to dest: String) throws {
        // Written through an O_CLOEXEC descriptor: FileManager's copy leaves its write descriptor open across
        // other tests' forks, and a long-lived child (sshd, a container) holding it makes exec fail with ETXTBSY
        // ("Text file busy") for as long as that child lives.
        guard let bytes = FileManager.default.contents(atPath: path) else {
            throw TestFailure("cannot read \(path)")
        }
        let fd = open(dest, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o755)
        guard fd >= 0 else { throw TestFailure("cannot create \(dest): errno \(errno)") }
        defer { close(fd) }
        let written = bytes.withUnsafeBytes { raw -> Bool in
            var offset = 0
            while offset < raw.count {
                let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return false }
                offset += n
            }
            return true
        }
        guard written else { throw TestFailure("cannot write \(dest): errno \(errno)") }
    }
}

package struct TestFailure: Error, CustomStringConvertible {
    package var description: String
    package init(_ d: String) { description = d }
}

/// One received wire line.
package struct Received {
    package var type: MessageType
    package var data: JSONValue
    package var at: Date

    package var commandID: String? { data["command_id"]?.stringValue }
    package var code: String? { data["code"]?.stringValue }
    package var message: String { data["message"]?.stringValue ?? "" }
    package subscript(_ key: String) -> JSONValue? { data[key] }
    package var result: JSONValue { data["result"] ?? .null }
}

/// Drives a runner process over pipes, reading its stdout on a thread.
package final class RunnerProcess: @unchecked Sendable {
    package let process = Process()
    package let stdin = Pipe()
    package let stdout = Pipe()
    package let stderr = Pipe()
    package let binary: String
    private let lock = NSCondition()
    private var lines: [Received] = []
    private var rawLines: [String] = []
    private var eof = false

    package init(arguments: [String] = [], binary: String? = nil, environment: [String: String]? = nil) throws {
        self.binary = try binary ?? BuiltRunner.copy()
        process.executableURL = URL(fileURLWithPath: self.binary)
        process.arguments = arguments
        if let environment { process.environment = environment }
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        // A just-copied binary can be briefly "busy" (ETXTBSY) while another test's fork still holds it open.
        var attempts = 0
        while true {
            do {
                try process.run()
                break
            } catch  where attempts < 500 && "\(error)".contains("Text file busy") {
                attempts += 1
                usleep(2000)
            }
        }
        let handle = stdout.fileHandleForReading
        Thread.detachNewThread { [self] in
            var pending: [UInt8] = []
            var scanFrom = 0
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                pending.append(contentsOf: chunk)
                // Scan only the new bytes: a multi-megabyte line arrives in many chunks.
                while let nl = pending[scanFrom...].firstIndex(of: 0x0A) {
                    let line = Array(pending[0..<nl])
                    pending.removeSubrange(0...nl)
                    scanFrom = 0
                    let text = String(decoding: line, as: UTF8.self)
                    let received: Received
                    do {
                        let env = try Envelope.parse(line: line)
                        received = Received(type: env.type, data: env.data, at: Date())
                    } catch {
                        received = Received(type: "UNPARSEABLE", data: .string(text), at: Date())
                    }
                    lock.lock()
                    lines.append(received)
                    rawLines.append(text)
                    lock.broadcast()
                    lock.unlock()
                }
                scanFrom = pending.count
            }
            lock.lock()
            eof = true
            lock.broadcast()
            lock.unlock()
        }
    }

    deinit {
        if process.isRunning { process.terminate() }
    }

    /// Writes a line to the runner. A runner that already exited (EPIPE) is what the test then sees in the
    /// answers; Foundation's non-throwing `write(_:)` would trap the whole test process instead.
    package func send(_ text: String) {
        try? stdin.fileHandleForWriting.write(contentsOf: Data((text + "\n").utf8))
    }

    /// Writes raw bytes to the runner (see `send(_:)`).
    package func send(bytes: [UInt8]) {
        try? stdin.fileHandleForWriting.write(contentsOf: Data(bytes))
    }

    package func sendCommand(
        _ id: String,
        _ type: String,
        timeout: Int = 30,
        params: [String: Any],
        extra: [String: Any] = [:]
    ) {
        var data: [String: Any] = ["id": id, "type": type, "timeout": timeout, "params": params]
        for (k, v) in extra { data[k] = v }
        let object: [String: Any] = ["type": "CMD", "data": data]
        let json = try! JSONSerialization.data(withJSONObject: object)
        send(String(decoding: json, as: UTF8.self))
    }

    /// The bytes of a CMD line (with its `\n`).
    package static func commandLine(
        _ id: String,
        _ type: String,
        timeout: Int = 30,
        params: [String: Any],
        extra: [String: Any] = [:]
    ) -> [UInt8] {
        var data: [String: Any] = ["id": id, "type": type, "timeout": timeout, "params": params]
        for (k, v) in extra { data[k] = v }
        let json = try! JSONSerialization.data(withJSONObject: ["type": "CMD", "data": data])
        return [UInt8](json) + [0x0A]
    }

    package func closeStdin() {
        try? stdin.fileHandleForWriting.close()
    }

    /// Waits for the next line (in order).
    private var cursor = 0
    package func next(timeout: TimeInterval = 15) throws -> Received {
        let deadline = Date().addingTimeInterval(timeout)
        lock.lock()
        defer { lock.unlock() }
        while cursor >= lines.count {
            if eof {
                throw TestFailure(
                    "runner closed stdout after \(lines.count) lines; \(exitText()); stderr: \(stderrText())"
                )
            }
            if !lock.wait(until: deadline) { throw TestFailure("no line from the runner within \(timeout)s") }
        }
        cursor += 1
        return lines[cursor - 1]
    }

    /// Waits for the next line of `type`, skipping others (e.g. EVENTs).
    package func next(_ type: MessageType, timeout: TimeInterval = 15) throws -> Received {
        while true {
            let r = try next(timeout: timeout)
            if r.type == type { return r }
        }
    }

    /// The next DONE or ERROR.
    package func answer(timeout: TimeInterval = 15) throws -> Received {
        while true {
            let r = try next(timeout: timeout)
            if r.type == .done || r.type == .error { return r }
        }
    }

    package var allRawLines: [String] {
        lock.lock()
        defer { lock.unlock() }
        return rawLines
    }

    /// How the runner ended, waiting up to a second for it: a trap or a kill says more than an empty stderr.
    private func exitText() -> String {
        for _ in 0..<100 where process.isRunning { usleep(10_000) }
        if process.isRunning { return "still running" }
        let how = process.terminationReason == .uncaughtSignal ? "killed by signal" : "exit status"
        return "\(how) \(process.terminationStatus)"
    }

    package func waitForExit(timeout: TimeInterval = 15) throws -> Int32 {
        guard let status = process.exitStatus(within: timeout) else {
            throw TestFailure("runner still running after \(timeout)s")
        }
        return status
    }

    package func stderrText() -> String {
        String(decoding: (try? stderr.fileHandleForReading.readToEnd()) ?? Data(), as: UTF8.self)
    }
}

/// Whether any process with `marker` in its command line still runs.
package func processRunning(withMarker marker: String) -> Bool {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    for pid in entries where Int(pid) != nil {
        guard let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { continue }
        let text = String(decoding: cmdline.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
        if text.contains(marker) && !text.contains("pgrep") {
            // A zombie is gone for our purposes only once reaped; count anything that is not a zombie.
            if let pid = Int32(pid), procStat(pid)?.first == "Z" { continue }
            return true
        }
    }
    return false
}

/// The fields of /proc/PID/stat after the parenthesised command name (state first, then the parent's pid, ...);
/// nil once the process is gone.
package func procStat(_ pid: Int32) -> [Substring]? {
    guard let stat = FileManager.default.contents(atPath: "/proc/\(pid)/stat") else { return nil }
    let text = String(decoding: stat, as: UTF8.self)
    guard let close = text.lastIndex(of: ")") else { return nil }
    return text[text.index(after: close)...].split(separator: " ")
}

/// Starts `argv` as a shell would, with no signal blocked: Foundation's Process starts children with every
/// signal blocked, so a SIGINT or SIGTERM a test sends would otherwise never arrive.
package func startWithSignalsUnblocked(
    _ argv: [String],
    environment: [String: String] = [:],
    configure: (Process) -> Void = { _ in }
) throws -> Process {
    let p = Process()
    p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
    p.arguments =
        [
            "-c",
            "import os, signal, sys; signal.pthread_sigmask(signal.SIG_SETMASK, []); os.execv(sys.argv[1], sys.argv[1:])",
        ] + argv
    configure(p)
    try p.run()
    return p
}

/// A unique marker for `sleep` durations so tests can find their own processes.
package func uniqueSleep(_ base: Int) -> String {
    "\(base).\(Int.random(in: 100_000...999_999))"
}

/// Runs a shell command; its stdout and stderr together.
@discardableResult
package func shell(_ command: String) -> (status: Int32, output: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/sh")
    p.arguments = ["-c", command]
    let out = Pipe()
    p.standardOutput = out
    p.standardError = out
    try? p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// Makes sure a local test user exists, with its home owned by it, `loginShell`, and unlocked for key logins
/// (password `*`: no password works). Tests run in parallel, and useradd/usermod refuse to run while another
/// holds /etc/passwd's lock; a fresh-clone run once ended with a user recreated under a new uid beside a home
/// still owned by the old one (the bootstrap could not create ~/.cache). So every test creates its users
/// through here: one at a time (flock), retried, and the home given back to its owner.
@discardableResult
package func ensureTestUser(_ name: String, loginShell: String = "/bin/sh") -> Bool {
    let script = """
        for i in 1 2 3 4 5 6 7 8 9 10; do
            id -u \(name) >/dev/null 2>&1 || useradd --create-home --shell \(loginShell) \(name)
            usermod -p '*' --shell \(loginShell) \(name) && break
            sleep 0.2
        done
        home=$(getent passwd \(name) | cut -d: -f6)
        [ -n "$home" ] || exit 1
        mkdir -p "$home"
        [ "$(stat -c %u "$home")" = "$(id -u \(name))" ] || chown -R \(name): "$home"
        """
    return shell("flock /run/lock/mr-test-users.lock sh -c \(shellQuoted(script))").status == 0
}

/// `s` as one sh word.
package func shellQuoted(_ s: String) -> String {
    "'" + s.replacingOccurrences(of: "'", with: #"'\''"#) + "'"
}

extension Process {
    /// The exit status (or the ending signal's number, as `terminationStatus`) as soon as the kernel has it, or
    /// `nil` after `timeout` seconds. Not `isRunning` or `waitUntilExit()` alone: Foundation learns of the end
    /// through a socket the child inherited, and a process another test forks at that moment inherits it too and
    /// holds it up while it lives (an sshd fixture: 20-30 s; mr_test_peek_exit says more).
    package func exitStatus(within timeout: TimeInterval) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        var status: Int32 = 0
        while isRunning {
            if mr_test_peek_exit(processIdentifier, &status) == 1 { return status }
            if Date() > deadline { return nil }
            usleep(5_000)
        }
        return terminationStatus
    }
}
