/// Ed25519 signing (RFC 8032, section 5.1.6), the only part of Ed25519 the client needs: the runner verifies with
/// libsodium, and `Ed25519SignerTests` checks every signature made here against libsodium's byte for byte.
///
/// Why not swift-crypto: its BoringSSL was 106 s of a cold 197 s `swift build` of the quick tier on 2 cores, and it
/// was built twice in a full test run (this package and the example package that depends on it), for one
/// signature per command. This file is the whole cost now.
///
/// Secrets are handled without branches or indices that depend on them: the base-point multiplication adds on every
/// bit and selects the result with a mask, and the scalar arithmetic is straight-line. What it cannot promise, as
/// no Swift code can, is that the key's bytes are wiped from memory after use.
enum Ed25519 {
    /// A signing key expanded from its 32-byte seed (RFC 8032, 5.1.5).
    struct PrivateKey {
        /// The clamped secret scalar `s`.
        private let scalar: [UInt8]
        /// The second half of SHA-512(seed), which makes signing deterministic.
        private let prefix: [UInt8]
        /// The 32-byte encoded public key `A = [s]B`.
        let publicKey: [UInt8]

        /// - Precondition: `seed` is 32 bytes.
        init(seed: [UInt8]) {
            precondition(seed.count == 32, "an Ed25519 seed is 32 bytes")
            let digest = SHA512.hash(seed)
            var s = Array(digest[0..<32])
            s[0] &= 248
            s[31] &= 127
            s[31] |= 64
            scalar = s
            prefix = Array(digest[32..<64])
            publicKey = EdwardsPoint.base.multiplied(by: s).encoded()
        }

        /// The 64-byte signature `R || S` of `message` (RFC 8032, 5.1.6).
        func signature(for message: [UInt8]) -> [UInt8] {
            let r = Scalar.reduce(SHA512.hash(prefix + message))
            let encodedR = EdwardsPoint.base.multiplied(by: r).encoded()
            let k = Scalar.reduce(SHA512.hash(encodedR + publicKey + message))
            return encodedR + Scalar.multiplyAdd(k, scalar, r)
        }
    }
}

/// An element of GF(2^255 - 19) in five 51-bit limbs. Every operation returns limbs below 2^51 + 2^8, which keeps
/// each product of `*` below 2^104 and each column sum below 2^111, inside the 128-bit accumulators.
struct FieldElement {
    var l0: UInt64, l1: UInt64, l2: UInt64, l3: UInt64, l4: UInt64

    private static let mask: UInt64 = (1 << 51) - 1

    static let zero = FieldElement(0)
    static let one = FieldElement(1)

    init(l0: UInt64, l1: UInt64, l2: UInt64, l3: UInt64, l4: UInt64) {
        (self.l0, self.l1, self.l2, self.l3, self.l4) = (l0, l1, l2, l3, l4)
    }

    init(_ small: UInt64) {
        precondition(small < 1 << 51)
        self.init(l0: small, l1: 0, l2: 0, l3: 0, l4: 0)
    }

    /// From 32 little-endian bytes; the top bit is ignored, as RFC 8032 decoding does.
    init(bytes: [UInt8]) {
        precondition(bytes.count == 32)
        var words = [UInt64](repeating: 0, count: 4)
        for i in 0..<32 { words[i / 8] |= UInt64(bytes[i]) << (8 * UInt64(i % 8)) }
        let m = Self.mask
        self.init(
            l0: words[0] & m,
            l1: (words[0] >> 51 | words[1] << 13) & m,
            l2: (words[1] >> 38 | words[2] << 26) & m,
            l3: (words[2] >> 25 | words[3] << 39) & m,
            l4: (words[3] >> 12) & m
        )
    }

