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
