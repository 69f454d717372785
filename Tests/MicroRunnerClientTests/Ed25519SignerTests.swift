import MicroRunnerCrypto
import MicroRunnerProtocol
import MicroRunnerSignatures
import MicroRunnerTestSupport
import Testing

@testable import MicroRunnerClient

/// The client signs with its own Ed25519 (Ed25519.swift), the runner verifies with libsodium: the two must agree
/// byte for byte. Ed25519 is deterministic (RFC 8032), so the same seed and message give one signature in both.
@Suite struct Ed25519SignerTests {
    @Test(arguments: 0..<16)
    func theClientSignsAsLibsodiumDoes(_ round: Int) throws {
        let seed = Crypto.randomBytes(32)
        let signer = try Ed25519Signer(seed: seed)
        let pair = try #require(Crypto.ed25519KeyPair(seed: seed))
        #expect(signer.publicKeyBase64 == Crypto.base64Encode(pair.publicKey))

        let params: JSONValue = .object(JSONObject([("command", .string("echo \(round) é \u{0}"))]))
        let command = CommandMessage(id: "c\(round)", type: .exec, timeout: 3, params: params)
        let nonce = Crypto.hex(Crypto.randomBytes(16))
        let input = signingInput(for: command, nonce: nonce, paramsBytes: JSONWriter.serialize(command.params))
        let sent = try #require(Crypto.base64Decode(try signer.signature(for: command, nonce: nonce)))
        #expect(sent == Crypto.ed25519Sign(message: input, secretKey: pair.secretKey))
        #expect(Crypto.ed25519Verify(signature: sent, message: input, publicKey: pair.publicKey))

        let cancel = try #require(Crypto.base64Decode(try signer.cancelSignature(commandID: "c\(round)", nonce: nonce)))
        let cancelInput = cancelSigningInput(nonce: nonce, commandID: "c\(round)")
        #expect(cancel == Crypto.ed25519Sign(message: cancelInput, secretKey: pair.secretKey))
    }

    @Test func aGeneratedKeyIsASeedAndItsPublicKey() throws {
        let (privateKey, publicKey) = Ed25519Signer.generate()
        let seed = try #require(Crypto.base64Decode(privateKey))
        #expect(seed.count == 32)
        let pair = try #require(Crypto.ed25519KeyPair(seed: seed))
        #expect(Crypto.base64Encode(pair.publicKey) == publicKey)
        #expect(Ed25519Signer.generate().privateKey != privateKey)
    }

    @Test func aSeedOfAnotherLengthIsAUsageError() {
        for count in [0, 31, 33, 64] {
            #expect(throws: ClientError.self) { try Ed25519Signer(seed: [UInt8](repeating: 7, count: count)) }
        }
    }

    /// Random seeds and messages of every length from 0 to 300 bytes (SHA-512's padding crosses a block at 112):
    /// the public key and signature equal libsodium's, and libsodium accepts the signature.
    @Test func everyMessageLengthSignsAsLibsodiumDoes() throws {
        for length in 0...300 {
            let seed = Crypto.randomBytes(32)
            let message = Crypto.randomBytes(length)
            let pair = try #require(Crypto.ed25519KeyPair(seed: seed))
            let key = Ed25519.PrivateKey(seed: seed)
            #expect(key.publicKey == pair.publicKey)
            let signature = key.signature(for: message)
            #expect(signature == Crypto.ed25519Sign(message: message, secretKey: pair.secretKey), "length \(length)")
            #expect(Crypto.ed25519Verify(signature: signature, message: message, publicKey: pair.publicKey))
        }
    }

    /// RFC 8032, 7.1: TEST 1, 2, 3 and SHA(abc).
    @Test(arguments: RFC8032.vectors.indices)
    func rfc8032Vectors(_ index: Int) throws {
        let vector = RFC8032.vectors[index]
        let key = Ed25519.PrivateKey(seed: try #require(Crypto.unhex(vector.seed)))
        #expect(Crypto.hex(key.publicKey) == vector.publicKey)
        #expect(Crypto.hex(key.signature(for: try #require(Crypto.unhex(vector.message)))) == vector.signature)
    }

    /// FIPS 180-4 examples and the one-million-"a" vector (padding in one block, across two, and many blocks).
    @Test func sha512Vectors() {
        #expect(
            Crypto.hex(SHA512.hash([]))
                == "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"
        )
        #expect(
            Crypto.hex(SHA512.hash(Array("abc".utf8)))
                == "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        )
        let twoBlocks =
            "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu"
        #expect(
            Crypto.hex(SHA512.hash(Array(twoBlocks.utf8)))
                == "8e959b75dae313da8cf4f72814fc143f8f7779c6eb9f7fa17299aeadb6889018501d289e4900f7e4331b99dec4b5433ac7d329eeb6dd26545e96e55b874be909"
        )
        #expect(
            Crypto.hex(SHA512.hash([UInt8](repeating: 0x61, count: 1_000_000)))
                == "e718483d0ce769644e2e42c7bc15b4638e1f98b13b2044285632a803afa973ebde0ff244877ea60a4cb0432ce577c31beb009c5c2c49aa2e4eadb217ad8cc09b"
        )
    }

    /// The curve's constants are what RFC 8032 says: B lies on the curve, its encoding is the standard one, and
    /// [L]B is the identity, so scalars are reduced modulo the right order.
    @Test func theBasePointHasOrderL() throws {
        #expect(EdwardsPoint.base.isOnCurve)
        #expect(
            Crypto.hex(EdwardsPoint.base.encoded())
                == "5866666666666666666666666666666666666666666666666666666666666666"
        )
        let order = Scalar.order.map { UInt8($0) }
        #expect(EdwardsPoint.base.multiplied(by: order).encoded() == EdwardsPoint.identity.encoded())
        var one = [UInt8](repeating: 0, count: 32)
        one[0] = 1
        #expect(EdwardsPoint.base.multiplied(by: one).encoded() == EdwardsPoint.base.encoded())
        // L reduces to 0, L + 1 to 1, and 2^512 - 1 to its known residue.
        #expect(Scalar.reduce(order + [UInt8](repeating: 0, count: 32)) == [UInt8](repeating: 0, count: 32))
        var orderPlusOne = order
        orderPlusOne[0] += 1
        #expect(Scalar.reduce(orderPlusOne + [UInt8](repeating: 0, count: 32)) == one)
        #expect(
            Crypto.hex(Scalar.reduce([UInt8](repeating: 0xFF, count: 64)))
                == "000f9c44e31106a447938568a71b0ed065bef517d273ecce3d9a307c1b419903"
        )
    }
}
