import ArgumentParser
import Foundation
import MicroRunnerClient
import MicroRunnerProtocol

struct SshdHarden: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sshd-harden",
        abstract: "Harden sshd: validated, verified, rolled back on failure."
    )
    @OptionGroup var global: GlobalOptions
    @Flag(inversion: .prefixedNo, help: "Disable password authentication.") var passwordAuthOff = true
    @Flag(inversion: .prefixedNo, help: "Disable root login.") var rootLoginOff = true
    @Option(name: .customLong("allow-user"), help: "AllowUsers entry; repeatable.") var allowUsers: [String] = []
    @Option(help: "Port (0 keeps it).") var port = 0
    @Flag(inversion: .prefixedNo, help: "Open a connection to sshd afterwards.") var testConnection = true

    func run() async throws {
        let p = SshdHardenParams(
            disablePasswordAuth: passwordAuthOff,
            disableRootLogin: rootLoginOff,
            allowUsers: allowUsers,
            port: port,
            testConnection: testConnection
        )
        try await runSystem(global, .sshdHarden, p, SshdHardenResult.self) { r in
            (
                r.changed,
                r.changed ? "changed \(r.modifiedKeys.joined(separator: ",")), \(r.serviceAction)" : "already hardened"
            )
        }
    }
}