    /// The canonical 32-byte little-endian encoding (fully reduced below p).
    var bytes: [UInt8] {
        let m = Self.mask
        let h = carried()
        // q = floor((h + 19) / 2^255): 1 exactly when h >= p (h < 2p here). Adding 19q and dropping bit 255
        // subtracts p.
        var q = (h.l0 &+ 19) >> 51
        q = (h.l1 &+ q) >> 51
        q = (h.l2 &+ q) >> 51
        q = (h.l3 &+ q) >> 51
        q = (h.l4 &+ q) >> 51
        var l0 = h.l0 &+ 19 &* q
        var l1 = h.l1 &+ (l0 >> 51)
        l0 &= m
        var l2 = h.l2 &+ (l1 >> 51)
        l1 &= m
        var l3 = h.l3 &+ (l2 >> 51)
        l2 &= m
        var l4 = h.l4 &+ (l3 >> 51)
        l3 &= m
        l4 &= m
        let words = [l0 | l1 << 51, l1 >> 13 | l2 << 38, l2 >> 26 | l3 << 25, l3 >> 39 | l4 << 12]
        var out = [UInt8](repeating: 0, count: 32)
        for i in 0..<32 { out[i] = UInt8(truncatingIfNeeded: words[i / 8] >> (8 * UInt64(i % 8))) }
        return out
    }

    /// The same value with every limb carried into the next (the top one into the bottom, times 19).
    private func carried() -> FieldElement {
        let m = Self.mask
        var r = self
        r.l1 &+= r.l0 >> 51
        r.l0 &= m
        r.l2 &+= r.l1 >> 51
        r.l1 &= m
        r.l3 &+= r.l2 >> 51
        r.l2 &= m
        r.l4 &+= r.l3 >> 51
        r.l3 &= m
        r.l0 &+= 19 &* (r.l4 >> 51)
        r.l4 &= m
        r.l1 &+= r.l0 >> 51
        r.l0 &= m
        return r
    }

    static func + (a: FieldElement, b: FieldElement) -> FieldElement {
        FieldElement(l0: a.l0 &+ b.l0, l1: a.l1 &+ b.l1, l2: a.l2 &+ b.l2, l3: a.l3 &+ b.l3, l4: a.l4 &+ b.l4)
            .carried()
    }

    /// a - b as a + 4p - b, so that no limb goes below zero (b's limbs are below 2^51 + 2^8 < 4p's).
    static func - (a: FieldElement, b: FieldElement) -> FieldElement {
        let low: UInt64 = 0x1F_FFFF_FFFF_FFB4  // 4 * (2^51 - 19)
        let high: UInt64 = 0x1F_FFFF_FFFF_FFFC  // 4 * (2^51 - 1)
        return FieldElement(
            l0: a.l0 &+ low &- b.l0,
            l1: a.l1 &+ high &- b.l1,
            l2: a.l2 &+ high &- b.l2,
            l3: a.l3 &+ high &- b.l3,
            l4: a.l4 &+ high &- b.l4
        ).carried()
    }

    static prefix func - (a: FieldElement) -> FieldElement { .zero - a }

    static func * (a: FieldElement, b: FieldElement) -> FieldElement {
        // 2^255 = 19 (mod p): a limb product that lands at 2^255 or above comes back times 19.
        let b1 = 19 &* b.l1
        let b2 = 19 &* b.l2
        let b3 = 19 &* b.l3
        let b4 = 19 &* b.l4
        var r0 = Wide(a.l0, b.l0)
        var r1 = Wide(a.l0, b.l1)
        var r2 = Wide(a.l0, b.l2)
        var r3 = Wide(a.l0, b.l3)
        var r4 = Wide(a.l0, b.l4)
        r0.add(a.l1, b4)
        r0.add(a.l2, b3)
        r0.add(a.l3, b2)
        r0.add(a.l4, b1)
        r1.add(a.l1, b.l0)
        r1.add(a.l2, b4)
        r1.add(a.l3, b3)
        r1.add(a.l4, b2)
        r2.add(a.l1, b.l1)
        r2.add(a.l2, b.l0)
        r2.add(a.l3, b4)
        r2.add(a.l4, b3)
        r3.add(a.l1, b.l2)
        r3.add(a.l2, b.l1)
        r3.add(a.l3, b.l0)
        r3.add(a.l4, b4)
        r4.add(a.l1, b.l3)
        r4.add(a.l2, b.l2)
        r4.add(a.l3, b.l1)
        r4.add(a.l4, b.l0)
        let m = mask
        r1.add(r0.shiftedRight51)
        r2.add(r1.shiftedRight51)
        r3.add(r2.shiftedRight51)
        r4.add(r3.shiftedRight51)
        var l0 = (r0.low & m) &+ 19 &* r4.shiftedRight51
        var l1 = r1.low & m
        l1 &+= l0 >> 51
        l0 &= m
        return FieldElement(l0: l0, l1: l1, l2: r2.low & m, l3: r3.low & m, l4: r4.low & m)
    }

