import MicroRunnerClient
import MicroRunnerCrypto
import MicroRunnerProtocol
import MicroRunnerSignatures
import Testing

/// The client signs with swift-crypto, the runner verifies with libsodium: the two must agree byte for byte.
/// Ed25519 is deterministic (RFC 8032), so the same seed and message give one signature in both.
@Suite struct Ed25519SignerTests {
    @Test(arguments: 0..<16)
    func swiftCryptoSignsAsLibsodiumDoes(_ round: Int) throws {
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
}
