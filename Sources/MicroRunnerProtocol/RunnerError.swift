/// The one error type of the runner: everything that can go wrong with a command ends up here and
/// becomes a wire ERROR in one place (the agent).
public struct RunnerError: Error, Sendable, CustomStringConvertible {
    /// The wire code.
    public var code: ErrorCode
    /// What failed, on what, and what to do about it.
    public var message: String
    /// Extra string fields sent with the ERROR (e.g. partial output of a timed-out command).
    public var details: [String: String]
    /// Whether the same command may succeed if sent again.
    public var retryable: Bool
    /// Seconds to wait before retrying, when known.
    public var retryAfter: Int?
    /// The underlying failure as text (e.g. `errno 13: Permission denied`), for logs in this process; never sent
    /// on the wire. Text, not an error value: the Embedded runner has no `any Error`.
    public var cause: String?

    /// Creates an error.
    public init(
        _ code: ErrorCode,
        _ message: String,
        details: [String: String] = [:],
        retryable: Bool = false,
        retryAfter: Int? = nil,
        cause: String? = nil
    ) {
        self.code = code
        self.message = message
        self.details = details
        self.retryable = retryable
        self.retryAfter = retryAfter
        self.cause = cause
    }

    /// `CODE: message`.
    public var description: String { "\(code): \(message)" }

    /// An `INVALID_CMD` error.
    public static func invalid(_ message: String) -> RunnerError { RunnerError(.invalidCommand, message) }
}
