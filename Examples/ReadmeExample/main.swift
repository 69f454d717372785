// The README's library example as a user writes it: an @main executable in Swift 6 mode, one import.
// scripts/test builds it (`swift build --product readme-example`); run it with hosts as arguments.
import MicroRunnerClient

@main
struct ReadmeExample {
    static func main() async throws {
        let runners = try RunnerSet(directory: RunnerSet.defaultDirectory())
        let runner = try runners.runner(for: RunnerSet.localArchitecture)
        let names = CommandLine.arguments.count > 1 ? Array(CommandLine.arguments.dropFirst()) : ["local"]
        let transports = try names.map { try HostSpec(parsing: $0).transport(runners: runners) }
        var outcomes: [HostOutcome<String>] = []
        await Fleet.run(transports, runner: runner, forks: 20) { client in
            let r = try await client.exec(ExecParams(command: "uptime")) { event in print(event.message) }
            _ = try await client.putFile(Array("hello\n".utf8), to: "/tmp/micro-runner-readme-example", mode: 0o644)
            return r.stdout
        } onOutcome: { outcome in
            outcomes.append(outcome)
        }
        for outcome in outcomes {
            switch outcome.result {
            case .success(let text): print("\(outcome.host): \(text)", terminator: "")
            case .failure(let error): print("\(outcome.host): failed: \(error)")
            }
        }
    }
}
