import CMicroRunnerShims
import Foundation
import MicroRunnerCrypto
import MicroRunnerHandlers
import MicroRunnerSignatures
import MicroRunnerSystem
import MicroRunnerTestSupport
import Testing

@Suite struct SHA256Tests {
    @Test(arguments: [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        (
            "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        ),
    ])
    func fipsVectors(_ input: String, _ digest: String) {
        for accelerated in [true, false] {
            var h = Crypto.SHA256(accelerated: accelerated)
            h.update(Array(input.utf8))
            #expect(h.finalizeHex() == digest)
        }
    }

    @Test func bothPathsAgreeWithLibsodiumAtEveryLengthAndSplit() {
        var rng = SystemRandomNumberGenerator()
        let data = (0..<5000).map { _ in UInt8.random(in: 0...255, using: &rng) }
        for length in Array(0...200) + [1000, 4095, 4096, 4097, 5000] {
            let slice = Array(data[0..<length])
            let expected = Crypto.libsodiumSHA256Hex(slice)
            for accelerated in [true, false] {
                var whole = Crypto.SHA256(accelerated: accelerated)
                whole.update(slice)
                #expect(whole.finalizeHex() == expected, "length \(length) accelerated \(accelerated)")
                // The same bytes fed in uneven pieces.
                var pieces = Crypto.SHA256(accelerated: accelerated)
                var i = 0
                var step = 1
                while i < length {
                    let end = min(length, i + step)
                    pieces.update(Array(slice[i..<end]))
                    i = end
                    step = step * 3 % 97 + 1
                }
                #expect(pieces.finalizeHex() == expected, "pieces, length \(length)")
            }
        }
    }

    @Test func millionAs() {
        var h = Crypto.SHA256()
        let chunk = [UInt8](repeating: UInt8(ascii: "a"), count: 1000)
        for _ in 0..<1000 { h.update(chunk) }
        #expect(h.finalizeHex() == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test func reportsWhetherTheCPUPathIsUsed() {
        // Not an assertion about the machine: the answer must match what /proc/cpuinfo says.
        let cpuinfo = (try? FileSystem.readAll("/proc/cpuinfo")) ?? []
        let hasSHA = String(decoding: cpuinfo, as: UTF8.self).contains(" sha_ni")
        #expect((mr_sha256_accelerated() == 1) == hasSHA)
    }
}

@Suite struct Base64Tests {
    @Test(arguments: [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foobar", "Zm9vYmFy")])
    func rfc4648Vectors(_ plain: String, _ encoded: String) {
        #expect(Crypto.base64Encode(Array(plain.utf8)) == encoded)
        #expect(Crypto.base64Decode(encoded) == Array(plain.utf8))
    }

    @Test(arguments: ["Zg", "Zm9v!", "Zm9vYmFy=", "====", "Zm9=v", "Zm9vZm9v!Zm9v", "Zh==", "Zm9vZ===", "Z"])
    func rejectsInvalid(_ text: String) {
        #expect(Crypto.base64Decode(text) == nil)
    }

    @Test(arguments: [
        ("Zm 9v", "foo"), ("Zm9v\nYmFy", "foobar"), (" Zm9vYg = =\r\n", "foob"), ("Zm9vYmFy\t", "foobar"),
    ])
    func whitespaceIsIgnoredAnywhere(_ text: String, _ plain: String) {
        #expect(Crypto.base64Decode(text) == Array(plain.utf8))
    }

    /// The buffer-based codec against Foundation's on random bytes of every length up to 300, with line breaks
    /// and spaces inserted where the quad fast path must hand over to the one-character path and back.
    @Test func agreesWithFoundationOnRandomData() {
        var rng = SystemRandomNumberGenerator()
        for length in 0...300 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let encoded = Crypto.base64Encode(bytes)
            #expect(encoded == Data(bytes).base64EncodedString(), "length \(length)")
            #expect(Crypto.base64Decode(encoded) == bytes, "length \(length)")
            var broken = ""
            for (i, c) in encoded.enumerated() {
                if i > 0 && i % Int.random(in: 1...80, using: &rng) == 0 { broken += ["\n", " ", "\r\n", "\t"][i % 4] }
                broken.append(c)
            }
            #expect(Crypto.base64Decode(broken) == bytes, "length \(length): \(broken.debugDescription)")
        }
    }
}

@Suite struct Ed25519Tests {
    /// RFC 8032 section 7.1 (MicroRunnerTestSupport's `RFC8032`), and a flipped bit or byte more refused.
    @Test(arguments: RFC8032.vectors.indices)
    func rfc8032(_ i: Int) throws {
        let v = RFC8032.vectors[i]
        let seed = try #require(Crypto.unhex(v.seed))
        let message = try #require(Crypto.unhex(v.message))
        let signature = try #require(Crypto.unhex(v.signature))
        let pair = try #require(Crypto.ed25519KeyPair(seed: seed))
        #expect(Crypto.hex(pair.publicKey) == v.publicKey)
        #expect(Crypto.ed25519Sign(message: message, secretKey: pair.secretKey) == signature)
        #expect(Crypto.ed25519Verify(signature: signature, message: message, publicKey: pair.publicKey))
        var tampered = signature
        tampered[10] ^= 1
        #expect(!Crypto.ed25519Verify(signature: tampered, message: message, publicKey: pair.publicKey))
        #expect(!Crypto.ed25519Verify(signature: signature, message: message + [0], publicKey: pair.publicKey))
    }
}
