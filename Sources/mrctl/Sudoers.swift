import ArgumentParser
import Foundation
import MicroRunnerClient
import MicroRunnerProtocol

struct Sudoers: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Ensure a validated sudoers rule for a user.")
    @OptionGroup var global: GlobalOptions
    @Flag(help: "No password needed.") var nopasswd = false
    @Option(help: "Whether the rule should exist.") var state = RuleState.present
    @Argument(help: "User name.") var user: String
    @Argument(help: "Absolute paths of allowed commands.") var commands: [String] = []

    func run() async throws {
        let p = SudoersEnsureParams(user: user, commands: commands, noPasswd: nopasswd, state: state)
        try await runSystem(global, .sudoersEnsure, p, SudoersEnsureResult.self) { r in
            (r.changed, "\(r.action) \(r.filePath)")
        }
    }
}
