import MicroRunnerProtocol

/// A failure on the controller's side: the transport, the runner process, or the protocol.
///
/// A command the runner answered with ERROR is a `CommandError` instead.
public struct ClientError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure.
    public struct Kind: WireName {
        /// The kind's name.
        public let rawValue: String
        /// Creates a kind from its name.
        public init(rawValue: String) { self.rawValue = rawValue }

        /// The transport could not upload or start the runner (ssh failed, host unreachable, key refused).
        public static let transport: Self = "transport"
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
}

/// A command the runner answered with ERROR.
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
