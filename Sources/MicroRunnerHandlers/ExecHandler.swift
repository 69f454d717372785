import MicroRunnerProtocol
import MicroRunnerSystem

/// `exec`: run a command directly (argv) or through a shell, with bounded, optionally streamed output.
package final class ExecHandler: CommandHandler {
    package var type: CommandType { .exec }

    /// Default cap on captured bytes per stream.
    package static let defaultMaxOutputBytes = 4 << 20
    /// Escaped bytes the stdout and stderr of one answer may take together, so the line stays under the
    /// Go client's 10 MiB decoder limit with room for the envelope.
    package static let answerBudget = 9 << 20

    package init() {}

    package func isAvailable(on host: Host) -> Bool { true }

    package func run(_ context: CommandContext) throws(RunnerError) -> JSONValue {
        let p = try context.params(ExecParams.self)
        if p.command.isEmpty { throw .invalid("exec: params.command is empty") }
        if let m = p.maxOutputBytes, m < 0 { throw .invalid("exec: params.max_output_bytes must be >= 0") }
        // A key with "=" would set another variable ("A=B" + "x" is A with value "B=x"); an empty key is no name.
        for key in p.env.keys.sorted() where key.isEmpty || key.utf8.contains(0x3D) || key.utf8.contains(0) {
            throw .invalid("exec: env key \"\(key)\" is not a variable name (it is empty or holds \"=\")")
        }

        // A dry run never runs a command: its effects cannot be predicted (PROTOCOL.md; Ansible's check mode
        // skips shell and command tasks the same way). Everything above was still checked.
        if context.command.dryRun {
            return encodeResult(ExecResult(exitCode: 0, stdout: "", stderr: "", duration: 0, skipped: true))
        }
        var executable: String
        var argv: [String]
        if !p.args.isEmpty {
            let path = p.env["PATH"] ?? context.host.searchPath
            guard let resolved = ProcessRunner.resolveExecutable(p.command, path: path) else {
                throw RunnerError(.notFound, "exec: \(p.command): executable not found in PATH")
            }
            executable = resolved
            argv = [p.command] + p.args
        } else {
            executable = p.shell.isEmpty ? "/bin/sh" : p.shell
            argv = [executable, "-c", p.command]
        }

        var stdin: [UInt8]? = p.stdin.map { Array($0.utf8) }
        if p.useSudo && context.host.effectiveUID != 0 {
            guard let sudo = context.host.which("sudo") else {
                throw RunnerError(.notFound, "exec: use_sudo is set but sudo is not installed on this host")
            }
            if p.args.isEmpty && Self.isPOSIXShell(executable) {
                // A runner that is not root cannot signal the root processes sudo starts (EPERM): its TERM and
                // KILL reach sudo alone, which relays TERM to its child and dies on KILL, leaving the command's own
                // children running as root. So the shell form runs under a root-side wrapper that, when sudo
                // relays the stop, does what the runner would: TERM to the whole group, KILL 0.5 s later.
                argv = [executable, "-c", Self.sudoGroupStopper, executable, p.command]
            }
            if p.sudoPassword.isEmpty {
                argv = [sudo, "-n", "--"] + [executable] + argv.dropFirst()
            } else {
                // -S reads the password from stdin; -p '' keeps the prompt out of stderr; -k ignores credentials
                // sudo cached from an earlier command of this runner, so the password given is really checked.
                argv = [sudo, "-k", "-S", "-p", "", "--"] + [executable] + argv.dropFirst()
                stdin = Array((p.sudoPassword + "\n").utf8) + (stdin ?? [])
            }
            executable = sudo
        }

        var spec = ProcessSpec(executable: executable, arguments: argv)
        spec.environment = p.env
        spec.workingDirectory = p.workDir
        spec.standardInput = stdin
        spec.captureOutput = p.captureOut
        spec.captureError = p.captureErr
        spec.maxOutputBytes =
            p.maxOutputBytes.map { $0 == 0 ? Self.defaultMaxOutputBytes : $0 } ?? Self.defaultMaxOutputBytes
        spec.deadline = context.deadline
        spec.ttlDeadline = context.ttlDeadline
        spec.cancellation = context.cancellation
        if p.streamLines {
            spec.onLine = context.lineEvents()
            spec.batchLines = p.streamBatch
        }
        let outcome = try context.host.processes.run(spec)
        let (stdout, stdoutCut) = Self.fit(outcome.stdout, budget: Self.answerBudget / 2)
        let (stderr, stderrCut) = Self.fit(outcome.stderr, budget: Self.answerBudget / 2)
        let result = ExecResult(
            exitCode: outcome.exitCode,
            stdout: stdout,
            stderr: stderr,
            duration: outcome.duration,
            signal: outcome.signal.map(signalName),
            stdoutTruncated: outcome.stdoutTruncated || stdoutCut,
            stderrTruncated: outcome.stderrTruncated || stderrCut
        )
        if let stoppedBy = outcome.stoppedBy {
            let details = result.stoppedDetails
            switch stoppedBy {
            case .deadline:
                throw RunnerError(
                    .timeout,
                    "exec: \(p.command): stopped after \(context.command.timeout)s timeout (process group terminated)",
                    details: details,
                    retryable: true
                )
            case .token(let reason):
                throw stopError(reason, what: "exec: \(p.command)", details: details)
            }
        }
        return encodeResult(result)
    }

    /// Run as `SHELL -c STOPPER SHELL COMMAND` under sudo: COMMAND runs as a child (stdin kept), and a stop
    /// relayed by sudo (TERM, INT, HUP) ends the whole root-side process group: TERM, then KILL after 0.5 s,
    /// the runner's own schedule. The command's exit status is passed through. (stdin goes through fd 3: a
    /// background job's stdin is /dev/null in dash unless redirected from another descriptor.)
    static let sudoGroupStopper =
        #"trap 'trap "" TERM INT HUP; kill -TERM 0; sleep 0.5; kill -KILL 0' TERM INT HUP; exec 3<&0; "$0" -c "$1" 0<&3 3<&- & exec 3<&-; wait $!"#

    /// Shells that understand the POSIX `trap`/`wait` syntax of `sudoGroupStopper`.
    static func isPOSIXShell(_ path: String) -> Bool {
        let name = Array(path.utf8).split(separator: 0x2F).last.map { String(decoding: $0, as: UTF8.self) } ?? ""
        return ["sh", "dash", "bash", "ash", "ksh", "zsh"].contains(name)
    }

    /// Output as a string (invalid UTF-8 repaired) cut to fit `budget` escaped bytes.
    static func fit(_ bytes: [UInt8], budget: Int) -> (String, Bool) {
        var text = String(decoding: bytes, as: UTF8.self)
        var utf8 = Array(text.utf8)
        let keep = JSONWriter.prefixLength(of: utf8, fittingEscaped: budget)
        guard keep < utf8.count else { return (text, false) }
        utf8.removeSubrange(keep...)
        text = String(decoding: utf8, as: UTF8.self)
        return (text, true)
    }
}

/// The error for a command stopped by the runner for `reason`.
package func stopError(_ reason: StopReason, what: String, details: [String: String] = [:]) -> RunnerError {
    switch reason {
    case .cancelled:
        RunnerError(.cancelled, "\(what): cancelled by the controller", details: details)
    case .ttlExpired:
        RunnerError(.timeout, "\(what): stopped because the runner's TTL expired", details: details)
    case .shutdown:
        RunnerError(.cancelled, "\(what): stopped because the runner was told to exit", details: details)
    }
}