    var squared: FieldElement { self * self }

    /// a^(p - 2) = a^-1 (Fermat); 0 for 0. The exponent 2^255 - 21 is public: all its bits are one but bits 2 and 4.
    var inverse: FieldElement {
        var result = self
        for bit in stride(from: 253, through: 0, by: -1) {
            result = result.squared
            if bit != 2 && bit != 4 { result = result * self }
        }
        return result
    }

    /// `a` when `choose` is 1, `b` when it is 0, without a branch on `choose`.
    static func select(_ a: FieldElement, _ b: FieldElement, _ choose: UInt64) -> FieldElement {
        let m = 0 &- choose
        return FieldElement(
            l0: b.l0 ^ (m & (a.l0 ^ b.l0)),
            l1: b.l1 ^ (m & (a.l1 ^ b.l1)),
            l2: b.l2 ^ (m & (a.l2 ^ b.l2)),
            l3: b.l3 ^ (m & (a.l3 ^ b.l3)),
            l4: b.l4 ^ (m & (a.l4 ^ b.l4))
        )
    }
}

/// A 128-bit sum of 64 x 64-bit products (UInt128 is not available on every platform the client builds for).
private struct Wide {
    var low: UInt64
    var high: UInt64

    init(_ a: UInt64, _ b: UInt64) { (high, low) = a.multipliedFullWidth(by: b) }

    mutating func add(_ a: UInt64, _ b: UInt64) { add(Wide(a, b)) }

    mutating func add(_ other: Wide) {
        let (sum, overflow) = low.addingReportingOverflow(other.low)
        low = sum
        high &+= other.high &+ (overflow ? 1 : 0)
    }

    mutating func add(_ value: UInt64) {
        let (sum, overflow) = low.addingReportingOverflow(value)
        low = sum
        high &+= overflow ? 1 : 0
    }

    /// The value over 2^51; below 2^64 for every sum `*` forms (< 2^112).
    var shiftedRight51: UInt64 { high << 13 | low >> 51 }
}

/// A point of edwards25519 (-x^2 + y^2 = 1 + d x^2 y^2) in extended coordinates: x = X/Z, y = Y/Z, xy = T/Z.
struct EdwardsPoint {
    var x: FieldElement, y: FieldElement, z: FieldElement, t: FieldElement

    static let identity = EdwardsPoint(x: .zero, y: .one, z: .one, t: .zero)

    /// d = -121665 / 121666.
    static let d: FieldElement = -FieldElement(121_665) * FieldElement(121_666).inverse
    private static let d2 = d + d

    /// The base point B: y = 4/5 and the x whose encoding is even (RFC 8032, 5.1).
    static let base: EdwardsPoint = {
        let y = FieldElement(4) * FieldElement(5).inverse
        // x = 15112221349535400772501151409588531511454012693041857206046113283949847762202, little-endian.
        let x = FieldElement(bytes: [
            0x1a, 0xd5, 0x25, 0x8f, 0x60, 0x2d, 0x56, 0xc9, 0xb2, 0xa7, 0x25, 0x95, 0x60, 0xc7, 0x2c, 0x69,
            0x5c, 0xdc, 0xd6, 0xfd, 0x31, 0xe2, 0xa4, 0xc0, 0xfe, 0x53, 0x6e, 0xcd, 0xd3, 0x36, 0x69, 0x21,
        ])
        return EdwardsPoint(x: x, y: y, z: .one, t: x * y)
    }()

