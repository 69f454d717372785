import ArgumentParser
import Foundation
import MicroRunnerClient
import MicroRunnerInventory
import MicroRunnerProtocol

/// Options every subcommand shares: where to run, how to connect, how to report.
struct GlobalOptions: ParsableArguments {
    @Option(
        name: .customLong("host"),
        help:
            "A host (user@host:port, an ssh alias, 'local', or a container: docker:NAME, podman:NAME, nspawn:MACHINE, nsenter:PID, kubectl:[NS/]POD); repeatable."
    )
    var hosts: [String] = []

    @Option(
        name: [.short, .customLong("inventory")],
        help: "An Ansible inventory (INI or YAML, told apart by content) or a file with one host per line."
    )
    var inventory: String?

    @Option(
        name: [.short, .customLong("limit")],
        help: """
            Ansible host pattern over the inventory: names, groups, globs, ~regex, g[0], g[1:], a:b, a:&b, a:!b, \
            @file (default all).
            """
    )
    var limit: String?

    @Option(name: [.customShort("f"), .long], help: "How many hosts run at once.")
    var forks = 10

    @Option(
        name: [.customShort("u"), .customLong("user")],
        help: "Log in as this user where the host or inventory names none (Ansible's -u; ansible_user wins)."
    )
    var user: String?

    @Option(
        name: [.customShort("e"), .customLong("extra-vars")],
        help:
            "Variables for every host, winning over the inventory's: key=value pairs or a JSON object (ansible_* connection and become variables are used); repeatable."
    )
    var extraVars: [String] = []

    @Option(
        name: [.customShort("T"), .customLong("connect-timeout")],
        help: "Seconds to connect to a host (Ansible's -T; --timeout is the command's)."
    )
    var connectTimeout = 10

    @Flag(name: .customLong("list-hosts"), help: "List the hosts that would run, and run nothing.")
    var listHosts = false

    @Flag(name: [.customShort("o"), .customLong("one-line")], help: "One line per host (output joined with \\n).")
    var oneLine = false

    @Flag(
        name: [.customShort("D"), .customLong("diff")],
        help: "Show what changes in files (put shows a unified diff whenever the runner computed one)."
    )
    var diff = false

    @Flag(
        name: [.customLong("dry-run"), .customShort("C"), .customLong("check")],
        help: "Report what would change; change nothing (exec and script lines are skipped, as Ansible's --check does)."
    )
    var dryRun = false

    @Flag(help: "One JSON object per host on stdout.")
    var json = false

    @Option(
        help:
            "The runner binary to upload to every host (default: the one for each host's architecture from .build/runner, or $MICRO_RUNNER_DIR)."
    )
    var runner: String?

    @Option(help: "Seconds each command may take on the host.")
    var timeout = 300

    @Option(
        name: .customLong("start-timeout"),
        help: "Seconds a host may take to receive, start and answer the runner (READY), upload included."
    )
    var startTimeout = 60

    @Option(
        name: .customLong("remote-tmp"),
        help:
            "Directory on the host for the runner (default: $TMPDIR or /tmp, then ~/.cache/micro-runner when that is noexec)."
    )
    var remoteTmp: String?

    @Option(
        name: .customLong("persist"),
        help:
            "Keep each host's ssh connection, and the runner in its private directory there, this many seconds for later mrctl calls (in ~/.cache/micro-runner/cp); 0: one connection per call, nothing left on the host."
    )
    var persist = 60

    @Option(help: "The runner's lifetime (Go duration, e.g. 10m).")
    var ttl: String?

    @Option(name: .customLong("ssh-config"), help: "An ssh config file instead of ~/.ssh/config.")
    var sshConfig: String?

    @Option(name: [.customLong("identity"), .customLong("private-key")], help: "Private key for ssh.")
    var identity: String?

    @Option(name: .customLong("known-hosts"), help: "known_hosts file for ssh.")
    var knownHosts: String?

    @Option(name: .customLong("ssh-option"), help: "An extra ssh -o option (wins over mrctl's); repeatable.")
    var sshOptions: [String] = []

    @Flag(
        name: .customLong("accept-new-host-keys"),
        help: "Trust unknown host keys on first contact (changed keys are still refused)."
    )
    var acceptNewHostKeys = false

    @Flag(name: .customLong("insecure-no-host-key-check"), help: "Do not check host keys at all (insecure).")
    var insecureNoHostKeyCheck = false

    @Flag(name: .customLong("no-color"), help: "No colours.")
    var noColor = false

