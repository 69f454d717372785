import CMicroRunnerShims
import CSodium
import MicroRunnerProtocol

/// SHA-256 (SHA-NI shim), base64 and, for signatures, Ed25519 (libsodium, linked statically into the runner).
package enum Crypto {
    private static let initialized: Bool = sodium_init() >= 0

    /// Incremental SHA-256 (the shim's: SHA-NI when the CPU has it, ~30x libsodium's portable code).
    package struct SHA256 {
        private var context = mr_sha256_ctx()

        /// - Parameter accelerated: false forces the portable code path (for cross-checking).
        package init(accelerated: Bool = true) {
            mr_sha256_init(&context, accelerated ? 1 : 0)
        }

        package mutating func update(_ bytes: UnsafeRawBufferPointer) {
            guard let base = bytes.baseAddress, bytes.count > 0 else { return }
            mr_sha256_update(&context, base, bytes.count)
        }

        package mutating func update(_ bytes: [UInt8]) {
            bytes.withUnsafeBytes { update($0) }
        }

        /// The digest.
        package mutating func finalize() -> [UInt8] {
            var digest = [UInt8](repeating: 0, count: 32)
            mr_sha256_final(&context, &digest)
            return digest
        }

        /// The digest as lowercase hex.
        package mutating func finalizeHex() -> String {
            Crypto.hex(finalize())
        }
    }

    /// SHA-256 by libsodium, for cross-checking the shim in tests.
    package static func libsodiumSHA256Hex(_ bytes: [UInt8]) -> String {
        _ = initialized
        var digest = [UInt8](repeating: 0, count: 32)
        bytes.withUnsafeBufferPointer { _ = crypto_hash_sha256(&digest, $0.baseAddress, UInt64($0.count)) }
        return hex(digest)
    }

    /// Lowercase hex SHA-256 of `bytes`.
    package static func sha256Hex(_ bytes: [UInt8]) -> String {
        var h = SHA256()
        h.update(bytes)
        return h.finalizeHex()
    }

    /// Lowercase hex of `bytes`.
    package static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Standard base64 (with padding).
    package static func base64Encode(_ bytes: [UInt8]) -> String {
        _ = initialized
        let variant = Int32(sodium_base64_VARIANT_ORIGINAL)
        let length = sodium_base64_encoded_len(bytes.count, variant)
        var out = [CChar](repeating: 0, count: length)
        bytes.withUnsafeBufferPointer { inp in
            _ = sodium_bin2base64(&out, length, inp.baseAddress, inp.count, variant)
        }
        return out.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    /// Decodes standard base64 (padding required, whitespace and newlines ignored).
    /// - Returns: the bytes, or `nil` when the text is not valid base64.
    package static func base64Decode(_ text: String) -> [UInt8]? {
        _ = initialized
        let input = Array(text.utf8)
        if input.isEmpty { return [] }
        var out = [UInt8](repeating: 0, count: input.count / 4 * 3 + 3)
        var written = 0
        // Where sodium stopped, measured inside the one scope in which the input pointer is valid.
        let (rc, consumed) = input.withUnsafeBufferPointer { inp in
            inp.withMemoryRebound(to: CChar.self) { chars -> (Int32, Int) in
                var end: UnsafePointer<CChar>? = nil
                let rc = sodium_base642bin(
                    &out,
                    out.count,
                    chars.baseAddress,
                    chars.count,
                    " \t\r\n",
                    &written,
                    &end,
                    Int32(sodium_base64_VARIANT_ORIGINAL)
                )
                return (rc, end.map { chars.baseAddress!.distance(to: $0) } ?? -1)
            }
        }
        guard rc == 0 else { return nil }
        // sodium stops at the first invalid character; all input must have been consumed.
        guard consumed == input.count else { return nil }
        out.removeSubrange(written...)
        return out
    }

    // MARK: Ed25519

    /// Ed25519 public key length in bytes.
    package static let ed25519PublicKeyBytes = 32
    /// Ed25519 signature length in bytes.
    package static let ed25519SignatureBytes = 64

    /// Whether `signature` is a valid Ed25519 signature of `message` by `publicKey` (libsodium).
    package static func ed25519Verify(signature: [UInt8], message: [UInt8], publicKey: [UInt8]) -> Bool {
        _ = initialized
        guard signature.count == 64, publicKey.count == 32 else { return false }
        return message.withUnsafeBufferPointer { m in
            crypto_sign_verify_detached(signature, m.baseAddress, UInt64(m.count), publicKey) == 0
        }
    }

    /// The key pair for a 32-byte seed: (public key, 64-byte libsodium secret key).
    package static func ed25519KeyPair(seed: [UInt8]) -> (publicKey: [UInt8], secretKey: [UInt8])? {
        _ = initialized
        guard seed.count == 32 else { return nil }
        var pk = [UInt8](repeating: 0, count: 32)
        var sk = [UInt8](repeating: 0, count: 64)
        guard crypto_sign_seed_keypair(&pk, &sk, seed) == 0 else { return nil }
        return (pk, sk)
    }

    /// A detached Ed25519 signature of `message` with a 64-byte libsodium secret key.
    package static func ed25519Sign(message: [UInt8], secretKey: [UInt8]) -> [UInt8]? {
        _ = initialized
        guard secretKey.count == 64 else { return nil }
        var sig = [UInt8](repeating: 0, count: 64)
        var length: UInt64 = 0
        let rc = message.withUnsafeBufferPointer { m in
            crypto_sign_detached(&sig, &length, m.baseAddress, UInt64(m.count), secretKey)
        }
        return rc == 0 ? sig : nil
    }

    /// Random bytes from the kernel (libsodium's `randombytes_buf`).
    package static func randomBytes(_ count: Int) -> [UInt8] {
        _ = initialized
        var out = [UInt8](repeating: 0, count: count)
        out.withUnsafeMutableBytes { randombytes_buf($0.baseAddress!, count) }
        return out
    }

    /// Bytes from lowercase or uppercase hex, or `nil`.
    package static func unhex(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(chars.count / 2)
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case 0x30...0x39: c - 0x30
            case 0x61...0x66: c - 0x57
            case 0x41...0x46: c - 0x37
            default: nil
            }
        }
        var i = 0
        while i < chars.count {
            guard let hi = nibble(chars[i]), let lo = nibble(chars[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }
}

/// The bytes a CMD signature covers (PROTOCOL.md, Signatures):
/// `"micro-runner-v1\n" + nonce + "\n" + id + "\n" + type + "\n" + timeout + "\n" + idempotency_key + "\n" + dry_run
/// + "\n" + hex(sha256(params bytes as sent))`.
package func signingInput(
    nonce: String,
    id: String,
    type: String,
    timeout: Int,
    idempotencyKey: String,
    dryRun: Bool,
    paramsBytes: [UInt8]
) -> [UInt8] {
    var h = Crypto.SHA256()
    h.update(paramsBytes)
    let text =
        "micro-runner-v1\n" + nonce + "\n" + id + "\n" + type + "\n" + String(timeout) + "\n" + idempotencyKey + "\n"
        + (dryRun ? "true" : "false") + "\n" + h.finalizeHex()
    return Array(text.utf8)
}

/// The signing input of `command` (PROTOCOL.md, Signatures): what the client signs and the runner verifies,
/// from one place so the two cannot drift apart. A CMD with `metadata.run_if_succeeded` signs one more line
/// with it, so an unsigned chain cannot make the runner skip a signed command.
/// - Parameter paramsBytes: the params exactly as sent (the client's serialization) or received (the runner's).
package func signingInput(for command: CommandMessage, nonce: String, paramsBytes: [UInt8]) -> [UInt8] {
    var input = signingInput(
        nonce: nonce,
        id: command.id,
        type: command.type.rawValue,
        timeout: command.timeout,
        idempotencyKey: command.idempotencyKey ?? "",
        dryRun: command.dryRun,
        paramsBytes: paramsBytes
    )
    if let earlier = command.metadata?["run_if_succeeded"] {
        input.append(0x0A)
        input += Array(earlier.utf8)
    }
    return input
}

/// The bytes a CANCEL signature covers: `"micro-runner-v1-cancel\n" + nonce + "\n" + command_id`.
package func cancelSigningInput(nonce: String, commandID: String) -> [UInt8] {
    Array(("micro-runner-v1-cancel\n" + nonce + "\n" + commandID).utf8)
}
