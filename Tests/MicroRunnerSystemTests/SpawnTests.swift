import Foundation
import MicroRunnerSystem
import MicroRunnerTestSupport
import Testing

/// The one spawn helper the runner, the client and the benchmark share, driven directly.
@Suite struct SpawnTests {
    /// Runs `script` with `/bin/sh -c` through `Spawn`, returning its stdout.
    func output(_ script: String, _ configure: (inout SpawnRequest) -> Void = { _ in }) throws -> String {
        var request = SpawnRequest(executable: "/bin/sh", arguments: ["sh", "-c", script])
        request.standardOutput = .pipe
        configure(&request)
        let spawned = try Spawn.start(request)
        let pid = spawned.pid
        let output = try #require(spawned.standardOutput)
        #expect(spawned.standardInput == nil && spawned.standardError == nil, "only the pipes asked for")
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        // EOF: Spawn closed the child's end in this process, so the child's exit ends the read.
        while true {
            let n = chunk.withUnsafeMutableBytes { read(output, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        close(output)
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

    /// A spawn that fails leaves no pipe open: 20 failed spawns with three pipes each would leak 120 descriptors;
    /// other suites running beside this one open and close a few, hence the margin.
    @Test func aFailedSpawnClosesThePipesItMade() throws {
        func openDescriptors() -> Int {
            (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
        }
        var request = SpawnRequest(executable: "/nonexistent/x", arguments: ["x"])
        (request.standardInput, request.standardOutput, request.standardError) = (.pipe, .pipe, .pipe)
        let before = openDescriptors()
        for _ in 0..<20 { _ = try? Spawn.start(request) }
        #expect(openDescriptors() - before < 20, "\(openDescriptors() - before) more descriptors open")
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