    @Flag(
        help:
            "Print hosts' output and messages as they came, escape sequences included (default: control characters shown as \\xHH)."
    )
    var raw = false

    @Option(
        name: .customLong("signing-key"),
        help: "Sign every command with this Ed25519 key (mrctl keygen); the runner then refuses unsigned ones."
    )
    var signingKey: String?

    @Option(name: .customLong("state-dir"), help: "Runner idempotency journal directory on the host (absolute).")
    var stateDir: String?

    @Flag(
        name: [.customShort("b"), .customLong("become")],
        help: "Run the whole runner as root (or --become-user) through sudo on every host (Ansible's become)."
    )
    var become = false

    @Option(name: .customLong("become-user"), help: "The user to become (default root); implies nothing without -b.")
    var becomeUser: String?

    @Option(name: .customLong("become-method"), help: "How to become: sudo (the only method offered).")
    var becomeMethod: String?

    @Flag(
        name: [.customShort("K"), .customLong("ask-become-pass")],
        help: "Ask once for sudo's password on the terminal; used for every host that becomes."
    )
    var askBecomePass = false

    func signer() throws -> Ed25519Signer? {
        try signingKey.map { try Ed25519Signer(keyFile: $0) }
    }

    /// Where to run: `--host` values, then the inventory's hosts that `--limit` selects; this machine when
    /// neither is given.
    func targets() throws -> [InventoryHost] {
        let extra = try Self.parseExtraVars(extraVars)
        var targets: [InventoryHost] = try hosts.map { text in
            let spec = try HostSpec(parsing: text)
            if spec.isLocal || extra.isEmpty { return InventoryHost(spec) }
            do { return try Inventory.resolve(text, variables: Inventory.canonical(extra)) } catch let error
                as Inventory.ParseError
            { throw ValidationError(error.description) }
        }
        if let inventory {
            do {
                targets += try Inventory(path: inventory).targets(limit ?? "all", extraVariables: extra)
            } catch let error as Inventory.ParseError {
                throw ValidationError(error.description)
            }
        } else if limit != nil {
            throw ValidationError("--limit selects from an inventory: give one with -i/--inventory")
        }
        if targets.isEmpty && inventory == nil { targets = [InventoryHost(HostSpec(host: "local"))] }
        // -u: the login for hosts that name none (Ansible: ansible_user and user@host win over -u).
        if let user {
            // Not for nsenter and kubectl, which cannot choose a user (Ansible's ignore remote_user too).
            for i in targets.indices
            where !targets[i].isLocal && targets[i].spec.user == nil
                && ![.nsenter, .kubectl].contains(targets[i].spec.container)
            {
                targets[i].spec.user = user
            }
        }
        return targets
    }

    /// `-e` values: `key=value` words (quotes group a value with spaces) or a JSON object of strings, numbers
    /// and booleans. `@FILE` is refused rather than read as a variable.
    static func parseExtraVars(_ values: [String]) throws -> [String: String] {
        var out: [String: String] = [:]
        for value in values {
            let text = value.trimmingCharacters(in: .whitespaces)
            if text.hasPrefix("@") { throw ValidationError("-e @FILE is not supported: give key=value or JSON") }
            if text.hasPrefix("{") {
                guard case .object(let object)? = try? JSONReader().parse(Array(text.utf8)) else {
                    throw ValidationError("-e: not a JSON object: \(text)")
                }
                for (key, v) in object.members {
                    switch v {
                    case .string(let s): out[key] = s
                    case .number(let n): out[key] = n
                    case .bool(let b): out[key] = b ? "true" : "false"
                    default: throw ValidationError("-e: \(key) must be a string, number or boolean")
                    }
                }
                continue
            }
            for word in try words(text) {
                guard let eq = word.firstIndex(of: "="), eq != word.startIndex else {
                    throw ValidationError("-e needs key=value (or a JSON object), not \(word)")
                }
                out[String(word[..<eq])] = String(word[word.index(after: eq)...])
            }
        }
        return out
    }

    /// Splits on spaces outside single or double quotes, removing the quotes (as Ansible's key=value parser).
    static func words(_ text: String) throws -> [String] {
        var words: [String] = []
        var current = ""
        var quote: Character?
        var inWord = false
        for c in text {
            if let q = quote {
                if c == q { quote = nil } else { current.append(c) }
            } else if c == "'" || c == "\"" {
                quote = c
                inWord = true
            } else if c == " " || c == "\t" {
                if inWord { words.append(current) }
                current = ""
                inWord = false
            } else {
                current.append(c)
                inWord = true
            }
        }
        if quote != nil { throw ValidationError("-e: unterminated quote in \(text)") }
        if inWord { words.append(current) }
        return words
    }

