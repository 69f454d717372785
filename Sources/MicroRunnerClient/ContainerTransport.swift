import Foundation
import Logging

/// A container runtime whose exec reaches a container with plain pipes: the runner is streamed in and started
/// by the same bootstrap as over ssh (`RemoteBootstrap`), never through a pty.
///
/// | runtime | target | what runs |
/// |---|---|---|
/// | `docker` | container name or id | `docker exec -i [-u USER] NAME ...` |
/// | `podman` | container name or id | `podman exec -i [-u USER] NAME ...` |
/// | `nspawn` | machine name | `systemd-run --machine=NAME --pipe --quiet --collect [--uid=USER] -- ...` (a transient service in the machine, as machined registered it) |
/// | `nsenter` | process id | `nsenter -t PID -a -r -w -- ...` (every namespace, root and working directory of that process: a raw join, without the container's cgroup, capability bounding or seccomp) |
/// | `kubectl` | `[NAMESPACE/]POD[/CONTAINER]` | `kubectl exec -i [-n NAMESPACE] POD [-c CONTAINER] -- ...` |
public enum ContainerRuntime: String, Sendable, Hashable, CaseIterable {
    /// Docker's `docker exec -i`.
    case docker
    /// Podman's `podman exec -i`.
    case podman
    /// A systemd-nspawn machine (or any machine machined knows) through `systemd-run --machine --pipe`.
    case nspawn
    /// The namespaces of a process, through util-linux's `nsenter`.
    case nsenter
    /// A Kubernetes pod through `kubectl exec -i`.
    case kubectl

    /// The program that runs commands in the container.
    public var program: String {
        switch self {
        case .docker: "docker"
        case .podman: "podman"
        case .nspawn: "systemd-run"
        case .nsenter: "nsenter"
        case .kubectl: "kubectl"
        }
    }

    /// What to install when `program` is missing (Debian's package names).
    var install: String {
        switch self {
        case .docker: "install docker.io or Docker's docker-ce-cli"
        case .podman: "install podman"
        case .nspawn: "install systemd (systemd-run)"
        case .nsenter: "install util-linux"
        case .kubectl: "install kubectl"
        }
    }

    /// The arguments after the program that run `argv` in `target` as `user` (nil: the container's default).
    /// - Throws: `ClientError` `.usage` for a target this runtime cannot name, or a user it cannot switch to.
    public func arguments(target: String, user: String?, argv: [String]) throws -> [String] {
        switch self {
        case .docker, .podman:
            return ["exec", "-i"] + (user.map { ["-u", $0] } ?? []) + [target] + argv
        case .nspawn:
            // systemd expands `$NAME` and `${NAME}` in a service's command line (systemd 252 turned the bootstrap's
            // `${got%% *}` into nothing): `$$` is its escape for a literal `$`.
            return ["--machine=\(target)", "--pipe", "--quiet", "--collect"] + (user.map { ["--uid=\($0)"] } ?? [])
                + ["--"] + argv.map { $0.replacingOccurrences(of: "$", with: "$$") }
        case .nsenter:
            guard let pid = Int(target), pid > 0 else {
                throw ClientError(.usage, "nsenter:\(target): the target is a process id")
            }
            if user != nil {
                throw ClientError(.usage, "nsenter:\(target): nsenter cannot log in as a user; use become (-b)")
            }
            return ["-t", String(pid), "-a", "-r", "-w", "--"] + argv
        case .kubectl:
            if user != nil {
                throw ClientError(.usage, "kubectl:\(target): kubectl exec cannot choose a user; use become (-b)")
            }
            let parts = target.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            guard (1...3).contains(parts.count), !parts.contains(where: \.isEmpty) else {
                throw ClientError(.usage, "kubectl:\(target): give POD, NAMESPACE/POD or NAMESPACE/POD/CONTAINER")
            }
            let (namespace, pod) = parts.count == 1 ? (nil, parts[0]) : (parts[0], parts[1])
            return ["exec", "-i"] + (namespace.map { ["-n", $0] } ?? []) + [pod]
                + (parts.count == 3 ? ["-c", parts[2]] : []) + ["--"] + argv
        }
    }

    /// The kind of a failure before READY, from the runtime's words on stderr: the one place they are read.
    package func failureKind(_ stderr: String) -> ClientError.Kind {
        if stderr.contains("micro-runner-bootstrap:") { return .bootstrap }
        let text = stderr.lowercased()
        let unreachable = [
            "no such container", "is not running", "cannot connect to the docker daemon",
            "can only create exec sessions on running containers", "container state improper",
            "failed to connect to bus", "no machine", "not known", "no such process", "nsenter: cannot open",
            "nsenter: stat of /proc/", "(notfound)", "unable to connect to the server", "connection refused",
            "was refused",
        ]
        return unreachable.contains { text.contains($0) } ? .unreachable : .transport
    }
}

