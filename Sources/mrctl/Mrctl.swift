import ArgumentParser
import Foundation
import MicroRunnerClient
import MicroRunnerProtocol

@main
struct Mrctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mrctl",
        abstract: "Run commands on hosts through micro-runner: agentless, over ssh, or on this machine.",
        subcommands: [
            Ping.self, Exec.self, Script.self, Keygen.self, Put.self, Read.self, Pkg.self, Service.self, Sudoers.self,
            SshdHarden.self, InventoryCommand.self, Fetch.self,
        ]
    )
}
