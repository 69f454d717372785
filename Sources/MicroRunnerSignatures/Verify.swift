import CSodium
import MicroRunnerCrypto

// Ed25519 by libsodium: the runner verifies with it (linked statically into the runner only). The client signs
// with its own Ed25519 (MicroRunnerClient's Ed25519.swift), so that a package depending on it needs no libsodium.
extension Crypto {
    /// Whether `signature` is a valid Ed25519 signature of `message` by `publicKey` (libsodium). No
    /// `sodium_init` here: verification uses no CPU-dispatched code, and calling it would link every cipher
    /// libsodium can pick an implementation for into the runner (~90 KB).
    package static func ed25519Verify(signature: [UInt8], message: [UInt8], publicKey: [UInt8]) -> Bool {
        guard signature.count == 64, publicKey.count == 32 else { return false }
        return message.withUnsafeBufferPointer { m in
            crypto_sign_ed25519_verify_detached(signature, m.baseAddress, UInt64(m.count), publicKey) == 0
        }
    }

}
