import CMicroRunnerShims
import MicroRunnerProtocol

/// SHA-256 (SHA-NI shim), hex and base64: no libsodium here, so the client library and its dependents never link it
/// (Ed25519 verification lives in MicroRunnerSignatures, the runner's; signing in MicroRunnerClient).
package enum Crypto {
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

    /// The base64 alphabet.
    private static let base64Alphabet: [UInt8] = Array(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8
    )
    /// Byte -> 6-bit value, 0xFF for bytes outside the alphabet.
    private static let base64Values: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in base64Alphabet.enumerated() { table[Int(c)] = UInt8(i) }
        return table
    }()

    /// Standard base64 (with padding). In Swift rather than libsodium's: linking sodium's codec into the runner
    /// brought in its initialisation and with it ~90 KB of ciphers the runner never uses. Works on raw buffers:
    /// appending byte by byte made the codec the runner's largest cost in an 8 MiB `mrctl put`.
    package static func base64Encode(_ bytes: [UInt8]) -> String {
        let count = (bytes.count + 2) / 3 * 4
        guard count > 0 else { return "" }
        return base64Alphabet.withUnsafeBufferPointer { a in
            bytes.withUnsafeBufferPointer { src in
                String(unsafeUninitializedCapacity: count) { dst in
                    var i = 0
                    var o = 0
                    while i + 3 <= src.count {
                        let n = UInt32(src[i]) << 16 | UInt32(src[i + 1]) << 8 | UInt32(src[i + 2])
                        dst[o] = a[Int(n >> 18)]
                        dst[o + 1] = a[Int(n >> 12 & 63)]
                        dst[o + 2] = a[Int(n >> 6 & 63)]
                        dst[o + 3] = a[Int(n & 63)]
                        i += 3
                        o += 4
                    }
                    let rest = src.count - i
                    if rest > 0 {
                        let n = UInt32(src[i]) << 16 | (rest == 2 ? UInt32(src[i + 1]) << 8 : 0)
                        dst[o] = a[Int(n >> 18)]
                        dst[o + 1] = a[Int(n >> 12 & 63)]
                        dst[o + 2] = rest == 2 ? a[Int(n >> 6 & 63)] : UInt8(ascii: "=")
                        dst[o + 3] = UInt8(ascii: "=")
                        o += 4
                    }
                    return o
                }
            }
        }
    }

    /// Decodes standard base64 strictly, as libsodium's `sodium_base642bin` (original variant) does: padding
    /// required and only at the end, spaces, tabs and newlines ignored anywhere, unused trailing bits zero.
    /// Whole quads of alphabet characters go four at a time; anything else (whitespace, padding, an invalid
    /// byte) through the one-character state machine, which hands back to the fast path at the next quad.
    /// - Returns: the bytes, or `nil` when the text is not valid base64.
    package static func base64Decode(_ text: String) -> [UInt8]? {
        var text = text
        return text.withUTF8 { src -> [UInt8]? in
            base64Values.withUnsafeBufferPointer { t -> [UInt8]? in
                var valid = true
                let out = [UInt8](unsafeUninitializedCapacity: src.count / 4 * 3 + 3) { dst, initialized in
                    var o = 0
                    var acc: UInt32 = 0
                    var bits = 0
                    var symbols = 0
                    var padding = 0
                    var i = 0
                    while true {
                        if bits == 0 && padding == 0 {
                            while i + 4 <= src.count {
                                let a = t[Int(src[i])]
                                let b = t[Int(src[i + 1])]
                                let c = t[Int(src[i + 2])]
                                let d = t[Int(src[i + 3])]
                                if (a | b | c | d) & 0xC0 != 0 { break }  // 0xFF: not in the alphabet
                                dst[o] = a << 2 | b >> 4
                                dst[o + 1] = b << 4 | c >> 2
                                dst[o + 2] = c << 6 | d
                                o += 3
                                i += 4
                                symbols += 4
                            }
                        }
                        guard i < src.count else { break }
                        let ch = src[i]
                        i += 1
                        if ch == 0x20 || ch == 0x09 || ch == 0x0D || ch == 0x0A { continue }
                        if ch == UInt8(ascii: "=") {
                            padding += 1
                            continue
                        }
                        let v = t[Int(ch)]
                        guard v != 0xFF, padding == 0 else {
                            valid = false
                            break
                        }
                        acc = acc << 6 | UInt32(v)
                        bits += 6
                        symbols += 1
                        if bits >= 8 {
                            bits -= 8
                            dst[o] = UInt8(truncatingIfNeeded: acc >> UInt32(bits))
                            o += 1
                            acc &= (1 << UInt32(bits)) - 1
                        }
                    }
                    if symbols % 4 == 1 || padding != (4 - symbols % 4) % 4 || acc != 0 { valid = false }
                    initialized = valid ? o : 0
                }
                return valid ? out : nil
            }
        }
    }

    // MARK: Ed25519

    /// Ed25519 public key length in bytes.
    package static let ed25519PublicKeyBytes = 32
    /// Ed25519 signature length in bytes.
    package static let ed25519SignatureBytes = 64

    /// Random bytes from the kernel (getrandom(2), /dev/urandom where it is missing).
    package static func randomBytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var filled = 0
        out.withUnsafeMutableBytes { buffer in
            while filled < count {
                let n = mr_getrandom(buffer.baseAddress! + filled, count - filled)
                if n <= 0 { fatalError("micro-runner: no randomness from the kernel") }
                filled += n
            }
        }
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
