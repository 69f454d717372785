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
