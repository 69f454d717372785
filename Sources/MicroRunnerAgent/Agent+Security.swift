import MicroRunnerCrypto
import MicroRunnerHandlers
import MicroRunnerProtocol
import MicroRunnerSignatures
import MicroRunnerSystem

extension Agent {
    /// Checks a CMD's signature (PROTOCOL.md, Signatures) and that its id is new in this session.
    /// - Throws: `RunnerError` `SIGNATURE_INVALID`; nothing runs.
    func verifySignature(_ command: CommandMessage, rawParams: [UInt8]?, key: [UInt8]) throws(RunnerError) {
        guard let text = command.signature else {
            throw RunnerError(.signatureInvalid, "CMD \(command.id): unsigned; this runner requires signed commands")
        }
        guard let signature = Crypto.base64Decode(text), signature.count == Crypto.ed25519SignatureBytes else {
            throw RunnerError(.signatureInvalid, "CMD \(command.id): signature is not 64 bytes of base64")
        }
        let input = signingInput(for: command, nonce: nonce, paramsBytes: rawParams ?? [])
        guard Crypto.ed25519Verify(signature: signature, message: input, publicKey: key) else {
            throw RunnerError(
                .signatureInvalid,
                "CMD \(command.id): signature does not verify (wrong key, nonce, or altered command)"
            )
        }
        // Checked after the signature, so an unsigned line cannot burn an id.
        guard usedIDs.insert(command.id).inserted else {
            throw RunnerError(.signatureInvalid, "CMD \(command.id): id already used in this session (replay refused)")
        }
    }

    /// Checks a CANCEL's signature in signed mode: an unsigned CANCEL must not stop or drop a signed command.
    /// - Throws: `RunnerError` `SIGNATURE_INVALID`; nothing is cancelled.
    func verifyCancelSignature(id: String, signature text: String?, key: [UInt8]) throws(RunnerError) {
        guard let text, !text.isEmpty else {
            throw RunnerError(.signatureInvalid, "unsigned; this runner requires signed CANCELs (nothing was stopped)")
        }
        guard let signature = Crypto.base64Decode(text), signature.count == Crypto.ed25519SignatureBytes,
            Crypto.ed25519Verify(
                signature: signature,
                message: cancelSigningInput(nonce: nonce, commandID: id),
                publicKey: key
            )
        else {
            throw RunnerError(.signatureInvalid, "signature does not verify (nothing was stopped)")
        }
    }

    /// Parses a base64 Ed25519 public key, or else reads a file holding one (base64 may itself start with `/`).
    static func loadVerifyKey(_ text: String) -> [UInt8]? {
        func parse(_ source: String) -> [UInt8]? {
            let word = source.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\r" || $0 == "\t" }).first
            guard let word, let key = Crypto.base64Decode(String(word)), key.count == Crypto.ed25519PublicKeyBytes
            else {
                return nil
            }
            return key
        }
        if let key = parse(text) { return key }
        guard let bytes = try? FileSystem.readAll(text, limit: 4096) else { return nil }
        return parse(String(decoding: bytes, as: UTF8.self))
    }
}
