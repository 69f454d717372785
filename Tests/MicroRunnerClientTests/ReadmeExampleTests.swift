import Foundation
import MicroRunnerClient
import MicroRunnerTestSupport
import Testing

/// The README's library example, compiled and run in Swift 6 mode as a user would write it (one import, outcomes
/// collected into a local array, a transport from a parsed host).
@Suite struct ReadmeExampleTests {
    @Test func fleetOutcomesCollectIntoALocalArray() async throws {
        let runner = try RunnerBinary(path: BuiltRunner.path)
        let transports = try ["local", "local"].map { try HostSpec(parsing: $0).transport() }
        var outcomes: [HostOutcome<String>] = []
        await Fleet.run(transports, runner: runner) { client in
            try await client.exec(ExecParams(command: "echo up")).stdout
        } onOutcome: { outcome in
            outcomes.append(outcome)
        }
        #expect(outcomes.count == 2)
        for outcome in outcomes { #expect((try? outcome.result.get()) == "up\n") }
    }
}

@Suite struct EventHandlerTests {
    final class Lines: @unchecked Sendable {
        var value: [String] = []
    }

    /// A handler for events is enough to get them: the caller need not also know to set `streamLines`.
    @Test func anEventHandlerGetsTheLinesWithoutStreamLines() async throws {
        let lines = Lines()
        let r = try await RunnerClient.withRunner(
            transport: LocalTransport(),
            runner: try RunnerBinary(path: BuiltRunner.path)
        ) {
            client in
            try await client.exec(ExecParams(command: "echo a; echo b")) { event in lines.value.append(event.message) }
        }
        #expect(r.stdout == "a\nb\n")
        #expect(lines.value == ["a", "b"])
    }
}

@Suite struct TypedBatchTests {
    /// Typed in, typed out: no wire messages built by hand; what a failure skipped says so.
    @Test func execBatchDecodesEachAnswer() async throws {
        let results = try await RunnerClient.withRunner(
            transport: LocalTransport(),
            runner: try RunnerBinary(path: BuiltRunner.path)
        ) { client in
            try await client.execBatch(
                [ExecParams(command: "echo one"), ExecParams(command: "exit 7"), ExecParams(command: "echo never")],
                stopOnFailure: true,
                timeout: .milliseconds(1500)
            )
        }
        #expect(results.count == 3)
        #expect((try? results[0].get())?.stdout == "one\n")
        #expect((try? results[1].get())?.exitCode == 7)
        if case .failure(let e) = results[2] {
            #expect(e.code == .cancelled)
        } else {
            Issue.record("ran after a failure")
        }
    }

    @Test(arguments: [
        (Duration.milliseconds(1500), 2), (.seconds(3), 3), (.zero, 1), (.seconds(Int64.max), 2_147_483_647),
    ])
    func durationsGoOutAsWholeSecondsRoundedUp(_ d: Duration, _ seconds: Int) {
        #expect(RunnerClient.wireSeconds(d) == seconds)
    }
}

@Suite struct FileModeTests {
    @Test(arguments: [("0644", 0o644), ("644", 0o644), ("4755", 0o4755), ("0", 0)])
    func octalTextParses(_ text: String, _ bits: Int) {
        #expect(FileMode(text)?.bits == bits)
    }

    @Test(arguments: ["", "0648", "rw-r--r--", "77777", "-1", "0x1A4"])
    func anythingElseIsRefusedBeforeSending(_ text: String) {
        #expect(FileMode(text) == nil)
    }

    @Test func theWireGetsFourDigits() {
        let mode: FileMode = 0o640
        #expect(mode.description == "0640")
        #expect(FileMode(bits: 0o10000) == nil)
    }
}

extension FileModeTests {
    @Test func mrctlRefusesABadModeLocally() throws {
        let run = try mrctl(["put", "--mode", "0648", "/etc/hostname", "/tmp/never-written"])
        #expect(run.status != 0)
        #expect(run.stderr.contains("--mode must be octal"), "\(run.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "/tmp/never-written"))
    }
}