    func sshOptionsValue() -> SSHOptions {
        var o = SSHOptions()
        o.configFile = sshConfig
        o.identityFile = identity
        o.knownHostsFile = knownHosts
        o.extraOptions = sshOptions
        o.remoteDirectory = remoteTmp
        o.connectTimeout = connectTimeout
        if persist > 0, let dir = try? SSHOptions.persistentDirectory() {
            o.sharing = .persistent(directory: dir, persist: persist)
        }
        if acceptNewHostKeys { o.hostKeyChecking = .acceptNew }
        if insecureNoHostKeyCheck { o.hostKeyChecking = .insecureDisabled }
        return o
    }

    /// How each target becomes, or nil for none: the inventory's `ansible_become*` variables win over the
    /// command line, as Ansible's connection variables do; `-K`'s password wins over the inventory's.
    /// Refuses, before any host is contacted, a vault-encrypted password, an unsupported method or a bad user.
    func becomes(for targets: [InventoryHost]) throws -> [Become?] {
        var prompted: String?
        var result: [Become?] = []
        for target in targets {
            let wanted = target.becomeDeclared ? target.become : become
            guard wanted else {
                result.append(nil)
                continue
            }
            var password = target.becomePassword
            if askBecomePass {
                if prompted == nil { prompted = try Self.askPassword() }
                password = prompted
            } else if let p = password, Inventory.isVaultEncrypted(p) {
                throw ValidationError(
                    "\(target.name): ansible_become_password is vault-encrypted: decrypt it first or use -K"
                )
            }
            let b = Become(
                method: Become.Method(rawValue: target.becomeMethod ?? becomeMethod ?? "sudo"),
                user: target.becomeUser ?? becomeUser ?? "root",
                password: password
            )
            do { try b.check() } catch { throw ValidationError("\(target.name): \(error)") }
            result.append(b)
        }
        return result
    }

    /// Reads a password from the controlling terminal with echo off, as sudo and Ansible's -K do.
    static func askPassword() throws -> String {
        let fd = open("/dev/tty", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw ValidationError("-K/--ask-become-pass needs a terminal to ask on") }
        defer { close(fd) }
        var saved = termios()
        let hasTerminal = tcgetattr(fd, &saved) == 0
        if hasTerminal {
            var quiet = saved
            quiet.c_lflag &= ~tcflag_t(ECHO)
            tcsetattr(fd, TCSAFLUSH, &quiet)
        }
        defer { if hasTerminal { tcsetattr(fd, TCSAFLUSH, &saved) } }
        let prompt = Array("BECOME password: ".utf8)
        _ = write(fd, prompt, prompt.count)
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while read(fd, &byte, 1) == 1 && byte != 0x0A {
            if byte != 0x0D { line.append(byte) }
            if line.count > 1024 { break }
        }
        _ = write(fd, [0x0A], 1)
        return String(decoding: line, as: UTF8.self)
    }

    func runnerArguments(signer: Ed25519Signer?) throws -> [String] {
        var args: [String] = []
        // The runner's lifetime must outlast the longest command it is sent: with the default 10 minutes, a
        // command given --timeout 900 was killed at 600 s. So the TTL defaults to the timeout and a minute more
        // when that is longer, and a --ttl shorter than --timeout is refused.
        if let ttl {
            guard let seconds = GoDuration.parse(ttl) else {
                throw ValidationError("--ttl needs a duration like 10m or 90s, not \(ttl)")
            }
            if seconds < Double(timeout) {
                throw ValidationError("--ttl \(ttl) is shorter than --timeout \(timeout): the runner would end first")
            }
            args += ["--ttl", ttl]
        } else if timeout + 60 > 600 {
            args += ["--ttl", "\(timeout + 60)s"]
        }
        if let signer { args += ["--verify-key", signer.publicKeyBase64] }
        if let stateDir { args += ["--state-dir", stateDir] }
        return args
    }
}