    /// P + Q, complete (the same formula doubles): "add-2008-hwcd-3" for a = -1.
    static func + (p: EdwardsPoint, q: EdwardsPoint) -> EdwardsPoint {
        let a = (p.y - p.x) * (q.y - q.x)
        let b = (p.y + p.x) * (q.y + q.x)
        let c = p.t * d2 * q.t
        let dd = (p.z + p.z) * q.z
        let e = b - a
        let f = dd - c
        let g = dd + c
        let h = b + a
        return EdwardsPoint(x: e * f, y: g * h, z: f * g, t: e * h)
    }

    /// [scalar]P for a 32-byte little-endian scalar: double, add, and keep the sum by mask on every one of the 256
    /// bits, so that the time and the memory touched do not depend on the scalar.
    func multiplied(by scalar: [UInt8]) -> EdwardsPoint {
        precondition(scalar.count == 32)
        var q = EdwardsPoint.identity
        for bit in stride(from: 255, through: 0, by: -1) {
            q = q + q
            let sum = q + self
            let choose = UInt64((scalar[bit / 8] >> UInt8(bit % 8)) & 1)
            q = EdwardsPoint(
                x: .select(sum.x, q.x, choose),
                y: .select(sum.y, q.y, choose),
                z: .select(sum.z, q.z, choose),
                t: .select(sum.t, q.t, choose)
            )
        }
        return q
    }

    /// The 32-byte encoding: y, with the low bit of x in the top bit (RFC 8032, 5.1.2).
    func encoded() -> [UInt8] {
        let zInverse = z.inverse
        var out = (y * zInverse).bytes
        out[31] |= ((x * zInverse).bytes[0] & 1) << 7
        return out
    }

    /// Whether the point satisfies the curve equation (for tests).
    var isOnCurve: Bool {
        let zInverse = z.inverse
        let x = x * zInverse
        let y = y * zInverse
        let xx = x.squared
        let yy = y.squared
        return (yy - xx).bytes == (.one + EdwardsPoint.d * xx * yy).bytes
    }
}

/// Arithmetic modulo the group order L = 2^252 + 27742317777372353535851937790883648493, on little-endian
/// base-256 digits held in Int64 so that they may go negative between carries.
enum Scalar {
    /// L's 32 little-endian bytes.
    static let order: [Int64] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ]

    /// A 64-byte little-endian number (a SHA-512 digest) modulo L.
    static func reduce(_ wide: [UInt8]) -> [UInt8] {
        precondition(wide.count == 64)
        var digits = wide.map { Int64($0) }
        return reduced(&digits)
    }

    /// (a * b + c) mod L for 32-byte scalars.
    static func multiplyAdd(_ a: [UInt8], _ b: [UInt8], _ c: [UInt8]) -> [UInt8] {
        var digits = [Int64](repeating: 0, count: 64)
        for i in 0..<32 { digits[i] = Int64(c[i]) }
        // Each digit sums at most 32 products below 2^16: far inside Int64.
        for i in 0..<32 {
            for j in 0..<32 { digits[i + j] += Int64(a[i]) * Int64(b[j]) }
        }
        return reduced(&digits)
    }

    /// 64 digits (each well inside Int64) modulo L, as 32 bytes.
    private static func reduced(_ x: inout [Int64]) -> [UInt8] {
        // Fold digits 63...32 down: digit i stands for x[i] * 2^(8(i-32)) * 2^256, and
        // 2^256 = 16 * 2^252 = -16 * (L - 2^252) (mod L), whose 16 low bytes are L's. Each fold keeps the digits it
        // touches within [-128, 128) by rounding carries, so nothing grows from one fold to the next.
        for i in stride(from: 63, through: 32, by: -1) {
            let top = x[i]
            var carry: Int64 = 0
            var j = i - 32
            while j < i - 12 {
                x[j] += carry - 16 * top * order[j - (i - 32)]
                carry = (x[j] + 128) >> 8
                x[j] -= carry << 8
                j += 1
            }
            x[j] += carry
            x[i] = 0
        }
        // Now below about 2^256: take the multiples of 2^252 (digit 31's high nibble) times L off once, then once
        // more for what that leaves above L, and carry into bytes.
        let high = x[31] >> 4
        var carry: Int64 = 0
        for j in 0..<32 {
            x[j] += carry - high * order[j]
            carry = x[j] >> 8
            x[j] &= 255
        }
        for j in 0..<32 { x[j] -= carry * order[j] }
        var out = [UInt8](repeating: 0, count: 32)
        for i in 0..<32 {
            x[i + 1] += x[i] >> 8
            out[i] = UInt8(x[i] & 255)
        }
        return out
    }
}

