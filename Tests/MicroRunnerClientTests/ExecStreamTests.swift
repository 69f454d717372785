import Foundation
import MicroRunnerClient
import MicroRunnerProtocol
import MicroRunnerTestSupport
import Testing

/// `execStream`: output as an AsyncSequence per command, through the library alone.
@Suite(.serialized) struct ExecStreamTests {
    @Test func linesComeTypedAndTheResultEndsTheSequence() async throws {
        let runner = try RunnerBinary(path: runnerPath)
        let pieces = try await RunnerClient.withRunner(transport: LocalTransport(), runner: runner) { client in
            var pieces: [ExecOutput] = []
            let stream = await client.execStream(
                ExecParams(command: "for i in 1 2; do echo out$i; echo err$i >&2; done; exit 4")
            )
            for try await piece in stream { pieces.append(piece) }
            return pieces
        }
        #expect(pieces.filter { if case .stdout = $0 { true } else { false } } == [.stdout("out1"), .stdout("out2")])
        #expect(pieces.filter { if case .stderr = $0 { true } else { false } } == [.stderr("err1"), .stderr("err2")])
        guard case .finished(let result)? = pieces.last else {
            Issue.record("no result at the end: \(pieces)")
            return
        }
        #expect(result.exitCode == 4)
    }

    /// 20,000 lines from our runner: every line arrives, in order, on its stream, in far fewer EVENTs than
    /// lines (the runner batches what one pipe read brought), each EVENT a whole number of lines.
    @Test func batchedLinesArriveWholeAndInOrder() async throws {
        let runner = try RunnerBinary(path: runnerPath)
        final class Seen: @unchecked Sendable {
            let lock = NSLock()
            var events = 0
            var out: [String] = []
            var err: [String] = []
        }
        let seen = Seen()
        let (result, pieces) = try await RunnerClient.withRunner(transport: LocalTransport(), runner: runner) {
            client in
            let params = ExecParams(command: "seq 1 20000; echo last >&2", streamBatch: true)
            let result = try await client.exec(params) { event in
                seen.lock.withLock {
                    seen.events += 1
                    if event.metadata?["stream"] == "stderr" {
                        seen.err += event.lines
                    } else {
                        seen.out += event.lines
                    }
                }
            }
            var pieces: [String] = []
            for try await piece in await client.execStream(ExecParams(command: "seq 1 20000")) {
                if case .stdout(let line) = piece { pieces.append(line) }
            }
            return (result, pieces)
        }
        let expected = (1...20000).map(String.init)
        #expect(result.exitCode == 0)
        #expect(seen.out == expected)
        #expect(seen.err == ["last"])
        #expect(seen.events < 2000, "\(seen.events) EVENTs for 20,001 lines")
        #expect(pieces == expected, "execStream gives one piece per line")
    }

    /// Leaving the loop early stops the command on the host.
    @Test func leavingTheLoopStopsTheCommand() async throws {
        let runner = try RunnerBinary(path: runnerPath)
        let marker = uniqueSleep(41)
        try await RunnerClient.withRunner(transport: LocalTransport(), runner: runner) { client in
            let stream = await client.execStream(ExecParams(command: "echo started; sleep \(marker)"))
            for try await piece in stream {
                if case .stdout("started") = piece { break }
            }
            // The command is gone within a few seconds, while the session is still open.
            var running = true
            for _ in 0..<100 where running {
                running = processRunning(withMarker: "sleep \(marker)")
                if running { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(!running, "the command was stopped")
        }
    }
}
