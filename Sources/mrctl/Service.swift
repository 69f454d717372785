import ArgumentParser
import Foundation
import MicroRunnerClient
import MicroRunnerProtocol

struct Service: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "reload, restart, start, stop, enable or disable a systemd unit."
    )
    @OptionGroup var global: GlobalOptions
    @Argument(help: "Unit name.") var name: String
    @Argument(help: "What to do with it.") var action: ServiceAction

    func run() async throws {
        try await runSystem(
            global,
            .serviceReload,
            ServiceReloadParams(name: name, action: action),
            ServiceReloadResult.self
        ) {
            r in (r.changed, "\(r.action): \(r.status)/\(r.subState), enabled \(r.enabled)")
        }
    }
}
