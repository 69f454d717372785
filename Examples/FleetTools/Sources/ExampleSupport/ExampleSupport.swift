import Foundation
import MicroRunnerClient

/// The few options the three programs share: `-F FILE` (an ssh config, as `ssh -F`), then their own arguments.
public struct Invocation: Sendable {
    /// The ssh options every host gets.
    public var ssh = SSHOptions()
    /// What follows the options.
    public var arguments: [String] = []
    /// `--timeout SECONDS`, when given.
    public var timeout: Int?

    /// Reads `CommandLine.arguments`; prints `usage` and exits 64 (EX_USAGE) when they do not fit.
    public static func parse(usage: String, count: ClosedRange<Int>) -> Invocation {
        var result = Invocation()
        var rest = Array(CommandLine.arguments.dropFirst())
        while let first = rest.first, first.hasPrefix("-") {
            rest.removeFirst()
            switch first {
            case "-F" where !rest.isEmpty: result.ssh.configFile = rest.removeFirst()
            case "--timeout" where Int(rest.first ?? "") != nil: result.timeout = Int(rest.removeFirst())
            default: fail(usage)
            }
        }
        guard count.contains(rest.count) else { fail(usage) }
        result.arguments = rest
        return result
    }

    /// The runners the micro-runner plugin put in this package's `.build/runner` (or `$MICRO_RUNNER_DIR`).
    public func runners() throws -> RunnerSet {
        try RunnerSet(directory: RunnerSet.defaultDirectory())
    }

    /// A transport per host (`local` is this machine, without ssh), each given the runner for its architecture.
    public func transports(_ hosts: [String], runners: RunnerSet) throws -> [any Transport] {
        try hosts.map { try HostSpec(parsing: $0).transport(options: ssh, runners: runners) }
    }
}

/// `body`'s value; or, when it throws (no runners built, a bad host name), its message on stderr and exit 1.
public func orExit<T>(_ body: () throws -> T) -> T {
    do {
        return try body()
    } catch {
        FileHandle.standardError.write(Data("\(error)\n".utf8))
        exit(1)
    }
}

/// Prints `usage` and exits 64.
public func fail(_ usage: String) -> Never {
    FileHandle.standardError.write(Data("usage: \(usage)\n".utf8))
    exit(64)
}

/// Why a host failed, in a word a script can match, and whether nothing ran there (Ansible's UNREACHABLE).
/// Every kind of `ClientError` a program meets when a host is unreachable or refuses is named here.
public func reason(_ error: any Error) -> (word: String, unreachable: Bool) {
    switch error {
    case let error as ClientError:
        switch error.kind {
        case .unreachable: ("unreachable", true)
        case .authentication: ("authentication", true)
        case .hostKey: ("host-key", true)
        case .refusedByHost: ("refused", true)
        case .busy: ("busy", true)
        case .bootstrap: ("bootstrap", true)
        case .becomeFailed: ("become", true)
        case .startTimeout: ("start-timeout", true)
        case .runnerExited: ("runner-exited", false)
        case .answerTimeout: ("answer-timeout", false)
        case .unsupported: ("unsupported", false)
        default: (error.isUnreachable ? "unreachable" : "failed", error.isUnreachable)
        }
    case is CommandError: ("command-error", false)
    case is CancellationError: ("interrupted", false)
    default: ("failed", false)
    }
}

/// Text from a host, made safe for this terminal (control and bidi characters shown escaped).
public func safe(_ text: String) -> String { TerminalText.visible(text) }
