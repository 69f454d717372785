import ArgumentParser
import Foundation
import MicroRunnerClient
import MicroRunnerProtocol

struct Pkg: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Ensure a package is present, absent or latest.")
    @OptionGroup var global: GlobalOptions
    @Option(help: "The state to ensure.") var state = PackageState.present
    @Option(help: "Exact version.") var version = ""
    @Option(help: "The package manager (auto: detected on the host).") var manager: PackageManager = "auto"
    @Argument(help: "Package name.") var name: String

    func run() async throws {
        let p = PkgEnsureParams(name: name, version: version, state: state, manager: manager.wire)
        try await runSystem(global, .pkgEnsure, p, PkgEnsureResult.self) { r in
            (
                r.changed,
                "\(r.action) \(r.previousVersion.isEmpty ? "" : r.previousVersion + " -> ")\(r.installedVersion)"
            )
        }
    }
}
