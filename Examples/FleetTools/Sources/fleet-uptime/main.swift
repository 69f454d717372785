// `fleet-uptime [-F SSH_CONFIG] HOST...`: `uptime` on every host at once; one line per host, in the order they
// answer. Exit status as Ansible's: 4 when a host was unreachable, 2 when one failed, else 0.
import ExampleSupport
import Foundation
import MicroRunnerClient

@main
struct FleetUptime {
    static func main() async {
        let invocation = Invocation.parse(usage: "fleet-uptime [-F SSH_CONFIG] HOST...", count: 1...10_000)
        let runners = orExit { try invocation.runners() }
        let transports = orExit { try invocation.transports(invocation.arguments, runners: runners) }
        let runner = orExit { try runners.runner(for: RunnerSet.localArchitecture) }
        var status: Int32 = 0
        await Fleet.run(transports, runner: runner, forks: 20) {
            client in
            try await client.exec(ExecParams(command: "uptime")).stdout
        } onOutcome: { outcome in
            switch outcome.result {
            case .success(let text):
                print("\(safe(outcome.host)): \(safe(text.trimmingCharacters(in: .newlines)))")
            case .failure(let error):
                let (word, unreachable) = reason(error)
                print("\(safe(outcome.host)): \(word): \(safe("\(error)"))")
                status = unreachable ? 4 : max(status, 2)
            }
        }
        exit(status)
    }
}
