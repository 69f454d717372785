import ArgumentParser
import Foundation
import MicroRunnerClient
import MicroRunnerProtocol

@main
struct Mrctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mrctl",
        abstract: "Run commands on hosts through micro-runner: agentless, over ssh, or on this machine.",
        subcommands: [
            Ping.self, Exec.self, Script.self, Keygen.self, Put.self, Read.self, Pkg.self, Service.self, Sudoers.self,
            SshdHarden.self,
        ]
    )
}

struct Ping: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start the runner and show READY: version and capabilities."
    )
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        try await runOnHosts(global) { client in
            let ready = await client.ready
            let caps = ready.capabilities.filter(\.value).keys.sorted().joined(separator: " ")
            return HostReport(
                ok: true,
                changed: false,
                result: try WireEncoder().encodeToValue(ready),
                summary: "micro-runner \(ready.version) \(ready.platform)/\(ready.arch): \(caps)"
            )
        }
    }
}

struct Exec: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a command (through /bin/sh unless --argv).")
    @OptionGroup var global: GlobalOptions
    @Flag(help: "Run the words as argv directly (PATH lookup, no shell).") var argv = false
    @Flag(help: "Run with sudo -n.") var sudo = false
    @Flag(help: "Print output lines as they come (one host: live; many: prefixed).") var stream = false
    @Option(name: .customLong("env"), help: "KEY=VALUE added to the environment; repeatable.") var env: [String] = []
    @Option(name: .customLong("workdir"), help: "Working directory.") var workDir = ""
    @Argument(parsing: .captureForPassthrough, help: "The command and its arguments.") var words: [String]

    func run() async throws {
        // The words are passed through as they are, so `--help` would otherwise run on the hosts; after `--`
        // it does (`mrctl exec -- --help`).
        if let first = self.words.first, first == "--help" || first == "-h" { throw CleanExit.helpRequest(self) }
        let words = self.words.first == "--" ? Array(self.words.dropFirst()) : self.words
        guard !words.isEmpty else { throw ValidationError("give a command") }
        var params = ExecParams(command: argv ? words[0] : words.joined(separator: " "))
        if argv { params.args = Array(words.dropFirst()) }
        params.useSudo = sudo
        params.workDir = workDir
        params.streamLines = stream
        for kv in env {
            guard let eq = kv.firstIndex(of: "=") else { throw ValidationError("--env needs KEY=VALUE: \(kv)") }
            params.env[String(kv[..<eq])] = String(kv[kv.index(after: eq)...])
        }
        let p = params
        let timeout = global.timeout
        let live = stream && !global.json
        try await runOnHosts(global) { client in
            let host = client.hostName
            let streamed = EventCount()
            let r = try await client.exec(p, timeout: timeout) { event in
                streamed.increment()
                if live { print("[\(host)] \(event.message)") }
            }
            var text = r.stdout
            if !r.stderr.isEmpty { text += (text.isEmpty || text.hasSuffix("\n") ? "" : "\n") + r.stderr }
            if text.hasSuffix("\n") { text.removeLast() }
            return HostReport(
                ok: r.exitCode == 0,
                changed: nil,
                result: try WireEncoder().encodeToValue(r),
                // A runner that does not stream (the Go original) sends no EVENTs: then print the output it
                // returned rather than nothing.
                text: live && streamed.value > 0 ? "" : text,
                summary: "rc=\(r.exitCode)" + (r.signal.map { " \($0)" } ?? "")
            )
        }
    }
}

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
                        params: try WireEncoder().encodeToValue(
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
            let results = try answers.map { a -> JSONValue in
                switch a {
                case .done(let d): return d.result
                case .error(let e): return try WireEncoder().encodeToValue(e)
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

/// Counts EVENTs from the client's callback (which may run on another thread).
final class EventCount: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func increment() { lock.withLock { count += 1 } }
    var value: Int { lock.withLock { count } }
}

struct Keygen: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make an Ed25519 key pair for signed commands: PATH (private, 0600) and PATH.pub."
    )
    @Argument(help: "Where to write the private key.") var path: String

    func run() throws {
        guard !FileManager.default.fileExists(atPath: path) else {
            throw ValidationError("\(path) exists; not overwriting")
        }
        let (priv, pub) = Ed25519Signer.generate()
        guard
            FileManager.default.createFile(
                atPath: path,
                contents: Data((priv + "\n").utf8),
                attributes: [.posixPermissions: 0o600]
            )
        else { throw ValidationError("cannot write \(path)") }
        try (pub + "\n").write(toFile: path + ".pub", atomically: true, encoding: .utf8)
        print("private key: \(path)\npublic key:  \(path).pub (\(pub))")
    }
}

struct Put: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Copy a local file to the hosts (atomic; unchanged files are not rewritten).",
        aliases: ["write"]
    )
    @OptionGroup var global: GlobalOptions
    @Option(help: "Octal mode, e.g. 0644.") var mode = ""
    @Option(help: "Owner (name or uid).") var owner = ""
    @Option(help: "Group (name or gid).") var group = ""
    @Flag(help: "Keep the old file as PATH.<time>~.") var backup = false
    @Argument(help: "Local file.") var source: String
    @Argument(help: "Absolute path on the host.") var destination: String

    func run() async throws {
        guard let data = FileManager.default.contents(atPath: source) else {
            throw ValidationError("cannot read \(source)")
        }
        let bytes = [UInt8](data)
        let (dest, mode, owner, group, backup, dryRun, timeout) = (
            destination, self.mode, self.owner, self.group, self.backup, global.dryRun, global.timeout
        )
        try await runOnHosts(global) { client in
            let r = try await client.putFile(
                bytes,
                to: dest,
                mode: mode,
                owner: owner,
                group: group,
                backup: backup,
                dryRun: dryRun,
                timeout: timeout
            )
            let changed = r.changed ?? true
            var summary = changed ? (dryRun ? "would write" : "wrote") + " \(bytes.count) bytes" : "unchanged"
            if let b = r.backupPath { summary += ", backup \(b)" }
            return HostReport(
                ok: true,
                changed: changed,
                result: try WireEncoder().encodeToValue(r),
                text: r.diff ?? "",
                summary: summary
            )
        }
    }
}

