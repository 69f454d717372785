import ArgumentParser
import Foundation
import MicroRunnerClient
import MicroRunnerProtocol
import MicroRunnerSystem

struct Exec: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a command (through /bin/sh unless --argv).")
    @OptionGroup var global: GlobalOptions
    @Flag(help: "Run the words as argv directly (PATH lookup, no shell).") var argv = false
    @Flag(help: "The same as -b/--become: the whole runner runs as root through sudo.") var sudo = false
    @Flag(help: "Print output lines as they come (one host: live; many: prefixed).") var stream = false
    @Option(name: .customLong("env"), help: "KEY=VALUE added to the environment; repeatable.") var env: [String] = []
    @Option(name: .customLong("workdir"), help: "Working directory.") var workDir = ""
    // .remaining: options are options wherever they stand (`mrctl exec uptime -b -l web`); anything dash-led
    // that is no mrctl option is an error, never host text; after `--` every word is the command's.
    @Argument(parsing: .remaining, help: "The command and its arguments (after --, words may start with -).")
    var words: [String] = []

    func run() async throws {
        guard !self.words.isEmpty || global.listHosts else { throw ValidationError("give a command") }
        let words = self.words.isEmpty ? ["true"] : self.words
        var params = ExecParams(command: argv ? words[0] : words.joined(separator: " "))
        if argv { params.args = Array(words.dropFirst()) }
        params.workDir = workDir
        params.streamLines = stream
        for kv in env {
            guard let eq = kv.firstIndex(of: "=") else { throw ValidationError("--env needs KEY=VALUE: \(kv)") }
            params.env[String(kv[..<eq])] = String(kv[kv.index(after: eq)...])
        }
        let p = params
        let timeout = global.timeout
        let live = stream && !global.json
        let raw = global.raw
        let dryRun = global.dryRun
        var global = self.global
        if sudo { global.become = true }
        try await runOnHosts(global) { client in
            try await execReport(client, p, timeout: timeout, dryRun: dryRun, live: live, raw: raw)
        }
    }
}

/// One exec on one host as mrctl reports it (exec and script alike): lines printed as they come when `live`,
/// `skipped (dry run)` for a dry run, else the output with stderr after stdout and a notice when the runner cut
/// it.
func execReport(
    _ client: RunnerClient,
    _ p: ExecParams,
    timeout: Int,
    dryRun: Bool,
    live: Bool,
    raw: Bool
) async throws -> HostReport {
    let prefix = Array("[\(client.hostName)] ".utf8)
    let streamed = EventCount()
    // Events only when asked for (--stream): a handler makes the client ask the runner to stream.
    let showEvent: @Sendable (EventMessage) -> Void = { event in
        streamed.increment()
        if live { printPrefixed(raw ? event.message : TerminalText.visible(event.message), prefix: prefix) }
    }
    var p = p
    // Lines come several to an EVENT where the runner can (one per pipe read): 100 MB of 80-byte lines took
    // 14.8 s as 1.25 million EVENTs.
    p.streamBatch = p.streamLines
    let r = try await client.exec(
        p,
        timeout: .seconds(timeout),
        dryRun: dryRun,
        onEvent: p.streamLines ? showEvent : nil
    )
    if r.skipped == true {
        // As Ansible's check mode reports shell and command tasks: nothing ran.
        return HostReport(
            ok: true,
            changed: false,
            result: WireEncoder().encodeToValue(r),
            summary: "skipped (dry run)"
        )
    }
    var text = r.stdout
    if !r.stderr.isEmpty { text += (text.isEmpty || text.hasSuffix("\n") ? "" : "\n") + r.stderr }
    if text.hasSuffix("\n") { text.removeLast() }
    text += r.cutNotice
    return HostReport(
        ok: r.exitCode == 0,
        changed: nil,
        result: WireEncoder().encodeToValue(r),
        // A runner that does not stream (the Go original) sends no EVENTs: then print the output it returned
        // rather than nothing.
        text: live && streamed.value > 0 ? "" : text,
        summary: "rc=\(r.exitCode)" + (r.signal.map { " \($0)" } ?? "") + (r.cutNotice.isEmpty ? "" : " (output cut)")
    )
}

/// Prints each line of `text` (one or several, joined by `\n`) after `prefix`, in one `print`.
func printPrefixed(_ text: String, prefix: [UInt8]) {
    var out: [UInt8] = []
    var text = text
    text.withUTF8 { bytes in
        out.reserveCapacity(bytes.count + prefix.count * (1 + bytes.count / 40) + 1)
        var start = 0
        while true {
            let end = firstIndex(of: 0x0A, in: UnsafeRawBufferPointer(bytes), from: start) ?? bytes.count
            out.append(contentsOf: prefix)
            out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<end]))
            out.append(0x0A)
            guard end < bytes.count else { break }
            start = end + 1
        }
    }
    print(String(decoding: out, as: UTF8.self), terminator: "")
}

/// Counts EVENTs from the client's callback (which may run on another thread).
final class EventCount: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func increment() { lock.withLock { count += 1 } }
    var value: Int { lock.withLock { count } }
}
