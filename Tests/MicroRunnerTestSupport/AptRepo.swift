import Foundation

/// A local apt repository with `mr-test-pkg` 1.0 and 1.1, reached through its own APT_CONFIG (no network).
/// Installs go into this machine's dpkg database; the package only ships /usr/share/mr-test-pkg/VERSION.
package final class AptRepo {
    package static let package = "mr-test-pkg"
    /// This repository's package: another name than `package` lets a suite run beside `AptPackageTests`
    /// without the two installing and purging one package under each other.
    package let name: String
    package let dir: String
    package let aptConfig: String

    package init(package name: String = AptRepo.package) throws {
        self.name = name
        dir = "/tmp/mr-apt-\(UUID().uuidString.prefix(8))"
        for sub in ["repo", "lists/partial", "cache/archives/partial"] {
            try FileManager.default.createDirectory(atPath: "\(dir)/\(sub)", withIntermediateDirectories: true)
        }
        for version in ["1.0", "1.1"] {
            let root = "\(dir)/build-\(version)"
            try FileManager.default.createDirectory(atPath: "\(root)/DEBIAN", withIntermediateDirectories: true)
            try FileManager.default.createDirectory(
                atPath: "\(root)/usr/share/\(name)",
                withIntermediateDirectories: true
            )
            try """
            Package: \(name)
            Version: \(version)
            Architecture: all
            Maintainer: micro-runner tests <tests@example.invalid>
            Description: micro-runner test package

            """.write(toFile: "\(root)/DEBIAN/control", atomically: true, encoding: .utf8)
            try "\(version)\n".write(
                toFile: "\(root)/usr/share/\(name)/VERSION",
                atomically: true,
                encoding: .utf8
            )
            let built = shell(
                "dpkg-deb --root-owner-group --build \(root) \(dir)/repo/\(name)_\(version)_all.deb"
            )
            guard built.status == 0 else { throw TestFailure("dpkg-deb: \(built.output)") }
        }
        let index = shell(
            "cd \(dir)/repo && apt-ftparchive packages . > Packages && apt-ftparchive release . > ../Release.tmp && mv ../Release.tmp Release"
        )
        guard index.status == 0 else { throw TestFailure("apt-ftparchive: \(index.output)") }
        try "deb [trusted=yes] file:\(dir)/repo ./\n".write(
            toFile: "\(dir)/local.list",
            atomically: true,
            encoding: .utf8
        )
        aptConfig = "\(dir)/apt.conf"
        try """
        Dir::Etc::sourcelist "\(dir)/local.list";
        Dir::Etc::sourceparts "-";
        Dir::State::Lists "\(dir)/lists";
        Dir::Cache "\(dir)/cache";
        APT::Get::List-Cleanup "0";

        """.write(toFile: aptConfig, atomically: true, encoding: .utf8)
        let update = shell("APT_CONFIG=\(aptConfig) apt-get update -q -o DPkg::Lock::Timeout=120")
        guard update.status == 0 else { throw TestFailure("apt-get update: \(update.output)") }
        purge()
    }

    deinit {
        purge()
        try? FileManager.default.removeItem(atPath: dir)
    }

    package func purge() {
        shell("dpkg -s \(name) >/dev/null 2>&1 && dpkg --purge \(name)")
    }

    /// The installed version as dpkg sees it ("" when not installed).
    package var installed: String {
        let out = shell("dpkg-query -W -f='${Version} ${db:Status-Abbrev}' \(name) 2>/dev/null").output
        return out.hasSuffix("ii ") ? String(out.split(separator: " ")[0]) : ""
    }

    package var environment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["APT_CONFIG"] = aptConfig
        return env
    }
}
