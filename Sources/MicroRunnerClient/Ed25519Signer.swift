import Foundation
import MicroRunnerCrypto
import MicroRunnerProtocol

/// Signs commands with an Ed25519 key (libsodium) for a runner started with `--verify-key`.
public struct Ed25519Signer: CommandSigning {
    private let secretKey: [UInt8]
    /// The public key, base64: what the runner's `--verify-key` takes.
    public let publicKeyBase64: String

    /// Creates a signer from a 32-byte seed (the RFC 8032 private key).
    /// - Throws: `ClientError` `.usage` for a wrong length.
    public init(seed: [UInt8]) throws {
        guard let pair = Crypto.ed25519KeyPair(seed: seed) else {
            throw ClientError(.usage, "an Ed25519 private key is 32 bytes (got \(seed.count))")
        }
        secretKey = pair.secretKey
        publicKeyBase64 = Crypto.base64Encode(pair.publicKey)
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
        let seed = Crypto.randomBytes(32)
        let pair = Crypto.ed25519KeyPair(seed: seed)!
        return (Crypto.base64Encode(seed), Crypto.base64Encode(pair.publicKey))
    }

    /// The base64 signature of `command` for the runner whose READY carried `nonce`.
    public func signature(for command: CommandMessage, nonce: String) throws -> String {
        // The runner hashes the params bytes as they arrive; the client sends exactly this serialization.
        let input = signingInput(for: command, nonce: nonce, paramsBytes: JSONWriter.serialize(command.params))
        guard let sig = Crypto.ed25519Sign(message: input, secretKey: secretKey) else {
            throw ClientError(.usage, "signing failed")
        }
        return Crypto.base64Encode(sig)
    }

    /// The base64 signature of a CANCEL of `commandID`.
    public func cancelSignature(commandID: String, nonce: String) throws -> String {
        guard
            let sig = Crypto.ed25519Sign(
                message: cancelSigningInput(nonce: nonce, commandID: commandID),
                secretKey: secretKey
            )
        else {
            throw ClientError(.usage, "signing failed")
        }
        return Crypto.base64Encode(sig)
    }
}
