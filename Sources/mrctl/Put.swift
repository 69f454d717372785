import ArgumentParser
import Foundation
import MicroRunnerClient
import MicroRunnerProtocol

struct Put: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Copy a local file to the hosts (atomic; unchanged files are not rewritten).",
        aliases: ["write"]
    )
    @OptionGroup var global: GlobalOptions
    @Option(help: "Octal mode, e.g. 0644.") var mode = ""
    @Option(help: "Owner (name or uid).") var owner = ""
    @Option(help: "Group (name or gid).") var group = ""
    @Flag(help: "Keep the old file as PATH.<time>~.") var backup = false
    @Argument(help: "Local file.") var source: String
    @Argument(help: "Absolute path on the host.") var destination: String

    func run() async throws {
        // Read once through SHA-256 for every host (4 MiB at a time, on a thread of its own while the hosts are
        // reached and asked for their copies), then streamed from disk to each host that does not already have
        // these bytes: a 1 GiB put never holds the file, and an unchanged one costs one hash here and one there,
        // side by side.
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: source, isDirectory: &isDirectory), !isDirectory.boolValue,
            FileManager.default.isReadableFile(atPath: source)
        else { throw ValidationError("cannot read \(source)") }
        let digest = LocalFileDigest.start(path: source)
        var fileMode: FileMode?
        if !mode.isEmpty {
            guard let m = FileMode(mode) else { throw ValidationError("--mode must be octal, e.g. 0644, not \(mode)") }
            fileMode = m
        }
        // As scp and Ansible's copy: a destination ending in / is a directory, and so is one that turns out to
        // be a directory on the host; the file goes inside it, under its own name.
        let name = URL(fileURLWithPath: source).lastPathComponent
        let named = destination.hasSuffix("/") ? destination + name : destination
        let (dest, mode, owner, group, backup, dryRun, timeout) = (
            named, fileMode, self.owner, self.group, self.backup, global.dryRun, global.timeout
        )
        try await runOnHosts(global) { client in
            func put(_ path: String) async throws -> FileWriteResult {
                try await client.putFile(
                    contentsOf: digest,
                    to: path,
                    mode: mode,
                    owner: owner,
                    group: group,
                    backup: backup,
                    dryRun: dryRun,
                    timeout: .seconds(timeout)
                )
            }
            let r: FileWriteResult
            do {
                r = try await put(dest)
            } catch let error as CommandError where error.error.details?["target_kind"] == "directory" {
                r = try await put(dest + "/" + name)
            }
            let changed = r.changed ?? true
            let size = try await digest.value.size
            var summary = changed ? (dryRun ? "would write" : "wrote") + " \(size) bytes" : "unchanged"
            if let b = r.backupPath { summary += ", backup \(b)" }
            return HostReport(
                ok: true,
                changed: changed,
                result: WireEncoder().encodeToValue(r),
                text: r.diff ?? "",
                summary: summary
            )
        }
    }
}
