import MicroRunnerProtocol

/// A failure on the controller's side: the transport, the runner process, or the protocol.
///
/// A command the runner answered with ERROR is a `CommandError` instead.
///
/// ```swift
/// do {
///     try await RunnerClient.withRunner(transport: transport, runner: runner) { client in /* ... */ }
/// } catch let error as ClientError {
///     switch error.kind {
///     case .unreachable, .authentication, .hostKey, .refusedByHost, .busy, .bootstrap: print("skipped: \(error)")
///     case .unsupported: print("the runner there is too old: \(error)")
///     default: throw error
///     }
/// }
/// ```
public struct ClientError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure.
    public struct Kind: WireName {
        /// The kind's name.
        public let rawValue: String
        /// Creates a kind from its name.
        public init(rawValue: String) { self.rawValue = rawValue }

        /// The transport could not upload or start the runner, for a reason none of the kinds below names.
        public static let transport: Self = "transport"
        /// The host could not be reached: its name does not resolve, the port refuses, the connection times out
        /// or there is no route. Nothing ran.
        public static let unreachable: Self = "unreachable"
        /// The host would not let this login in (`Permission denied`: key or user refused). Nothing ran.
        public static let authentication: Self = "authentication"
        /// The host's key is not known, or has changed since it was recorded (`SSHOptions.hostKeyChecking`).
        public static let hostKey: Self = "host_key"
        /// The host said no in its own words before the runner started (a ForceCommand, nologin, "Please login
        /// as the user ubuntu"): the message quotes them.
        public static let refusedByHost: Self = "refused_by_host"
        /// The server turned the connection away before the key exchange (OpenSSH's MaxStartups): retried by
        /// `Fleet` with backoff; fewer hosts at once helps.
        public static let busy: Self = "busy"
        /// The bootstrap on the host could not put the runner in place (no writable or executable directory, no
        /// SHA-256 tool, a damaged upload): the message says which.
        public static let bootstrap: Self = "bootstrap"
        /// The runner could not take the identity asked for (`Become`): sudo missing, the user not allowed, a
        /// wrong or missing password (one attempt used). Nothing ran on the host.
        public static let becomeFailed: Self = "become_failed"
        /// The runner did not answer a command within its timeout and a grace of 30 s (it flooded the session
        /// with events, or went silent): the session was ended.
        public static let answerTimeout: Self = "answer_timeout"
        /// The runner did not send READY in time.
        public static let startTimeout: Self = "start_timeout"
        /// The runner's output ended (it exited or was killed) while something was still expected.
        public static let runnerExited: Self = "runner_exited"
        /// The runner sent something that is not the protocol.
        public static let protocolViolation: Self = "protocol_violation"
        /// The client was used after it was closed.
        public static let closed: Self = "closed"
        /// A local problem (missing runner binary, bad inventory line...).
        public static let usage: Self = "usage"
        /// The runner does not offer what the command needs (a capability, or an extension that an older
        /// runner would silently ignore): refused before anything was sent.
        public static let unsupported: Self = "unsupported"
        /// The runner's answer does not match what was sent (e.g. fewer bytes written, another checksum).
        public static let verificationFailed: Self = "verification_failed"
    }

    /// The kind.
    public var kind: Kind
    /// What happened, for people.
    public var message: String

    /// Creates an error.
    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// The message.
    public var description: String { message }

    /// Whether the host was never reached or never started a runner, so nothing ran there (Ansible's
    /// UNREACHABLE): mrctl's exit status 4.
    public var isUnreachable: Bool {
        [
            .transport, .unreachable, .authentication, .hostKey, .refusedByHost, .busy, .bootstrap, .startTimeout,
            .becomeFailed,
        ].contains(kind)
    }

    /// The one place ssh's words are read for what happened: ssh says nothing else (its exit status is 255 for
    /// every failure). Everything after this switches on the kind.
    package static func sshFailureKind(_ stderr: String) -> Kind {
        let rules: [(Kind, [String])] = [
            (.busy, ["kex_exchange_identification", "Connection closed by remote host"]),
            (
                .hostKey,
                [
                    "REMOTE HOST IDENTIFICATION HAS CHANGED", "Host key verification failed",
                    "host key is not in known_hosts", "host key has changed",
                ]
            ),
            (.authentication, ["Permission denied", "Too many authentication failures"]),
            (
                .unreachable,
                [
                    "Could not resolve hostname", "Name or service not known", "Connection refused",
                    "Connection timed out",
                    "Operation timed out", "No route to host", "Network is unreachable",
                ]
            ),
            (.bootstrap, ["micro-runner-bootstrap:"]),
        ]
        for (kind, words) in rules where words.contains(where: { stderr.contains($0) }) { return kind }
        return .transport
    }
}

/// A command the runner answered with ERROR.
///
/// ```swift
/// do {
///     _ = try await client.readFile(FileReadParams(path: "/etc/shadow"))
/// } catch let error as CommandError {
///     print(error.code, error.error.message)  // the runner's code and words
/// }
/// ```
public struct CommandError: Error, Sendable, CustomStringConvertible {
    /// The ERROR as sent.
    public var error: ErrorMessage

    /// Creates the error.
    public init(_ error: ErrorMessage) { self.error = error }

    /// The wire code (`TIMEOUT`, `NOT_FOUND`, ...).
    public var code: ErrorCode { error.code }

    /// `CODE: message`, as the runner sent them.
    public var description: String { "\(error.code): \(error.message)" }
}
