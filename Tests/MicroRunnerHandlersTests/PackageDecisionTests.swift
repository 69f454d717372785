import Foundation
import MicroRunnerHandlers
import MicroRunnerProtocol
import MicroRunnerSystem
import MicroRunnerTestSupport
import Testing

/// A package database in memory: the decisions of `pkg.ensure` without a package manager (a fake, since the
/// real managers are exercised by PackageTests and RpmPackageTests; this one says what each decision did).
final class FakePackages: PackageBackend {
    var version: String
    let newest: String
    var calls: [String] = []
    init(installed: String, newest: String) {
        version = installed
        self.newest = newest
    }
    func installed(_ name: String) throws(RunnerError) -> String { version }
    func latest(_ name: String) throws(RunnerError) -> String { newest }
    func matches(installed: String, wanted: String) -> Bool { installed == wanted }
    func older(_ a: String, than b: String) throws(RunnerError) -> Bool {
        a.compare(b, options: .numeric) == .orderedAscending
    }
    func install(_ name: String, version: String, downgrade: Bool) throws(RunnerError) {
        calls.append(downgrade ? "downgrade \(version)" : "install \(version)")
        self.version = version.isEmpty ? newest : version
    }
    func remove(_ name: String) throws(RunnerError) {
        calls.append("remove")
        version = ""
    }
    /// Whether a package of exactly the name asked for exists (false: a pattern or name-version form).
    var exists = true
    func requireExactName(_ name: String) throws(RunnerError) {
        if !exists { throw RunnerError(.notFound, "no package is named exactly \(name)") }
    }
}

/// Package names per manager (PackageName's grammar): every form the second adversarial review used, and the
/// real names it must keep accepting.
@Suite struct PackageNameTests {
    @Test(arguments: [
        // name, manager, accepted
        ("openssh-server-", "apt", false), ("sudo-", "apt", false), ("sudo-", "dnf", false),
        ("xterm.*", "apt", false), ("xterm*", "dnf", false), ("xterm?", "zypper", false), ("[x]term", "apt", false),
        ("@core", "dnf", false), ("@^minimal", "dnf", false), ("nginx=1.2", "apt", false),
        ("nginx=1.2", "zypper", false),
        ("nginx/bookworm", "apt", false), ("nginx:amd64", "apt", false), ("./x.deb", "apt", false),
        ("/tmp/x.rpm", "dnf", false), ("nginx>1", "zypper", false), ("-y", "apt", false), ("a b", "apt", false),
        ("", "apt", false), ("x", "apt", false), ("Foo", "apt", false), ("foo_bar", "apt", false),
        ("nginx", "apt", true), ("libstdc++6", "apt", true), ("g++", "apt", true), ("python3.11", "apt", true),
        ("xterm.+", "apt", true),  // grammar passes; the exact-name check against apt's index refuses it
        ("bash-5.1", "dnf", true),  // grammar passes; the exact-name check against the repositories refuses it
        ("NetworkManager", "dnf", true), ("perl-Data_Dumper", "dnf", true), ("x", "zypper", true),
    ])
    func grammar(_ name: String, _ manager: String, _ accepted: Bool) {
        #expect(
            (PackageName.problem(name, manager: PackageManager(rawValue: manager)) == nil) == accepted,
            "\(manager) \(name)"
        )
    }

    @Test func aNameThatIsNoPackageIsNeverInstalled() throws {
        let fake = FakePackages(installed: "", newest: "5.1")
        fake.exists = false
        #expect(throws: RunnerError.self) {
            _ = try PackageHandler().ensure("bash-5.1", version: "", state: "present", backend: fake, dryRun: false)
        }
        #expect(fake.calls.isEmpty, "nothing installed: \(fake.calls)")
        #expect(throws: RunnerError.self) {
            _ = try PackageHandler().ensure("xterm.+", version: "", state: "latest", backend: fake, dryRun: true)
        }
    }
}

@Suite struct PackageDecisionTests {
    @Test(arguments: [
        // installed, newest, state, version -> action, changed, calls
        ("", "1.1", "present", "", "installed", true, ["install "]),
        ("1.0", "1.1", "present", "", "already_present", false, []),
        ("1.0", "1.1", "present", "1.0", "already_present", false, []),
        ("1.0", "1.1", "present", "1.1", "upgraded", true, ["install 1.1"]),
        ("1.1", "1.1", "present", "1.0", "downgraded", true, ["downgrade 1.0"]),
        ("1.0", "1.1", "latest", "", "upgraded", true, ["install 1.1"]),
        ("1.1", "1.1", "latest", "", "already_present", false, []),
        ("1.0", "1.1", "absent", "", "removed", true, ["remove"]),
        ("", "1.1", "absent", "", "already_absent", false, []),
    ])
    func decisions(
        _ installed: String,
        _ newest: String,
        _ state: String,
        _ version: String,
        _ action: String,
        _ changed: Bool,
        _ calls: [String]
    ) throws {
        let db = FakePackages(installed: installed, newest: newest)
        let r = try PackageHandler().ensure(
            "p",
            version: version,
            state: PackageState(rawValue: state),
            backend: db,
            dryRun: false
        )
        #expect(r.action == action)
        #expect(r.changed == changed)
        #expect(db.calls == calls)
        #expect(r.previousVersion == installed)
        let dry = FakePackages(installed: installed, newest: newest)
        let d = try PackageHandler().ensure(
            "p",
            version: version,
            state: PackageState(rawValue: state),
            backend: dry,
            dryRun: true
        )
        #expect(d.action == action, "a dry run decides the same")
        #expect(dry.calls.isEmpty, "and does nothing")
    }
}
