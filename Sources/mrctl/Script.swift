import ArgumentParser
import Foundation
import MicroRunnerClient
import MicroRunnerProtocol

struct Script: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a local script on the hosts, as one script (Ansible's script module).",
        discussion: """
            The file runs as one script on each host: cd, variables, if/fi and heredocs work as they do locally. \
            Its #! line names the interpreter (#!/usr/bin/env python3, #!/bin/bash); without one it runs under \
            /bin/sh. It is streamed to the host, put in a private temporary file there, run with the given \
            arguments, and removed. The host fails when the script exits non-zero; its output and stderr are shown. \
            --lines runs the file line by line instead, each line in its own shell, stopping at the first failure \
            unless --keep-going.
            """
    )
    @OptionGroup var global: GlobalOptions
    @Flag(help: "Run each line in its own shell, in order, one runner session per host (the old behaviour).")
    var lines = false
    @Flag(
        inversion: .prefixedNo,
        help:
            "With --lines: send all lines at once (one round trip) when the runner can stop at the first failure by itself (run_if_succeeded)."
    )
    var pipeline = true
    @Flag(help: "With --lines: run every line even after one failed.") var keepGoing = false
    @Flag(help: "Print output lines as they come (one host: live; many: prefixed).") var stream = false
    @Argument(help: "The file, or - for stdin.") var file: String
    @Argument(parsing: .postTerminator, help: "Arguments for the script, after --.") var arguments: [String] = []

    func run() async throws {
        let data =
            file == "-" ? FileHandle.standardInput.readDataToEndOfFile() : FileManager.default.contents(atPath: file)
        guard let data else { throw ValidationError("cannot read \(file)") }
        let text = String(decoding: data, as: UTF8.self)
        let arguments = self.arguments
        if lines {
            guard arguments.isEmpty else { throw ValidationError("--lines takes no script arguments") }
            try await runLines(text)
        } else {
            try await runWhole(text, arguments: arguments)
        }
    }

    /// The interpreter argv of a script's `#!` line (`#!/usr/bin/env python3` -> `/usr/bin/env`, `python3`; the
    /// kernel passes everything after the program as one argument, and so does this), or `/bin/sh`.
    static func interpreter(of text: String) -> [String] {
        guard text.hasPrefix("#!"), let end = text.firstIndex(of: "\n") else { return ["/bin/sh"] }
        let line = text[text.index(text.startIndex, offsetBy: 2)..<end].trimmingCharacters(in: .whitespaces)
        guard let space = line.firstIndex(where: { $0 == " " || $0 == "\t" }) else {
            return line.isEmpty ? ["/bin/sh"] : [line]
        }
        let program = String(line[..<space])
        let argument = line[space...].trimmingCharacters(in: .whitespaces)
        return argument.isEmpty ? [program] : [program, argument]
    }

    func runWhole(_ text: String, arguments: [String]) async throws {
        let interpreter = Self.interpreter(of: text)
        var params = ExecParams(command: "/bin/sh")
        // argv: sh -c BODY mrctl-script COUNT INTERPRETER... ARGS... ; BODY splits them again.
        params.args =
            ["-c", Self.body, "mrctl-script", String(interpreter.count)] + interpreter + arguments
        params.stdin = text
        params.captureOut = true
        params.captureErr = true
        params.streamLines = stream
        let p = params
        let (timeout, dryRun, live, raw) = (global.timeout, global.dryRun, stream && !global.json, global.raw)
        try await runOnHosts(global) { client in
            guard await client.supports("exec.stdin") else {
                throw ClientError(
                    .unsupported,
                    "script: the runner on \(client.hostName) cannot take a command's stdin (exec.stdin); use --lines"
                )
            }
            return try await execReport(client, p, timeout: timeout, dryRun: dryRun, live: live, raw: raw)
        }
    }

    /// The host side, run as `sh -c BODY mrctl-script N INTERPRETER(N words) ARGS...`: stdin (the script) goes to a
    /// private temporary file (0600, in $TMPDIR or /tmp), removed on every exit; the file is run through its
    /// interpreter (so a noexec /tmp does not matter) with the script's arguments, its stdin /dev/null.
    static let body = [
        "umask 077",
        #"f=$(mktemp "${TMPDIR:-/tmp}/mrctl-script.XXXXXXXX") || exit 125"#,
        #"trap 'rm -f "$f"' EXIT"#,
        "trap 'exit 129' HUP",
        "trap 'exit 130' INT",
        "trap 'exit 143' TERM",
        #"cat > "$f" || exit 125"#,
        // The interpreter's words first, then the file, then the script's arguments: rotate "$@" once.
        #"n=$1; shift; i=0; for a in "$@"; do if [ $i -eq $n ]; then set -- "$@" "$f"; fi; set -- "$@" "$a"; shift; i=$((i + 1)); done"#,
        #"if [ $i -eq $n ]; then set -- "$@" "$f"; fi"#,
        #""$@" < /dev/null"#,
    ].joined(separator: "; ")

    func runLines(_ text: String) async throws {
        let lines = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
        let (pipeline, keepGoing, timeout, dryRun) = (self.pipeline, self.keepGoing, global.timeout, global.dryRun)
        try await runOnHosts(global) { client in
            // Pipelined, the meaning is the same as one at a time: the runner itself skips what follows a failure.
            let results = try await client.execBatch(
                lines.map { ExecParams(command: $0, captureOut: true, captureErr: true) },
                stopOnFailure: !keepGoing,
                pipelined: pipeline,
                timeout: .seconds(timeout),
                dryRun: dryRun
            )
            var text: [String] = []
            var failed = 0
            var json: [JSONValue] = []
            for (line, result) in zip(lines, results) {
                switch result {
                case .success(let r):
                    if r.skipped == true {
                        text.append("$ \(line)  [skipped (dry run)]")
                    } else {
                        if r.exitCode != 0 { failed += 1 }
                        var shown = r.stdout.trimmingCharacters(in: .newlines)
                        // A failing line's stderr is what says why.
                        if r.exitCode != 0 && !r.stderr.isEmpty {
                            shown += (shown.isEmpty ? "" : "\n") + r.stderr.trimmingCharacters(in: .newlines)
                        }
                        text.append("$ \(line)  [rc=\(r.exitCode)]" + (shown.isEmpty ? "" : "\n" + shown))
                    }
                    json.append(WireEncoder().encodeToValue(r))
                case .failure(let e):
                    failed += 1
                    text.append("$ \(line)  [\(e.code): \(e.error.message)]")
                    json.append(WireEncoder().encodeToValue(e.error))
                }
            }
            return HostReport(
                ok: failed == 0 && results.count == lines.count,
                changed: dryRun ? false : nil,
                result: .array(json),
                text: text.joined(separator: "\n"),
                summary: dryRun
                    ? "\(lines.count) commands skipped (dry run)"
                    : "\(results.count)/\(lines.count) commands, \(failed) failed"
            )
        }
    }
}
