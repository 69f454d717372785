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
            // Pipelined, the meaning is the same as one at a time: the runner itself skips what follows a failure.
            let results = try await client.execBatch(
                lines.map { ExecParams(command: $0, captureOut: true, captureErr: true) },
                stopOnFailure: !keepGoing,
                pipelined: pipeline,
                timeout: .seconds(timeout)
            )
            var text: [String] = []
            var failed = 0
            var json: [JSONValue] = []
            for (line, result) in zip(lines, results) {
                switch result {
                case .success(let r):
                    if r.exitCode != 0 { failed += 1 }
                    text.append(
                        "$ \(line)  [rc=\(r.exitCode)]"
                            + (r.stdout.isEmpty ? "" : "\n" + r.stdout.trimmingCharacters(in: .newlines))
                    )
                    json.append(WireEncoder().encodeToValue(r))
                case .failure(let e):
                    failed += 1
                    text.append("$ \(line)  [\(e.code): \(e.error.message)]")
                    json.append(WireEncoder().encodeToValue(e.error))
                }
            }
            return HostReport(
                ok: failed == 0 && results.count == lines.count,
                changed: nil,
                result: .array(json),
                text: text.joined(separator: "\n"),
                summary: "\(results.count)/\(lines.count) commands, \(failed) failed"
            )
        }
    }
}
