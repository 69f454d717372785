import ArgumentParser
import Foundation
import MicroRunnerClient
import MicroRunnerProtocol

struct Script: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a file of shell commands (one per line) in one runner session per host, in order.",
        discussion:
            "Stops at the first failing command unless --keep-going. Commands go out at once (one round trip) when the runner can stop at the first failure itself; the runner still runs them one at a time, in order."
    )
    @OptionGroup var global: GlobalOptions
    @Flag(
        inversion: .prefixedNo,
        help:
            "Send all commands at once (one round trip) when the runner can stop at the first failure by itself (run_if_succeeded); otherwise, and with --no-pipeline, one at a time."
    )
    var pipeline = true
    @Flag(help: "Run every command even after one failed.") var keepGoing = false
    @Argument(help: "The file, or - for stdin. Blank lines and lines starting with # are skipped.") var file: String

    func run() async throws {
        let data =
            file == "-" ? FileHandle.standardInput.readDataToEndOfFile() : FileManager.default.contents(atPath: file)
        guard let data else { throw ValidationError("cannot read \(file)") }
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n").map {
            $0.trimmingCharacters(in: .whitespaces)
        }
        .filter { !$0.isEmpty && !$0.hasPrefix("#") }
        let (pipeline, keepGoing, timeout) = (self.pipeline, self.keepGoing, global.timeout)
        try await runOnHosts(global) { client in
            var commands: [CommandMessage] = []
            for line in lines {
                commands.append(
                    CommandMessage(
                        id: await client.makeID(),
                        type: .exec,
                        timeout: timeout,
                        params: WireEncoder().encodeToValue(
                            ExecParams(command: line, captureOut: true, captureErr: true)
                        )
                    )
                )
            }
            var answers: [Answer] = []
            // Pipelined, the meaning is the same as one at a time: the runner itself skips what follows a failure.
            let chains = await client.supports("run_if_succeeded")
            if pipeline && (keepGoing || chains) {
                answers = try await client.sendBatch(commands, stopOnFailure: !keepGoing)
            } else {
                for c in commands {
                    let a = try await client.send(c)
                    answers.append(a)
                    if a.failed && !keepGoing { break }
                }
            }
            var text: [String] = []
            var failed = 0
            for (line, answer) in zip(lines, answers) {
                switch answer {
                case .done(let d):
                    let r = try WireDecoder().decode(ExecResult.self, from: d.result)
                    if r.exitCode != 0 { failed += 1 }
                    text.append(
                        "$ \(line)  [rc=\(r.exitCode)]"
                            + (r.stdout.isEmpty ? "" : "\n" + r.stdout.trimmingCharacters(in: .newlines))
                    )
                case .error(let e):
                    failed += 1
                    text.append("$ \(line)  [\(e.code): \(e.message)]")
                }
            }
            let results = answers.map { a -> JSONValue in
                switch a {
                case .done(let d): return d.result
                case .error(let e): return WireEncoder().encodeToValue(e)
                }
            }
            return HostReport(
                ok: failed == 0 && answers.count == lines.count,
                changed: nil,
                result: .array(results),
                text: text.joined(separator: "\n"),
                summary: "\(answers.count)/\(lines.count) commands, \(failed) failed"
            )
        }
    }
}
