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

    /// The longest text an answer repeats from its input (a type, a timestamp, an id): answers quote to
    /// explain, and a 12 MiB echo once broke the promise that every line stays under the Go decoder's 10 MiB.
    public static let maxEchoBytes = 256

    /// The longest message or detail value an ERROR carries; longer ones are cut with a marker. Partial output
    /// of a timed-out command travels in details and is already cut at 64 KiB.
    public static let maxMessageBytes = 1 << 20

    /// `text` as an answer may repeat it: whole up to `maxBytes`, else its start (on a UTF-8 boundary) and
    /// how long it was.
    public static func echo(_ text: String, maxBytes: Int = maxEchoBytes) -> String {
        let utf8 = text.utf8
        guard utf8.count > maxBytes else { return text }
        var end = utf8.index(utf8.startIndex, offsetBy: maxBytes)
        while end > utf8.startIndex && end.samePosition(in: text.unicodeScalars) == nil {
            end = utf8.index(before: end)
        }
        return String(text[..<end]) + "…(\(utf8.count) bytes)"
    }
}
