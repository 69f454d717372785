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