/// SHA-512 (FIPS 180-4), one shot: the messages Ed25519 hashes here are a seed or a short signing input.
enum SHA512 {
    /// The first 64 bits of the fractional parts of the square roots of the first 8 primes.
    private static let initial: [UInt64] = [
        0x6a09_e667_f3bc_c908, 0xbb67_ae85_84ca_a73b, 0x3c6e_f372_fe94_f82b, 0xa54f_f53a_5f1d_36f1,
        0x510e_527f_ade6_82d1, 0x9b05_688c_2b3e_6c1f, 0x1f83_d9ab_fb41_bd6b, 0x5be0_cd19_137e_2179,
    ]

    /// The first 64 bits of the fractional parts of the cube roots of the first 80 primes.
    private static let rounds: [UInt64] = [
        0x428a_2f98_d728_ae22, 0x7137_4491_23ef_65cd, 0xb5c0_fbcf_ec4d_3b2f, 0xe9b5_dba5_8189_dbbc,
        0x3956_c25b_f348_b538, 0x59f1_11f1_b605_d019, 0x923f_82a4_af19_4f9b, 0xab1c_5ed5_da6d_8118,
        0xd807_aa98_a303_0242, 0x1283_5b01_4570_6fbe, 0x2431_85be_4ee4_b28c, 0x550c_7dc3_d5ff_b4e2,
        0x72be_5d74_f27b_896f, 0x80de_b1fe_3b16_96b1, 0x9bdc_06a7_25c7_1235, 0xc19b_f174_cf69_2694,
        0xe49b_69c1_9ef1_4ad2, 0xefbe_4786_384f_25e3, 0x0fc1_9dc6_8b8c_d5b5, 0x240c_a1cc_77ac_9c65,
        0x2de9_2c6f_592b_0275, 0x4a74_84aa_6ea6_e483, 0x5cb0_a9dc_bd41_fbd4, 0x76f9_88da_8311_53b5,
        0x983e_5152_ee66_dfab, 0xa831_c66d_2db4_3210, 0xb003_27c8_98fb_213f, 0xbf59_7fc7_beef_0ee4,
        0xc6e0_0bf3_3da8_8fc2, 0xd5a7_9147_930a_a725, 0x06ca_6351_e003_826f, 0x1429_2967_0a0e_6e70,
        0x27b7_0a85_46d2_2ffc, 0x2e1b_2138_5c26_c926, 0x4d2c_6dfc_5ac4_2aed, 0x5338_0d13_9d95_b3df,
        0x650a_7354_8baf_63de, 0x766a_0abb_3c77_b2a8, 0x81c2_c92e_47ed_aee6, 0x9272_2c85_1482_353b,
        0xa2bf_e8a1_4cf1_0364, 0xa81a_664b_bc42_3001, 0xc24b_8b70_d0f8_9791, 0xc76c_51a3_0654_be30,
        0xd192_e819_d6ef_5218, 0xd699_0624_5565_a910, 0xf40e_3585_5771_202a, 0x106a_a070_32bb_d1b8,
        0x19a4_c116_b8d2_d0c8, 0x1e37_6c08_5141_ab53, 0x2748_774c_df8e_eb99, 0x34b0_bcb5_e19b_48a8,
        0x391c_0cb3_c5c9_5a63, 0x4ed8_aa4a_e341_8acb, 0x5b9c_ca4f_7763_e373, 0x682e_6ff3_d6b2_b8a3,
        0x748f_82ee_5def_b2fc, 0x78a5_636f_4317_2f60, 0x84c8_7814_a1f0_ab72, 0x8cc7_0208_1a64_39ec,
        0x90be_fffa_2363_1e28, 0xa450_6ceb_de82_bde9, 0xbef9_a3f7_b2c6_7915, 0xc671_78f2_e372_532b,
        0xca27_3ece_ea26_619c, 0xd186_b8c7_21c0_c207, 0xeada_7dd6_cde0_eb1e, 0xf57d_4f7f_ee6e_d178,
        0x06f0_67aa_7217_6fba, 0x0a63_7dc5_a2c8_98a6, 0x113f_9804_bef9_0dae, 0x1b71_0b35_131c_471b,
        0x28db_77f5_2304_7d84, 0x32ca_ab7b_40c7_2493, 0x3c9e_be0a_15c9_bebc, 0x431d_67c4_9c10_0d4c,
        0x4cc5_d4be_cb3e_42b6, 0x597f_299c_fc65_7e2a, 0x5fcb_6fab_3ad6_faec, 0x6c44_198c_4a47_5817,
    ]

