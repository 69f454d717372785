import Foundation
import MicroRunnerClient
import MicroRunnerProtocol

/// What one host did, for people and for `--json`.
struct HostReport: Sendable {
    /// Whether the host did what was asked (an exec's non-zero exit is a failure here, as in Ansible).
    var ok: Bool
    /// Whether something changed on the host (`nil`: the command cannot tell, e.g. exec).
    var changed: Bool?
    /// The command's result.
    var result: JSONValue
    /// Text to show under the host line (stdout, a diff...).
    var text: String = ""
    /// A one-line summary.
    var summary: String = ""
}

extension ExecResult {
    /// What an exec's text shows after its output when the runner cut it: never a silent cut.
    var cutNotice: String {
        var cut: [String] = []
        if stdoutTruncated == true { cut.append("stdout") }
        if stderrTruncated == true { cut.append("stderr") }
        guard !cut.isEmpty else { return "" }
        return
            "\n[output cut: \(cut.joined(separator: " and ")) went past the runner's capture limit (4 MiB a stream); "
            + "--stream shows every line as it comes, or redirect the command's output to a file on the host]"
    }
}

/// Prints results as hosts finish: coloured lines and a progress line on a terminal, JSON lines otherwise.
final class Reporter: @unchecked Sendable {
    let json: Bool
    let color: Bool
    /// `--raw`: host-controlled text printed as it came (escape sequences and all).
    let raw: Bool
    /// `-o`: the host's text on its own line, newlines shown as `\n` (Ansible's one-line output).
    let oneLine: Bool
    let total: Int
    let progress: Bool
    var done = 0
    var ok = 0
    var changed = 0
    var failed = 0
    /// The hosts that failed, in the order they finished (the summary names them).
    var failedHosts: [String] = []
    /// Hosts that could not be reached or never started a runner (the exit status tells them apart).
    var unreachable = 0

    init(json: Bool, color: Bool, total: Int, raw: Bool = false, oneLine: Bool = false) {
        self.json = json
        self.raw = raw
        self.oneLine = oneLine
        self.color = color && !json && isatty(1) == 1 && ProcessInfo.processInfo.environment["NO_COLOR"] == nil
        self.total = total
        self.progress = !json && total > 1 && isatty(2) == 1
    }

    func paint(_ text: String, _ code: String) -> String { color ? "\u{1B}[\(code)m\(text)\u{1B}[0m" : text }

    /// Host-controlled text (output, messages, host names) as it may reach the terminal: control characters
    /// made visible unless `--raw` (`--json` is escaped by JSON itself).
    func shown(_ text: String) -> String { raw ? text : TerminalText.visible(text) }

    func report(_ outcome: HostOutcome<HostReport>) {
        done += 1
        let duration = (outcome.duration * 1000).rounded() / 1000
        var line: JSONObject = JSONObject([("host", .string(outcome.host))])
        switch outcome.result {
        case .success(let r):
            if r.ok {
                ok += 1
            } else {
                failed += 1
                failedHosts.append(outcome.host)
            }
            if r.changed == true { changed += 1 }
            line["ok"] = .bool(r.ok)
            if let c = r.changed { line["changed"] = .bool(c) }
            line["result"] = r.result
            if !json {
                let status =
                    !r.ok
                    ? paint("FAILED", "31;1") : r.changed == true ? paint("CHANGED", "33;1") : paint("OK", "32;1")
                clearProgress()
                var text = shown(r.text)
                if oneLine {
                    while text.hasSuffix("\n") { text.removeLast() }
                    let joined = text.isEmpty ? "" : " | " + text.replacingOccurrences(of: "\n", with: "\\n")
                    print("\(paint(shown(outcome.host), "1")) | \(status) | \(shown(r.summary))\(joined)")
                    text = ""
                } else {
                    print("\(paint(shown(outcome.host), "1"))  \(status)  \(shown(r.summary))  (\(duration)s)")
                }
                while text.hasSuffix("\n") { text.removeLast() }
                if !text.isEmpty {
                    print(
                        text.split(separator: "\n", omittingEmptySubsequences: false).map { "  " + $0 }.joined(
                            separator: "\n"
                        )
                    )
                }
            }
        case .failure(let error):
            failed += 1
            failedHosts.append(outcome.host)
            line["ok"] = .bool(false)
            var e = JSONObject()
            if let c = error as? CommandError {
                e["code"] = .string(c.code.rawValue)
                e["message"] = .string(c.error.message)
                if let d = c.error.details {
                    e["details"] = .object(JSONObject(d.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }))
                }
            } else if let c = error as? ClientError {
                // Unreachable: no connection, no runner in time, or the bootstrap could not start one (noexec,
                // no hash tool, a bad upload): the host never ran the command.
                if c.isUnreachable { unreachable += 1 }
                e["code"] = .string("CLIENT_\(c.kind.rawValue.uppercased())")
                e["message"] = .string(c.message)
            } else if error is CancellationError {
                e["code"] = .string("INTERRUPTED")
                e["message"] = .string("stopped by the interrupt: its command was ended and the runner removed")
            } else {
                e["code"] = .string("CLIENT_ERROR")
                e["message"] = .string("\(error)")
            }
            line["error"] = .object(e)
            if !json {
                clearProgress()
                print(
                    "\(paint(shown(outcome.host), "1"))  \(paint("FAILED", "31;1"))  \(shown(e["code"]!.stringValue!)): \(shown(e["message"]!.stringValue!))  (\(duration)s)"
                )
            }
        }
        line["duration"] = .number(String(duration))
        if json {
            print(String(decoding: JSONWriter.serialize(.object(line)), as: UTF8.self))
        }
        fflush(nil)
        if progress && done < total {
            FileHandle.standardError.write(Data("\r[\(done)/\(total)] \(ok) ok, \(failed) failed".utf8))
        }
    }

    func clearProgress() {
        if progress { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }

    func finish() {
        clearProgress()
        guard !json else { return }
        let hosts = total == 1 ? "1 host" : "\(total) hosts"
        print(
            "\(hosts): \(paint("\(ok) ok", "32")), \(paint("\(changed) changed", "33")), \(paint("\(failed) failed", failed > 0 ? "31;1" : "0"))"
        )
        if !failedHosts.isEmpty {
            // Named, so the next run can be pointed at them (`--host` each, or a file for --inventory).
            let names = failedHosts.prefix(20).map(shown).joined(separator: " ")
            let more = failedHosts.count > 20 ? " (and \(failedHosts.count - 20) more)" : ""
            print("failed: \(names)\(more)")
        }
    }
}
