import Foundation
import MicroRunnerProtocol
import MicroRunnerTestSupport
import Testing

/// `mr-test-pkg` 1.0 and 1.1 as RPMs in a createrepo_c repository, with a dnf installroot and a zypper root
/// that use only it. Nothing touches this machine's own package databases.
final class RpmRepo {
    let dir: String
    let binDir: String

    init() throws {
        dir = "/tmp/mr-rpm-\(UUID().uuidString.prefix(8))"
        binDir = "\(dir)/bin"
        for sub in ["repo", "home", "bin", "dnfroot", "zroot"] {
            try FileManager.default.createDirectory(atPath: "\(dir)/\(sub)", withIntermediateDirectories: true)
        }
        try """
        Name: mr-test-pkg
        Version: %{ver}
        Release: 1
        Summary: micro-runner test package
        License: MIT
        BuildArch: noarch
        %description
        micro-runner test package
        %install
        mkdir -p %{buildroot}/usr/share/mr-test-pkg
        echo %{ver} > %{buildroot}/usr/share/mr-test-pkg/VERSION
        %files
        /usr/share/mr-test-pkg/VERSION

        """.write(toFile: "\(dir)/t.spec", atomically: true, encoding: .utf8)
        for v in ["1.0", "1.1"] {
            // Debian's rpm keeps state under $HOME: give it a private one.
            let b = shell(
                "HOME=\(dir)/home rpmbuild -bb --define '_topdir \(dir)/top' --define 'ver \(v)' \(dir)/t.spec"
            )
            guard b.status == 0 else { throw TestFailure("rpmbuild: \(b.output)") }
        }
        let c = shell("cp \(dir)/top/RPMS/noarch/*.rpm \(dir)/repo/ && createrepo_c -q \(dir)/repo")
        guard c.status == 0 else { throw TestFailure("createrepo_c: \(c.output)") }
        // yum, as current distributions ship it: dnf under another name.
        try FileManager.default.createSymbolicLink(atPath: "\(binDir)/yum", withDestinationPath: "/usr/bin/dnf")
        let z = shell(
            "HOME=\(dir)/home zypper -n --root \(dir)/zroot addrepo --no-gpgcheck file://\(dir)/repo local && HOME=\(dir)/home zypper -n --root \(dir)/zroot refresh"
        )
        guard z.status == 0 else { throw TestFailure("zypper: \(z.output)") }
    }

    deinit { try? FileManager.default.removeItem(atPath: dir) }

    /// The manager options that point it at this repository and root.
    func options(_ manager: String) -> [String] {
        if manager == "zypper" { return ["--root", "\(dir)/zroot"] }
        return [
            "--installroot=\(dir)/dnfroot-\(manager)", "--releasever=1", "--nogpgcheck", "--disablerepo=*",
            "--repofrompath=local,file://\(dir)/repo", "--enablerepo=local", "--setopt=reposdir=/nonexistent",
        ]
    }

    var environment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["PATH"] = binDir + ":" + (env["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin")
        env["HOME"] = "\(dir)/home"
        return env
    }
}

@Suite(
    .serialized,
    .enabled(if: geteuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/dnf"), "root, dnf, zypper")
)
struct RpmPackageTests {
    @Test(arguments: ["dnf", "yum", "zypper"])
    func lifecycle(_ manager: String) throws {
        let repo = try RpmRepo()
        // The options point the manager at a private root: only a runner told so passes them.
        let r = try RunnerProcess(arguments: ["--unsafe-pkg-options"], environment: repo.environment)
        _ = try r.next(.ready)
        func ensure(_ id: String, _ extra: [String: Any]) throws -> Received {
            var params: [String: Any] = ["name": "mr-test-pkg", "manager": manager, "options": repo.options(manager)]
            for (k, v) in extra { params[k] = v }
            r.sendCommand(id, "pkg.ensure", timeout: 120, params: params)
            return try r.answer(timeout: 180)
        }
        let install = try ensure("i", ["version": "1.0"])
        #expect(install.result["action"] == .string("installed"), "\(install.data)")
        #expect(install.result["installed_version"] == .string("1.0-1"))
        let again = try ensure("p", ["version": "1.0"])
        #expect(again.result["action"] == .string("already_present"))
        #expect(again.result["changed"] == .bool(false))
        let latest = try ensure("l", ["state": "latest"])
        #expect(latest.result["action"] == .string("upgraded"), "\(latest.data)")
        #expect(
            latest.result["previous_version"] == .string("1.0-1")
                && latest.result["installed_version"] == .string("1.1-1")
        )
        let latestAgain = try ensure("l2", ["state": "latest"])
        #expect(latestAgain.result["changed"] == .bool(false))
        let down = try ensure("d", ["version": "1.0"])
        #expect(down.result["action"] == .string("downgraded"), "\(down.data)")
        #expect(down.result["installed_version"] == .string("1.0-1"))
        let remove = try ensure("r", ["state": "absent"])
        #expect(remove.result["action"] == .string("removed"), "\(remove.data)")
        let gone = try ensure("r2", ["state": "absent"])
        #expect(gone.result["action"] == .string("already_absent"))
        #expect(gone.result["changed"] == .bool(false))
        let missing = try ensure("m", ["name": "mr-no-such-package"])
        #expect(missing.type == .error, "\(missing.data)")
    }

    /// dnf reads `mr-test-pkg-1.0` as mr-test-pkg at 1.0 and zypper takes capabilities: a name is only a name.
    /// Names that are no package install nothing; a name-version form never removes the package it names.
    @Test(arguments: ["dnf", "yum", "zypper"])
    func namesThatAreNotExactlyAPackageChangeNothing(_ manager: String) throws {
        let repo = try RpmRepo()
        let r = try RunnerProcess(arguments: ["--unsafe-pkg-options"], environment: repo.environment)
        _ = try r.next(.ready)
        func ensure(_ id: String, _ params: [String: Any]) throws -> Received {
            var p = params
            p["manager"] = manager
            p["options"] = repo.options(manager)
            r.sendCommand(id, "pkg.ensure", timeout: 120, params: p)
            return try r.answer(timeout: 180)
        }
        let versioned = try ensure("v", ["name": "mr-test-pkg-1.0"])
        #expect(versioned.code == "NOT_FOUND", "\(versioned.data)")
        let none = try ensure("q", ["name": "mr-test-pkg", "state": "absent"])
        #expect(none.result["action"] == .string("already_absent"), "nothing was installed: \(none.data)")
        for pattern in ["mr-test-*", "@core", "mr-test-pkg=1.0", "mr-test-pkg-"] {
            let refused = try ensure("p", ["name": pattern])
            #expect(refused.code == "INVALID_CMD", "\(pattern): \(refused.data)")
        }
        let install = try ensure("i", ["name": "mr-test-pkg"])
        #expect(install.result["action"] == .string("installed"), "\(install.data)")
        let removeVersioned = try ensure("rv", ["name": "mr-test-pkg-1.1", "state": "absent"])
        #expect(removeVersioned.result["action"] == .string("already_absent"), "\(removeVersioned.data)")
        let still = try ensure("s", ["name": "mr-test-pkg"])
        #expect(still.result["action"] == .string("already_present"), "mr-test-pkg was not removed: \(still.data)")
    }
}