/// Runs `body` on every host and reports: a line per host as it finishes, a summary, and the exit status.
func runOnHosts(
    _ options: GlobalOptions,
    _ body: @escaping @Sendable (RunnerClient) async throws -> HostReport
) async throws {
    // Multi-megabyte buffers (file chunks as base64 lines, outputs) from mmap, returned to the kernel when freed:
    // glibc's sliding mmap threshold otherwise moves them into a heap that does not shrink (the runner does
    // the same at start).
    LargeBuffers.returnToTheKernelWhenFreed()
    let targets = try options.targets()
    if options.listHosts {
        // As Ansible's --list-hosts: what would run, and nothing runs.
        print("  hosts (\(targets.count)):")
        for t in targets { print("    \(TerminalText.visible(t.name))") }
        return
    }
    // --runner: that binary for every host. Otherwise the set scripts/build-runner made, and each host gets the
    // runner for its own architecture.
    let runners: RunnerSet? = options.runner == nil ? try? RunnerSet(directory: RunnerSet.defaultDirectory()) : nil
    let runner =
        try runners?.runners[RunnerSet.localArchitecture] ?? runners?.runners.values.first
        ?? RunnerBinary(path: options.runner ?? RunnerBinary.defaultPath())
    var ssh = options.sshOptionsValue()
    // Nagle off from the first byte (mr-connect) only while the connections at once do not outnumber the cores:
    // it saves ~50 ms of waiting per connection and costs ~8 ms of CPU (ssh -G, a shell, the helper). 50 hosts
    // at once on 2 cores: 1.7-1.9 s without it, 2.2-2.4 s with it (the waits overlap, the CPU does not).
    if min(options.forks, targets.count) <= ProcessInfo.processInfo.activeProcessorCount {
        ssh.connectHelper = RunnerSet.connectHelperBesideExecutable()
    }
    // Become: the whole runner of that host runs as the target user (refused here, before any connection, when
    // it cannot work: a vault-encrypted password, another method than sudo).
    let becomes = try options.becomes(for: targets)
    let transports: [any Transport] = zip(targets, becomes).map { target, become in
        if target.isLocal { return LocalTransport(name: target.name, become: become) }
        var o = ssh
        if let key = target.identityFile, options.identity == nil { o.identityFile = key }
        o.become = become
        return target.spec.transport(options: o, runners: runners, name: target.name)
    }
    let hostBody = body
    let reporter = Reporter(
        json: options.json,
        color: !options.noColor,
        total: transports.count,
        raw: options.raw,
        oneLine: options.oneLine
    )
    let signer = try options.signer()
    var (arguments, forks) = (try options.runnerArguments(signer: signer), options.forks)
    // A soft limit of 256 descriptors once failed 19 of 100 hosts with "Too many open files": raise it, and
    // run fewer hosts at once (saying so) when even the hard limit is too small.
    let fileLimit = OpenFileLimit.raise()
    if min(forks, transports.count) > OpenFileLimit.maxForks(within: fileLimit) {
        forks = OpenFileLimit.maxForks(within: fileLimit)
        FileHandle.standardError.write(
            Data("mrctl: the open-file limit (\(fileLimit)) allows \(forks) hosts at once; --forks lowered\n".utf8)
        )
    }
    let startTimeout = options.startTimeout
    let fleet = Task {
        await Fleet.run(
            transports,
            runner: runner,
            arguments: arguments,
            forks: forks,
            startTimeout: .seconds(startTimeout),
            signer: signer,
            body: hostBody
        ) {
            outcome in reporter.report(outcome)
        }
    }
    // SIGINT/SIGTERM cancel the fleet: every host's command and runner are stopped and its remote directory
    // removed before mrctl exits 130 (143 for SIGTERM), like a shell's interrupted job.
    let interrupts = Interrupts { signal in
        reporter.clearProgress()
        FileHandle.standardError.write(
            Data("mrctl: \(signal == SIGINT ? "interrupted" : "terminated"); stopping every host\n".utf8)
        )
        fleet.cancel()
    }
    await fleet.value
    interrupts.stop()
    for t in transports { await t.shutdown() }
    // Interrupted: the kept connections go too (the user stopped the run; nothing of it should stay).
    if interrupts.received != nil {
        for case let ssh as SSHTransport in transports { await ssh.closeMaster(includingPersistent: true) }
    }
    reporter.finish()
    if let signal = interrupts.received { throw ExitCode(128 + signal) }
    // Ansible's exit codes, measured against ansible-core: 2 when a host failed, 4 when a host could not be
    // reached (also when others failed: unreachable wins), 0 otherwise.
    let status = reporter.unreachable > 0 ? 4 : (reporter.failed > 0 ? 2 : 0)
    if status != 0 { throw ExitCode(Int32(status)) }
}
