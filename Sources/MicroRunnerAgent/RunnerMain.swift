import CMicroRunnerShims
import MicroRunnerHandlers
import MicroRunnerProtocol
import MicroRunnerSystem

/// The `micro-runner` command line: flags, signals, then the agent.
package enum RunnerMain {
    /// The runner's version.
    package static let version = "0.1.0"

    static let usage = """
        usage: micro-runner [options]
        Serves newline-delimited JSON commands on stdin/stdout (see PROTOCOL.md), then deletes itself.

          --ttl DURATION          lifetime, idle or busy (Go syntax: 10m, 90s, 1h30m; default 10m)
          --keep                  do not delete the executable at exit (development)
          --max-line-bytes N      longest input line accepted (default 16777216, at least 10485760)
          --allow TYPE[,TYPE...]  serve only these command types (others answer UNSUPPORTED)
          --verify-key KEY|FILE   require every CMD to be signed by this Ed25519 key (base64, or a file)
          --state-dir DIR         keep an idempotency journal there (mode 0700/0600); without it nothing
                                  is written to disk
          --root-dir DIR          confine file.read and file.write to DIR (resolved beneath it; absolute
                                  symlinks and files with several hard links are refused)
          --unsafe-pkg-options    pass pkg.ensure options to the manager as given (they can run programs
                                  as root); without it only an allow-list of options is accepted
          --verbose               diagnostics on stderr
          --become sudo USER yes|no
                                  (first) restart this runner as USER through sudo, with a pty as the
                                  controlling terminal; yes: a password line follows the runner on stdin
          --version               print the version and exit
          --help                  this text

        """

    /// Parses flags into a configuration, or returns an exit code for --help/--version/bad usage.
    package static func configuration(_ arguments: [String]) -> Result<AgentConfiguration, ExitRequest> {
        var config = AgentConfiguration(version: version)
        var args = arguments.dropFirst()[...]
        func value(_ flag: String) -> String? {
            if let eq = flag.firstIndex(of: "=") { return String(flag[flag.index(after: eq)...]) }
            return args.popFirst()
        }
        while let arg = args.popFirst() {
            let name = arg.split(separator: "=", maxSplits: 1).first.map(String.init) ?? arg
            switch name {
            case "--version", "-v":
                return .failure(ExitRequest(code: 0, output: "micro-runner \(version)\n", toStderr: false))
            case "--help", "-h":
                return .failure(ExitRequest(code: 0, output: usage, toStderr: false))
            case "--keep":
                config.keepBinary = true
            case "--unsafe-pkg-options":
                config.host.rawPackageOptions = true
            case "--verbose":
                config.verbose = true
            case "--ttl":
                guard let text = value(arg), let seconds = GoDuration.parse(text) else {
                    return .failure(
                        ExitRequest(code: 2, output: "micro-runner: --ttl needs a duration like 10m or 30s\n")
                    )
                }
                config.ttlSeconds = seconds
            case "--max-line-bytes":
                guard let text = value(arg), let n = Int(text), n >= 10 << 20 else {
                    return .failure(
                        ExitRequest(code: 2, output: "micro-runner: --max-line-bytes needs a number >= 10485760\n")
                    )
                }
                config.maxLineBytes = n
            case "--allow":
                guard let text = value(arg) else {
                    return .failure(
                        ExitRequest(code: 2, output: "micro-runner: --allow needs a list of command types\n")
                    )
                }
                let types = text.split(separator: ",").map { CommandType(rawValue: String($0)) }
                if let unknown = types.first(where: { !CommandType.all.contains($0) }) {
                    return .failure(
                        ExitRequest(code: 2, output: "micro-runner: --allow: unknown command type \(unknown)\n")
                    )
                }
                config.allowedTypes = Set(types)
            case "--verify-key":
                guard let text = value(arg), let key = Agent.loadVerifyKey(text) else {
                    return .failure(
                        ExitRequest(
                            code: 2,
                            output: "micro-runner: --verify-key needs a base64 Ed25519 public key or a file\n"
                        )
                    )
                }
                config.verifyKey = key
            case "--state-dir":
                guard let dir = value(arg), dir.hasPrefix("/") else {
                    return .failure(ExitRequest(code: 2, output: "micro-runner: --state-dir needs an absolute path\n"))
                }
                config.stateDirectory = dir
            case "--root-dir":
                guard let dir = value(arg), let resolved = realpath(dir, nil) else {
                    return .failure(
                        ExitRequest(code: 2, output: "micro-runner: --root-dir needs an existing directory\n")
                    )
                }
                let path = String(cString: resolved)
                free(resolved)
                do {
                    config.host.resolver = try PathResolver(confinedTo: path)
                } catch {
                    return .failure(
                        ExitRequest(code: 2, output: "micro-runner: --root-dir \(path): \(errnoText(error.code))\n")
                    )
                }
            default:
                return .failure(ExitRequest(code: 2, output: "micro-runner: unknown option \(arg)\n" + usage))
            }
        }
        return .success(config)
    }

    /// A request to exit before serving (help, version, usage error).
    package struct ExitRequest: Error {
        package var code: Int32
        package var output: String
        package var toStderr = true
    }

    /// Runs the runner process and exits.
    package static func main(_ arguments: [String]) -> Never {
        // Become: this process only starts the real runner under sudo and waits for it.
        if arguments.count > 1 && arguments[1] == "--become" { BecomeLauncher.main(arguments) }
        // Termination signals are taken by one thread with sigwait from the first instruction on, so a stop
        // request is never lost and never blocked: before the agent exists it ends the process at once (exit
        // 128+signal), after that the worker stops the running command's group and still sends EXIT.
        // Children get an empty mask (ProcessRunner).
        var stopSignals = sigset_t()
        sigemptyset(&stopSignals)
        for s in [SIGTERM, SIGINT, SIGHUP] { sigaddset(&stopSignals, s) }
        pthread_sigmask(SIG_BLOCK, &stopSignals, nil)
        let target = SignalTarget()
        let signals = stopSignals
        startThread(stackBytes: 64 << 10) {
            var set = signals
            var received: Int32 = 0
            while sigwait(&set, &received) == 0 {
                guard let agent = target.agent else { _exit(128 + received) }
                agent.terminate(signal: received)
            }
        }
        // Not dumpable: a command running as the runner's own user could otherwise open /proc/RUNNER/fd/1 and
        // write protocol lines to the controller (a forged DONE reached it before the real one), or ptrace it.
        // Commands are exec'd programs, dumpable again; only the runner's own /proc entries close.
        _ = mr_set_not_dumpable()
        // A controller that closes the pipe must not kill the runner before it stops its children.
        signal(SIGPIPE, SIG_IGN)
        // Multi-megabyte buffers (file content, output) come from mmap and go back to the kernel when
        // freed; glibc's sliding threshold would otherwise keep them in the heap and the RSS stays high.
        mr_tune_malloc()
        // 1 MiB pipes (when they are pipes; sshd gives one): raw content and large answers cross in 16x fewer
        // reads and wake-ups than through 64 KiB.
        _ = mr_set_pipe_size(0, 1 << 20)
        _ = mr_set_pipe_size(1, 1 << 20)
        var config: AgentConfiguration
        switch configuration(arguments) {
        case .success(let c): config = c
        case .failure(let request):
            var text = request.output
            text.withUTF8 { _ = writeAll(request.toStderr ? 2 : 1, UnsafeRawBufferPointer($0)) }
            exit(request.code)
        }
        config.selfPath = executablePath()
        // The file at that path as the runner starts (not stat of /proc/self/exe, which under qemu-user names
        // the emulator): at exit the path is removed only while it is still this file.
        var exe = stat()
        if let path = config.selfPath, lstat(path, &exe) == 0 {
            config.selfIdentity = (UInt64(exe.st_dev), UInt64(exe.st_ino))
        }

        let agent: Agent
        do {
            agent = try Agent(configuration: config)
        } catch {
            // Refused before READY (an unsafe --state-dir, say): the reason on stderr and as an ERROR
            // INIT_FAILED line, so a controller waiting for READY reads why; exit status 3.
            var text = "micro-runner: \(error.message)\n"
            text.withUTF8 { _ = writeAll(2, UnsafeRawBufferPointer($0)) }
            OutputChannel(fd: config.outputFD).send(
                .error,
                ErrorMessage(commandID: nil, code: .initFailed, message: error.message, retryable: error.retryable)
            )
            exit(3)
        }
        target.agent = agent
        exit(agent.run())
    }

    /// Where the signal thread sends stop requests once the agent exists.
    final class SignalTarget: @unchecked Sendable {
        private let lock = ConditionLock()
        private var value: Agent?
        var agent: Agent? {
            get { lock.withLock { value } }
            set { lock.withLock { value = newValue } }
        }
    }

    /// The runner's own executable, from /proc/self/exe.
    static func executablePath() -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return processArguments().first.flatMap { $0.hasPrefix("/") ? $0 : nil } }
        let path = buffer[0..<n].withUnsafeBufferPointer { String(decoding: UnsafeRawBufferPointer($0), as: UTF8.self) }
        return path.hasSuffix(" (deleted)") ? nil : path
    }
}
