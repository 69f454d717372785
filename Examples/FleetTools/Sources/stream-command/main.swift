// `stream-command [-F SSH_CONFIG] [--timeout SECONDS] HOST COMMAND`: the command's output line by line as it
// comes (stdout to stdout, stderr to stderr), then its exit status as this program's. Ctrl-C stops the command
// and everything it started on the host, and exits 130.
import ExampleSupport
import Foundation
import MicroRunnerClient

@main
struct StreamCommand {
    static func main() async {
        let invocation = Invocation.parse(
            usage: "stream-command [-F SSH_CONFIG] [--timeout SECONDS] HOST COMMAND",
            count: 2...2
        )
        let runners = orExit { try invocation.runners() }
        let transport = orExit { try invocation.transports([invocation.arguments[0]], runners: runners)[0] }
        let runner = orExit { try runners.runner(for: RunnerSet.localArchitecture) }
        let command = ExecParams(command: invocation.arguments[1])
        let timeout = Duration.seconds(invocation.timeout ?? 300)

        // The work runs in its own task, so that a signal can cancel it: cancelling stops the command on the host
        // and ends the session (the runner removes itself).
        let work = Task {
            try await RunnerClient.withRunner(transport: transport, runner: runner) { client in
                var status: Int32 = 0
                for try await piece in await client.execStream(command, timeout: timeout) {
                    switch piece {
                    // Written at once, not through print's buffer: to a pipe, print would hold lines until exit.
                    case .stdout(let line): FileHandle.standardOutput.write(Data((safe(line) + "\n").utf8))
                    case .stderr(let line): FileHandle.standardError.write(Data((safe(line) + "\n").utf8))
                    case .finished(let result): status = Int32(truncatingIfNeeded: result.exitCode)
                    }
                }
                // Cancelled, the stream ends without its result: that is an interruption, not status 0.
                try Task.checkCancellation()
                return status
            }
        }
        let interrupts = Interrupts { _ in work.cancel() }
        defer { interrupts.stop() }
        do {
            exit(try await work.value)
        } catch {
            if let signal = interrupts.received { exit(128 + signal) }
            let (word, unreachable) = reason(error)
            FileHandle.standardError.write(
                Data("\(safe(invocation.arguments[0])): \(word): \(safe("\(error)"))\n".utf8)
            )
            exit(unreachable ? 4 : 1)
        }
    }
}