/// Runs the runner in a container (or a machine, or a pod) through its runtime's exec: the runner is streamed in
/// on stdin and started by the bootstrap SSH uses, with the same guarantees: the runner for the container's own
/// architecture, a private directory with a noexec `/tmp` fallback, the SHA-256 checked before it runs, and the
/// runner stopped and its directory removed after an interrupt.
///
/// ```swift
/// let web = ContainerTransport(runtime: .podman, target: "web", runners: runners)
/// let release = try await RunnerClient.withRunner(transport: web, runner: runner) { client in
///     try await client.readFile(FileReadParams(path: "/etc/os-release")).content
/// }
/// ```
public struct ContainerTransport: Transport {
    /// The runtime.
    public let runtime: ContainerRuntime
    /// The container (`ContainerRuntime` says what each runtime takes).
    public let target: String
    /// The user to run as in the container; nil: the container's default (root for most images).
    public let user: String?
    /// The runtime's executable: a name looked up in PATH (the runtime's own by default) or a path.
    public let executable: String?
    /// Extra arguments for the runtime, before everything this transport adds (e.g. `--context` for kubectl,
    /// `--log-level` for podman); they go right after the program, before `exec`.
    public let runtimeArguments: [String]
    /// Runners by architecture: each container gets the one for its `uname -m`.
    public let runners: RunnerSet?
    /// Where in the container the runner is put (a fresh private subdirectory); nil: `$TMPDIR` or `/tmp`, then
    /// `~/.cache/micro-runner` when that is noexec.
    public let remoteDirectory: String?
    /// Run the runner as another user through sudo inside the container.
    public let become: Become?
    /// Where the start and tidy-up are logged (as `SSHOptions.logger`).
    public let logger: Logger?
    /// What reports call the container.
    public var name: String { displayName ?? HostSpec(user: user, host: target, container: runtime).description }
    private let displayName: String?

    /// Creates a transport for one container.
    public init(
        runtime: ContainerRuntime,
        target: String,
        user: String? = nil,
        executable: String? = nil,
        runtimeArguments: [String] = [],
        runners: RunnerSet? = nil,
        remoteDirectory: String? = nil,
        become: Become? = nil,
        logger: Logger? = nil,
        name: String? = nil
    ) {
        self.runtime = runtime
        self.target = target
        self.user = user
        self.executable = executable
        self.runtimeArguments = runtimeArguments
        self.runners = runners
        self.remoteDirectory = remoteDirectory
        self.become = become
        self.logger = logger
        self.displayName = name
    }

    /// The runtime's command line that runs `argv` in the container.
    package func commandLine(_ argv: [String]) throws -> (executable: String, arguments: [String]) {
        let program = try RemoteBootstrap.executable(executable ?? runtime.program, install: runtime.install)
        return (program, runtimeArguments + (try runtime.arguments(target: target, user: user, argv: argv)))
    }

    var bootstrap: RemoteBootstrap {
        let transport = self
        return RemoteBootstrap(
            name: name,
            key: HostSpec(host: target, container: runtime).description,
            runners: runners,
            remoteDirectory: remoteDirectory,
            become: become,
            logger: logger,
            launch: { argv in
                let line = try transport.commandLine(argv)
                return try ChildProcess(executable: line.executable, arguments: line.arguments)
            },
            failure: { stderr in
                ClientError(
                    transport.runtime.failureKind(stderr),
                    "\(transport.name): \(transport.explain(stderr: stderr))"
                )
            }
        )
    }

    /// Streams the runner in through the runtime's exec and starts it.
    public func start(runner: RunnerBinary, arguments: [String]) async throws -> RunnerSession {
        try await bootstrap.start(runner: runner, arguments: arguments, describe: ["runtime": "\(runtime.rawValue)"])
    }

    /// Stops a runner that outlived its session and removes its directory, through the runtime's exec.
    public func cleanup(_ session: RunnerSession) async { await bootstrap.cleanup(session) }

    /// The runtime's last lines, without the bootstrap's bookkeeping.
    public func explain(stderr: String) -> String {
        RemoteBootstrap.lastLines(of: stderr, fallback: "\(runtime.program) failed")
    }

    /// The kind, from the runtime's words.
    public func failureKind(stderr: String) -> ClientError.Kind { runtime.failureKind(stderr) }
}
