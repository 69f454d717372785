import MicroRunnerProtocol

/// Produces a CMD's `signature` (PROTOCOL.md, Signatures) for a runner started with `--verify-key`.
public protocol CommandSigning: Sendable {
    /// The base64 signature of `command` for the runner whose READY carried `nonce`.
    func signature(for command: CommandMessage, nonce: String) throws -> String
    /// The base64 signature of a CANCEL of `commandID` (a runner that requires signatures stops nothing on an
    /// unsigned CANCEL).
    func cancelSignature(commandID: String, nonce: String) throws -> String
}
