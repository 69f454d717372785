import CSodium
import MicroRunnerCrypto

// Signing and libsodium's own SHA-256 are the controller's and the tests' business: the runner only verifies. Left
// out of the Embedded runner so that it never links sodium_init (and with it every cipher libsodium can pick an
// implementation for, and glibc's gettext and printf through its assert): ~250 KB of a 1.5 MB budget.
#if !hasFeature(Embedded)
extension Crypto {
    private static let sodiumReady: Bool = sodium_init() >= 0

    /// The key pair for a 32-byte seed: (public key, 64-byte libsodium secret key).
    package static func ed25519KeyPair(seed: [UInt8]) -> (publicKey: [UInt8], secretKey: [UInt8])? {
        _ = sodiumReady
        guard seed.count == 32 else { return nil }
        var pk = [UInt8](repeating: 0, count: 32)
        var sk = [UInt8](repeating: 0, count: 64)
        guard crypto_sign_seed_keypair(&pk, &sk, seed) == 0 else { return nil }
        return (pk, sk)
    }

    /// A detached Ed25519 signature of `message` with a 64-byte libsodium secret key.
    package static func ed25519Sign(message: [UInt8], secretKey: [UInt8]) -> [UInt8]? {
        _ = sodiumReady
        guard secretKey.count == 64 else { return nil }
        var sig = [UInt8](repeating: 0, count: 64)
        var length: UInt64 = 0
        let rc = message.withUnsafeBufferPointer { m in
            crypto_sign_detached(&sig, &length, m.baseAddress, UInt64(m.count), secretKey)
        }
        return rc == 0 ? sig : nil
    }

    /// SHA-256 by libsodium, for cross-checking the shim in tests.
    package static func libsodiumSHA256Hex(_ bytes: [UInt8]) -> String {
        _ = sodiumReady
        var digest = [UInt8](repeating: 0, count: 32)
        bytes.withUnsafeBufferPointer { _ = crypto_hash_sha256(&digest, $0.baseAddress, UInt64($0.count)) }
        return hex(digest)
    }
}
#endif