    /// The 64-byte digest of `message`.
    static func hash(_ message: [UInt8]) -> [UInt8] {
        var padded = message
        padded.append(0x80)
        while padded.count % 128 != 112 { padded.append(0) }
        let bits = UInt64(message.count) &* 8
        padded += [UInt8](repeating: 0, count: 8)  // the length's high 64 bits: messages here are far below 2^61 bytes
        for shift in stride(from: 56, through: 0, by: -8) { padded.append(UInt8(truncatingIfNeeded: bits >> shift)) }

        var state = initial
        var w = [UInt64](repeating: 0, count: 80)
        for block in stride(from: 0, to: padded.count, by: 128) {
            for t in 0..<16 {
                var word: UInt64 = 0
                for byte in 0..<8 { word = word << 8 | UInt64(padded[block + 8 * t + byte]) }
                w[t] = word
            }
            for t in 16..<80 {
                let s0 = w[t - 15].rotatedRight(1) ^ w[t - 15].rotatedRight(8) ^ (w[t - 15] >> 7)
                let s1 = w[t - 2].rotatedRight(19) ^ w[t - 2].rotatedRight(61) ^ (w[t - 2] >> 6)
                w[t] = w[t - 16] &+ s0 &+ w[t - 7] &+ s1
            }
            var (a, b, c, d, e, f, g, h) = (
                state[0], state[1], state[2], state[3], state[4], state[5], state[6], state[7]
            )
            for t in 0..<80 {
                let sum1 = e.rotatedRight(14) ^ e.rotatedRight(18) ^ e.rotatedRight(41)
                let choice = (e & f) ^ (~e & g)
                let t1 = h &+ sum1 &+ choice &+ rounds[t] &+ w[t]
                let sum0 = a.rotatedRight(28) ^ a.rotatedRight(34) ^ a.rotatedRight(39)
                let majority = (a & b) ^ (a & c) ^ (b & c)
                (h, g, f, e, d, c, b, a) = (g, f, e, d &+ t1, c, b, a, t1 &+ sum0 &+ majority)
            }
            for (i, v) in [a, b, c, d, e, f, g, h].enumerated() { state[i] &+= v }
        }
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for word in state {
            for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: word >> shift)) }
        }
        return out
    }
}

extension UInt64 {
    fileprivate func rotatedRight(_ count: UInt64) -> UInt64 { self >> count | self << (64 - count) }
}
