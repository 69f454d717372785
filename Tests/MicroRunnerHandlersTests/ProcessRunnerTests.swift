import Foundation
import MicroRunnerHandlers
import MicroRunnerProtocol
import MicroRunnerSystem
import MicroRunnerTestSupport
import Testing

@Suite(.serialized) struct ProcessRunnerTests {
    @Test func environmentOverridesAndAdds() throws {
        var spec = ProcessSpec(executable: "/bin/sh", arguments: ["sh", "-c", "echo \"$HOME|$MR_NEW|$PATH\""])
        spec.environment = ["HOME": "/override", "MR_NEW": "added"]
        let out = try ProcessRunner().run(spec)
        let text = String(decoding: out.stdout, as: UTF8.self)
        #expect(text.hasPrefix("/override|added|"))
        #expect(text.contains("/bin"))  // the rest of the environment is inherited
    }

    @Test func environmentPassesThroughWhenNothingIsOverridden() throws {
        let spec = ProcessSpec(executable: "/usr/bin/env", arguments: ["env"])
        let out = try ProcessRunner().run(spec)
        let lines = String(decoding: out.stdout, as: UTF8.self).split(separator: "\n")
        #expect(lines.contains { $0.hasPrefix("PATH=") })
    }

    @Test func streamsLongLinesInPieces() throws {
        final class Lines: @unchecked Sendable { var items: [[UInt8]] = [] }
        let lines = Lines()
        var spec = ProcessSpec(
            executable: "/bin/sh",
            arguments: ["sh", "-c", "head -c 10 /dev/zero | tr '\\0' x; echo; printf 'a\\r\\nb'"]
        )
        spec.maxLineBytes = 4
        spec.onLine = { _, line in lines.items.append(line) }
        _ = try ProcessRunner().run(spec)
        #expect(lines.items.map { String(decoding: $0, as: UTF8.self) } == ["xxxx", "xxxx", "xx", "a", "b"])
    }

    @Test func longLineArrivingInOneReadIsStillSplit() throws {
        final class Lines: @unchecked Sendable { var items: [[UInt8]] = [] }
        let lines = Lines()
        // One write, so the whole line lands in one read.
        var spec = ProcessSpec(executable: "/usr/bin/printf", arguments: ["printf", "xxxxxxxxxx\\nyy\\n"])
        spec.maxLineBytes = 4
        spec.onLine = { _, line in lines.items.append(line) }
        _ = try ProcessRunner().run(spec)
        #expect(lines.items.map { String(decoding: $0, as: UTF8.self) } == ["xxxx", "xxxx", "xx", "yy"])
    }

    @Test func deadlineAndCancellationStopTheGroup() throws {
        var spec = ProcessSpec(executable: "/bin/sh", arguments: ["sh", "-c", "sleep 30 | cat"])
        spec.deadline = Monotonic.now() + 200_000_000
        let out = try ProcessRunner().run(spec)
        #expect(out.stoppedBy == .deadline)
        #expect(out.signal == SIGTERM)
        #expect(out.exitCode == -1)

        let token = CancellationToken()
        var spec2 = ProcessSpec(executable: "/bin/sleep", arguments: ["sleep", "30"])
        spec2.cancellation = token
        token.cancel(.cancelled)
        let out2 = try ProcessRunner().run(spec2)
        #expect(out2.stoppedBy == .token(.cancelled))
    }

    @Test func spawnErrorsAreTyped() {
        #expect(throws: RunnerError.self) {
            try ProcessRunner().run(ProcessSpec(executable: "/no/such/binary", arguments: ["x"]))
        }
        do {
            _ = try ProcessRunner().run(ProcessSpec(executable: "/etc/passwd", arguments: ["x"]))
            Issue.record("ran a non-executable")
        } catch {
            #expect(error.code == .permissionDenied)
        }
    }
}
