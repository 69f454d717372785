import ArgumentParser
import Foundation
import MicroRunnerClient
import MicroRunnerProtocol

struct Ping: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start the runner and show READY: version and capabilities."
    )
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        try await runOnHosts(global) { client in
            let ready = await client.ready
            let caps = ready.capabilities.filter(\.value).keys.sorted().joined(separator: " ")
            return HostReport(
                ok: true,
                changed: false,
                result: WireEncoder().encodeToValue(ready),
                summary: "micro-runner \(ready.version) \(ready.platform)/\(ready.arch): \(caps)"
            )
        }
    }
}
