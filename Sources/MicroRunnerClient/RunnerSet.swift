import Foundation

/// Runners by architecture, named as READY names them (Go's GOARCH: `amd64`, `arm64`, `arm`), so that each host gets
/// the one it can run. `scripts/build-runner` lays them out as `<directory>/<arch>/micro-runner`.
///
/// ```swift
/// // Where `swift package --allow-writing-to-package-directory build-runners` put them (or $MICRO_RUNNER_DIR).
/// let runners = try RunnerSet(directory: RunnerSet.defaultDirectory())
/// let transport = try HostSpec(parsing: "pi@raspberry").transport(runners: runners)  // arm64 chosen by uname -m
/// ```
public struct RunnerSet: Sendable {
    /// The runners, by GOARCH name.
    public let runners: [String: RunnerBinary]

    /// A set from runners already loaded.
    public init(_ runners: [String: RunnerBinary]) {
        self.runners = runners
    }

    /// The runners under `directory` (`<directory>/amd64/micro-runner`, `<directory>/arm64/micro-runner`,
    /// `<directory>/arm/micro-runner`).
    /// - Throws: `ClientError` `.usage` when there is none.
    public init(directory: String) throws {
        var found: [String: RunnerBinary] = [:]
        for arch in ["amd64", "arm64", "arm"] {
            let path = directory + "/" + arch + "/micro-runner"
            if FileManager.default.isExecutableFile(atPath: path) { found[arch] = try RunnerBinary(path: path) }
        }
        guard !found.isEmpty else {
            throw ClientError(
                .usage,
                "no runner under \(directory): build them with `swift package --allow-writing-to-package-directory "
                    + "build-runners` from your package's root (or scripts/build-runner in micro-runner's own "
                    + "checkout), or set MICRO_RUNNER_DIR to a directory that has <arch>/micro-runner"
            )
        }
        runners = found
    }

    /// Where runners are looked for by default: `$MICRO_RUNNER_DIR`, else `../runner` beside the running
    /// executable (`.build/release/mrctl` -> `.build/runner`), else `../lib/micro-runner` beside it (as
    /// `scripts/install-cli` installs), else `.build/runner` in the current directory.
    public static func defaultDirectory() -> String {
        if let dir = ProcessInfo.processInfo.environment["MICRO_RUNNER_DIR"], !dir.isEmpty { return dir }
        if let found = besideExecutable() { return found }
        return FileManager.default.currentDirectoryPath + "/.build/runner"
    }

    /// The runners that belong with this program, found from where the program is, whatever the working
    /// directory: `.build/runner` above a build folder (`.build/release/mrctl`, whose real path is
    /// `.build/<triple>/release/mrctl`), or `PREFIX/lib/micro-runner` beside `PREFIX/bin/mrctl` (scripts/install-cli).
    /// The path as invoked and the real one (/proc/self/exe) are both tried: `.build/release` is a symlink.
    static func besideExecutable() -> String? {
        for start in executableDirectories() {
            var dir = start.standardizedFileURL
            for _ in 0..<3 {
                let parent = dir.deletingLastPathComponent()
                if dir.lastPathComponent == ".build" || parent.lastPathComponent == ".build" {
                    let build = dir.lastPathComponent == ".build" ? dir : parent
                    let runners = build.appendingPathComponent("runner").path
                    if FileManager.default.fileExists(atPath: runners) { return runners }
                }
                let installed = parent.appendingPathComponent("lib/micro-runner").path
                if dir.lastPathComponent == "bin" && FileManager.default.fileExists(atPath: installed) {
                    return installed
                }
                dir = parent
            }
        }
        return nil
    }

    /// The directories the running program is in: as invoked, by /proc/self/exe, and with links resolved.
    static func executableDirectories() -> [URL] {
        var starts: [URL] = []
        let invoked = URL(fileURLWithPath: CommandLine.arguments[0])
        if CommandLine.arguments[0].contains("/") { starts.append(invoked.deletingLastPathComponent()) }
        if let real = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            starts.append(URL(fileURLWithPath: real).deletingLastPathComponent())
        }
        starts.append(invoked.resolvingSymlinksInPath().deletingLastPathComponent())
        return starts
    }

    /// `mr-connect` (see `SSHOptions.connectHelper`) where it belongs with this program: beside the executable
    /// (`.build/debug/mrctl` and `.build/debug/mr-connect`), or with the runners (`PREFIX/lib/micro-runner`,
    /// where `scripts/install-cli` puts it).
    public static func connectHelperBesideExecutable() -> String? {
        let places = executableDirectories().map(\.path) + (besideExecutable().map { [$0] } ?? [])
        return places.map { $0 + "/mr-connect" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// This machine's architecture, by GOARCH name.
    public static var localArchitecture: String {
        #if arch(x86_64)
        return "amd64"
        #elseif arch(arm64)
        return "arm64"
        #elseif arch(arm)
        return "arm"
        #else
        return "unknown"
        #endif
    }

    /// The GOARCH name for what `uname -m` prints (`x86_64` -> `amd64`, `aarch64` -> `arm64`, `armv7l` and
    /// `armv8l` (a 32-bit userland on a 64-bit kernel) -> `arm`), or the text itself when it is not one the runner
    /// is built for (`armv6l`: the `arm` runner is ARMv7 code, which an ARMv6 core cannot run).
    public static func architecture(uname: String) -> String {
        switch uname {
        case "x86_64", "amd64": "amd64"
        case "aarch64", "arm64": "arm64"
        case "armv7l", "armv8l", "arm": "arm"
        default: uname
        }
    }

    /// The runner for `architecture` (a GOARCH name).
    /// - Throws: `ClientError` `.usage` naming the architecture when there is no runner for it.
    public func runner(for architecture: String) throws -> RunnerBinary {
        guard let runner = runners[architecture] else {
            let armv6 =
                architecture.hasPrefix("armv6") || architecture.hasPrefix("armv5")
                ? "; the arm runner is ARMv7 code, which an ARMv6 or older core (Raspberry Pi 1, Zero) cannot run" : ""
            throw ClientError(
                .usage,
                "no runner for architecture \(architecture) (have: \(runners.keys.sorted().joined(separator: ", "))\(armv6))"
            )
        }
        return runner
    }
}
