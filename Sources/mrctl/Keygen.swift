import ArgumentParser
import Foundation
import MicroRunnerClient
import MicroRunnerProtocol

struct Keygen: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make an Ed25519 key pair for signed commands: PATH (private, 0600) and PATH.pub."
    )
    @Argument(help: "Where to write the private key.") var path: String

    func run() throws {
        guard !FileManager.default.fileExists(atPath: path) else {
            throw ValidationError("\(path) exists; not overwriting")
        }
        let (priv, pub) = Ed25519Signer.generate()
        guard
            FileManager.default.createFile(
                atPath: path,
                contents: Data((priv + "\n").utf8),
                attributes: [.posixPermissions: 0o600]
            )
        else { throw ValidationError("cannot write \(path)") }
        try (pub + "\n").write(toFile: path + ".pub", atomically: true, encoding: .utf8)
        print("private key: \(path)\npublic key:  \(path).pub (\(pub))")
    }
}
