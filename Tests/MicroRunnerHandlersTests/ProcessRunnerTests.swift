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
        spec.onLine = { _, line in lines.items.append(Array(line)) }
        _ = try ProcessRunner().run(spec)
        #expect(lines.items.map { String(decoding: $0, as: UTF8.self) } == ["xxxx", "xxxx", "xx", "a", "b"])
    }

    @Test func longLineArrivingInOneReadIsStillSplit() throws {
        final class Lines: @unchecked Sendable { var items: [[UInt8]] = [] }
        let lines = Lines()
        // One write, so the whole line lands in one read.
        var spec = ProcessSpec(executable: "/usr/bin/printf", arguments: ["printf", "xxxxxxxxxx\\nyy\\n"])
        spec.maxLineBytes = 4
        spec.onLine = { _, line in lines.items.append(Array(line)) }
        _ = try ProcessRunner().run(spec)
        #expect(lines.items.map { String(decoding: $0, as: UTF8.self) } == ["xxxx", "xxxx", "xx", "yy"])
    }

    /// `batchLines`: the pieces of one read come in one call, joined by `\n`, and split back into exactly the
    /// pieces an unbatched run gives (the `\r` before a newline dropped, long lines in pieces, the last line
    /// without its newline); a flood comes in batches no larger than a read and a line piece.
    @Test func batchedLinesSplitIntoTheSamePieces() throws {
        final class Calls: @unchecked Sendable { var items: [[UInt8]] = [] }
        func run(_ script: String, batch: Bool, maxLineBytes: Int = 64 * 1024) throws -> [[UInt8]] {
            let calls = Calls()
            var spec = ProcessSpec(executable: "/bin/sh", arguments: ["sh", "-c", script])
            spec.maxLineBytes = maxLineBytes
            spec.batchLines = batch
            spec.onLine = { _, bytes in calls.items.append(Array(bytes)) }
            _ = try ProcessRunner().run(spec)
            return calls.items
        }
        let text = { (calls: [[UInt8]]) in calls.map { String(decoding: $0, as: UTF8.self) } }
        // One write: all of it in one read.
        let script = "printf 'a\\r\\nb\\n\\nxxxxxxxxxx\\nta'"
        let single = text(try run(script, batch: false, maxLineBytes: 4))
        let batched = text(try run(script, batch: true, maxLineBytes: 4))
        #expect(single == ["a", "b", "", "xxxx", "xxxx", "xx", "ta"])
        #expect(batched == ["a\nb\n\nxxxx\nxxxx\nxx", "ta"])
        #expect(
            batched.flatMap { $0.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) } == single
        )

        let flood = try run("seq 1 200000", batch: true)
        #expect(flood.allSatisfy { $0.count <= 16384 + 64 * 1024 }, "a batch is bounded by a read and a line")
        #expect(flood.count < 20000, "\(flood.count) calls for 200,000 lines")
        let lines = flood.flatMap { String(decoding: $0, as: UTF8.self).split(separator: "\n") }
        #expect(lines == (1...200000).map { Substring(String($0)) })
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
