import Foundation
import MicroRunnerCrypto
import MicroRunnerProtocol

/// Signs commands with an Ed25519 key for a runner started with `--verify-key`.
///
/// Signing is RFC 8032's Ed25519 in Swift (deterministic: the same key and command give the same signature as the
/// runner's libsodium, which the tests check byte for byte), so a program using this library links no libsodium and
/// builds no BoringSSL.
///
/// ```swift
/// let signer = try Ed25519Signer(keyFile: "/home/me/.config/mr/signing.key")
/// let client = try await RunnerClient.start(on: transport, runners: runners, signer: signer)
/// ```
public struct Ed25519Signer: CommandSigning {
    private let key: Ed25519.PrivateKey
    /// The public key, base64: what the runner's `--verify-key` takes.
    public let publicKeyBase64: String

    /// Creates a signer from a 32-byte seed (the RFC 8032 private key).
    /// - Throws: `ClientError` `.usage` for a wrong length.
    public init(seed: [UInt8]) throws {
        guard seed.count == 32 else {
            throw ClientError(.usage, "an Ed25519 private key is 32 bytes (got \(seed.count))")
        }
        key = Ed25519.PrivateKey(seed: seed)
        publicKeyBase64 = Crypto.base64Encode(key.publicKey)
    }

    /// Reads a key file written by `mrctl keygen`: the base64 seed on the first line.
    /// - Throws: `ClientError` `.usage` when the file is unreadable, readable by others, or not a key.
    public init(keyFile: String) throws {
        guard let data = FileManager.default.contents(atPath: keyFile) else {
            throw ClientError(.usage, "cannot read signing key \(keyFile)")
        }
        if let mode = (try? FileManager.default.attributesOfItem(atPath: keyFile))?[.posixPermissions] as? Int,
            mode & 0o077 != 0
        {
            throw ClientError(
                .usage,
                "signing key \(keyFile) is readable by others (mode \(String(mode, radix: 8))); chmod 600 it"
            )
        }
        let text =
            String(decoding: data, as: UTF8.self).split(whereSeparator: \.isWhitespace).first.map(String.init) ?? ""
        guard let seed = Crypto.base64Decode(text) else {
            throw ClientError(.usage, "signing key \(keyFile) is not base64")
        }
        try self.init(seed: seed)
    }

    /// A new random key: (seed, public key), both base64.
    public static func generate() -> (privateKey: String, publicKey: String) {
        // getrandom(2), as the runner's nonces.
        let seed = Crypto.randomBytes(32)
        return (Crypto.base64Encode(seed), Crypto.base64Encode(Ed25519.PrivateKey(seed: seed).publicKey))
    }

    /// The base64 signature of `command` for the runner whose READY carried `nonce`.
    public func signature(for command: CommandMessage, nonce: String) throws -> String {
        // The runner hashes the params bytes as they arrive; the client sends exactly this serialization.
        let input = signingInput(for: command, nonce: nonce, paramsBytes: JSONWriter.serialize(command.params))
        return sign(input)
    }

    /// The base64 signature of a CANCEL of `commandID`.
    public func cancelSignature(commandID: String, nonce: String) throws -> String {
        sign(cancelSigningInput(nonce: nonce, commandID: commandID))
    }

    private func sign(_ message: [UInt8]) -> String {
        Crypto.base64Encode(key.signature(for: message))
    }
}
