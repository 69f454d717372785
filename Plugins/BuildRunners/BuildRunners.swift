import Foundation
import PackagePlugin

/// `swift package --allow-writing-to-package-directory build-runners [amd64] [arm64] [arm]`, run from the root of a
/// package that depends on micro-runner: builds the static runners from micro-runner's own checkout (its
/// `scripts/build-runner`, which installs what it needs on Debian and skips a runner whose inputs are unchanged)
/// and puts them in this package's `.build/runner/<arch>/micro-runner`, where `RunnerSet.defaultDirectory()` looks
/// for the runners of a program built in `.build`. Linux only: the runners are Embedded Swift linked against musl.
@main
struct BuildRunners: CommandPlugin {
    func performCommand(context: PluginContext, arguments: [String]) async throws {
        var extractor = ArgumentExtractor(arguments)
        let into = extractor.extractOption(named: "into").last
        let architectures = extractor.remainingArguments
        for arch in architectures where !["amd64", "arm64", "arm"].contains(arch) {
            throw BuildRunnersError("unknown architecture \(arch) (amd64, arm64 or arm)")
        }
        guard let source = Self.microRunner(in: context.package) else {
            throw BuildRunnersError("micro-runner is not among \(context.package.displayName)'s dependencies")
        }
        let script = source.directoryURL.appendingPathComponent("scripts/build-runner")
        let destination =
            into.map { URL(fileURLWithPath: $0, relativeTo: context.package.directoryURL) }
            ?? context.package.directoryURL.appendingPathComponent(".build/runner")

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [script.path, "--into", destination.path] + architectures
        process.currentDirectoryURL = source.directoryURL
        try process.run()
        process.waitUntilExit()
        guard process.terminationReason == .exit, process.terminationStatus == 0 else {
            throw BuildRunnersError("scripts/build-runner failed (status \(process.terminationStatus))")
        }
        print("build-runners: runners in \(destination.path)")
    }

    /// The micro-runner package: the root itself (run in this repository) or a dependency at any depth.
    static func microRunner(in package: Package) -> Package? {
        var queue = [package]
        var seen: Set<String> = []
        while !queue.isEmpty {
            let next = queue.removeFirst()
            guard seen.insert(next.id).inserted else { continue }
            // Plugin products are not among `products` here: the manifest's name and the script identify it.
            let script = next.directoryURL.appendingPathComponent("scripts/build-runner").path
            if next.displayName == "micro-runner" && FileManager.default.fileExists(atPath: script) { return next }
            queue += next.dependencies.map(\.package)
        }
        return nil
    }
}

struct BuildRunnersError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = "build-runners: " + description }
}
