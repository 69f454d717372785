import Foundation
import MicroRunnerSystem
import MicroRunnerTestSupport
import Testing

/// The one spawn helper the runner, the client and the benchmark share, driven directly.
@Suite struct SpawnTests {
    /// Runs `script` with `/bin/sh -c` through `Spawn`, returning its stdout.
    func output(_ script: String, _ configure: (inout SpawnRequest) -> Void = { _ in }) throws -> String {
        var fds: [Int32] = [-1, -1]
        try #require(mr_pipe_cloexec(&fds) == 0)
        var request = SpawnRequest(executable: "/bin/sh", arguments: ["sh", "-c", script])
        request.standardOutput = .descriptor(fds[1])
        configure(&request)
        let pid: pid_t
        do { pid = try Spawn.start(request) } catch {
            close(fds[0])
            close(fds[1])
            throw error
        }
        close(fds[1])
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fds[0], $0.baseAddress, $0.count) }
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        close(fds[0])
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// SigIgn from /proc: whether SIGPIPE (bit 12) is ignored in the child.
    func childIgnoresSIGPIPE(_ configure: (inout SpawnRequest) -> Void) throws -> Bool {
        let line = try output("grep '^SigIgn:' /proc/self/status", configure)
        let mask = try #require(
            UInt64(line.split(separator: "\t").last?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "", radix: 16)
        )
        return mask & (1 << (UInt64(SIGPIPE) - 1)) != 0
    }

    @Test func signalsTheParentIgnoresAreResetOnlyWhenAsked() throws {
        // The test process ignores SIGPIPE (CTestSupport), as the runner and the client do.
        try #require(TestProcess.ignoresSIGPIPE)
        #expect(try childIgnoresSIGPIPE { _ in } == false)
        #expect(try childIgnoresSIGPIPE { $0.defaultSignals = [] })
    }

    @Test func environmentOverridesDirectoryAndProcessGroup() throws {
        let out = try output(#"printf '%s|%s|%s' "$MR_SPAWN_TEST" "$(pwd)" "$(ps -o pgid= -p $$ | tr -d ' ')""#) {
            $0.environment = ["MR_SPAWN_TEST": "set"]
            $0.workingDirectory = "/usr"
            $0.newProcessGroup = true
        }
        let parts = out.split(separator: "|").map(String.init)
        try #require(parts.count == 3, "\(out)")
        #expect(parts[0] == "set")
        #expect(parts[1] == "/usr")
        #expect(parts[2] != String(getpgrp()), "a process group of its own")
        #expect(try output("printf '%s' \"$HOME\"") == ProcessInfo.processInfo.environment["HOME"] ?? "")
    }

    @Test func aMissingExecutableIsAnErrorWithItsErrno() {
        var caught: SpawnError?
        do { _ = try Spawn.start(SpawnRequest(executable: "/nonexistent/x", arguments: ["x"])) } catch {
            caught = error
        }
        #expect(caught?.code == ENOENT)
        #expect(caught?.workingDirectoryUnsupported == false)
    }
}
