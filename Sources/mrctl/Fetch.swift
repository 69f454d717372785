import ArgumentParser
import Foundation
import MicroRunnerClient
import MicroRunnerProtocol

struct Fetch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Copy a file from every host to this machine (Ansible's fetch): DEST/HOST/PATH, verified.",
        discussion: """
            Each host's file is saved as DEST/HOST/PATH (Ansible's layout), or where --flat with {host} in DEST \
            says. Binary-safe and streamed: one window of at most 10 MiB in memory per host; the copy replaces \
            the local file only once its size and SHA-256 equal the host's.
            """
    )
    @OptionGroup var global: GlobalOptions
    @Flag(help: "DEST is the local file itself; put {host} in it when several hosts are fetched.") var flat = false
    @Argument(help: "Absolute path on the host.") var source: String
    @Argument(help: "Local directory (or, with --flat, file name).") var destination: String

    func run() async throws {
        guard source.hasPrefix("/") else { throw ValidationError("the host path must be absolute: \(source)") }
        let (source, destination, flat, timeout) = (self.source, self.destination, self.flat, global.timeout)
        if try flat && !destination.contains("{host}") && global.targets().count > 1 {
            throw ValidationError("--flat with several hosts needs {host} in the destination")
        }
        try await runOnHosts(global) { client in
            // A host name becomes one path component: no slash, no dot-dot (it comes from an inventory).
            let host = client.hostName.replacingOccurrences(of: "/", with: "_").replacingOccurrences(
                of: "..",
                with: "_"
            )
            let local =
                flat ? destination.replacingOccurrences(of: "{host}", with: host) : destination + "/" + host + source
            let r = try await client.fetchFile(source, to: local, timeout: .seconds(timeout))
            return HostReport(
                ok: true,
                changed: true,
                result: WireEncoder().encodeToValue(r),
                summary: "\(r.size) bytes to \(local), SHA-256 \(r.fileChecksum ?? r.checksum)"
            )
        }
    }
}