struct Read: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Read a file from the hosts.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "Absolute path on the host.") var path: String

    func run() async throws {
        let (path, timeout) = (self.path, global.timeout)
        try await runOnHosts(global) { client in
            let (bytes, meta) = try await client.getFile(path, timeout: timeout)
            let text = String(validating: bytes, as: UTF8.self) ?? "(\(bytes.count) bytes of binary content)"
            var result = try WireEncoder().encodeToValue(meta)
            if case .object(var o) = result {
                o["content"] = .string(Data(bytes).base64EncodedString())
                o["encoding"] = .string("base64")
                o["truncated"] = .bool(false)
                result = .object(o)
            }
            return HostReport(
                ok: true,
                changed: false,
                result: result,
                text: text.hasSuffix("\n") ? String(text.dropLast()) : text,
                summary: "\(bytes.count) bytes, mode \(meta.mode), uid \(meta.owner)"
            )
        }
    }
}

/// Shared shape of the system commands: run one typed command and report `changed`/`action`.
func runSystem<P: Encodable & Sendable, R: Decodable & Encodable & Sendable>(
    _ global: GlobalOptions,
    _ type: CommandType,
    _ params: P,
    _ result: R.Type,
    describe: @escaping @Sendable (R) -> (Bool, String)
) async throws {
    let (dryRun, timeout) = (global.dryRun, global.timeout)
    try await runOnHosts(global) { client in
        let r = try await client.run(type, params, as: R.self, timeout: timeout, dryRun: dryRun)
        let (changed, summary) = describe(r)
        return HostReport(ok: true, changed: changed, result: try WireEncoder().encodeToValue(r), summary: summary)
    }
}

struct Pkg: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Ensure a package is present, absent or latest.")
    @OptionGroup var global: GlobalOptions
    @Option(help: "present, absent or latest.") var state = "present"
    @Option(help: "Exact version.") var version = ""
    @Option(help: "apt, dnf, yum or zypper (default: detected).") var manager = ""
    @Argument(help: "Package name.") var name: String

    func run() async throws {
        let p = PkgEnsureParams(name: name, version: version, state: state, manager: manager)
        try await runSystem(global, .pkgEnsure, p, PkgEnsureResult.self) { r in
            (
                r.changed,
                "\(r.action) \(r.previousVersion.isEmpty ? "" : r.previousVersion + " -> ")\(r.installedVersion)"
            )
        }
    }
}

struct Service: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "reload, restart, start, stop, enable or disable a systemd unit."
    )
    @OptionGroup var global: GlobalOptions
    @Argument(help: "Unit name.") var name: String
    @Argument(help: "reload, restart, start, stop, enable or disable.") var action: String

    func run() async throws {
        try await runSystem(
            global,
            .serviceReload,
            ServiceReloadParams(name: name, action: action),
            ServiceReloadResult.self
        ) {
            r in (r.changed, "\(r.action): \(r.status)/\(r.subState), enabled \(r.enabled)")
        }
    }
}

struct Sudoers: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Ensure a validated sudoers rule for a user.")
    @OptionGroup var global: GlobalOptions
    @Flag(help: "No password needed.") var nopasswd = false
    @Option(help: "present or absent.") var state = "present"
    @Argument(help: "User name.") var user: String
    @Argument(help: "Absolute paths of allowed commands.") var commands: [String] = []

    func run() async throws {
        let p = SudoersEnsureParams(user: user, commands: commands, noPasswd: nopasswd, state: state)
        try await runSystem(global, .sudoersEnsure, p, SudoersEnsureResult.self) { r in
            (r.changed, "\(r.action) \(r.filePath)")
        }
    }
}

struct SshdHarden: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sshd-harden",
        abstract: "Harden sshd: validated, verified, rolled back on failure."
    )
    @OptionGroup var global: GlobalOptions
    @Flag(inversion: .prefixedNo, help: "Disable password authentication.") var passwordAuthOff = true
    @Flag(inversion: .prefixedNo, help: "Disable root login.") var rootLoginOff = true
    @Option(name: .customLong("allow-user"), help: "AllowUsers entry; repeatable.") var allowUsers: [String] = []
    @Option(help: "Port (0 keeps it).") var port = 0
    @Flag(inversion: .prefixedNo, help: "Open a connection to sshd afterwards.") var testConnection = true

    func run() async throws {
        let p = SshdHardenParams(
            disablePasswordAuth: passwordAuthOff,
            disableRootLogin: rootLoginOff,
            allowUsers: allowUsers,
            port: port,
            testConnection: testConnection
        )
        try await runSystem(global, .sshdHarden, p, SshdHardenResult.self) { r in
            (
                r.changed,
                r.changed ? "changed \(r.modifiedKeys.joined(separator: ",")), \(r.serviceAction)" : "already hardened"
            )
        }
    }
}
