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
            // Who the runner is, before anything is changed: "become root" under -b, "as deploy" otherwise (a
            // runner without the metadata, such as the Go original, says nothing).
            let user = ready.metadata["user"] ?? ready.metadata["uid"].map { "uid \($0)" }
            let identity = user.map { (client.become != nil ? "become " : "as ") + $0 + ": " } ?? ""
            return HostReport(
                ok: true,
                changed: false,
                result: WireEncoder().encodeToValue(ready),
                summary: "micro-runner \(ready.version) \(ready.platform)/\(ready.arch) \(identity)\(caps)"
            )
        }
    }
}
