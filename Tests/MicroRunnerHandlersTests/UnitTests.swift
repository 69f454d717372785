import Foundation
import MicroRunnerHandlers
import MicroRunnerProtocol
import MicroRunnerSystem
import MicroRunnerTestSupport
import Testing

@Suite struct UnifiedDiffTests {
    @Test func smallEdit() {
        let old = Array("a\nb\nc\nd\ne\nf\ng\nh\n".utf8)
        let new = Array("a\nb\nc\nD\ne\nf\ng\nh\ni\n".utf8)
        let diff = UnifiedDiff.make(old: old, new: new, path: "/x", limit: 1 << 20)
        #expect(diff == "--- /x\n+++ /x\n@@ -1,8 +1,9 @@\n a\n b\n c\n-d\n+D\n e\n f\n g\n h\n+i\n")
    }

    @Test func separateHunksAndNewFile() {
        let old = (1...20).map { "\($0)" }.joined(separator: "\n") + "\n"
        let new = old.replacingFirst("2\n", "two\n").replacingFirst("19\n", "nineteen\n")
        let diff = UnifiedDiff.make(old: Array(old.utf8), new: Array(new.utf8), path: "/f", limit: 1 << 20)
        #expect(diff.components("@@ ") == 2)
        #expect(
            UnifiedDiff.make(old: [], new: Array("x\n".utf8), path: "/n", limit: 100)
                == "--- /n\n+++ /n\n@@ -0,0 +1,1 @@\n+x\n"
        )
        #expect(UnifiedDiff.make(old: [0, 1], new: [2], path: "/b", limit: 100).contains("binary"))
        #expect(UnifiedDiff.make(old: Array("same\n".utf8), new: Array("same\n".utf8), path: "/s", limit: 100) == "")
    }
}

extension String {
    func replacingFirst(_ a: String, _ b: String) -> String {
        guard let r = range(of: a) else { return self }
        return replacingCharacters(in: r, with: b)
    }

    func components(_ separator: String) -> Int {
        var count = 0
        var rest = self[...]
        while let r = rest.range(of: separator) {
            count += 1
            rest = rest[r.upperBound...]
        }
        return count
    }
}

@Suite struct FileSystemTests {
    @Test(arguments: [("0644", 0o644), ("644", 0o644), ("0o755", 0o755), ("4755", 0o4755), ("07777", 0o7777)])
    func parsesModes(_ text: String, _ mode: Int) {
        #expect(FileSystem.parseMode(text) == mode_t(mode))
    }

    @Test(arguments: ["", "8", "0999", "rwx", "-644", "777777", "0o"])
    func rejectsModes(_ text: String) {
        #expect(FileSystem.parseMode(text) == nil)
    }

    @Test func resolvesUsersAndGroupsFromFiles() {
        #expect(FileSystem.userID("root") == 0)
        #expect(FileSystem.userID("1234") == 1234)
        #expect(FileSystem.userID("no-such-user-xyz") == nil)
        #expect(FileSystem.groupID("root") == 0)
        #expect(FileSystem.octalMode(0o100644) == "0644")
    }
}

@Suite(.serialized) struct ProcessRunnerTests {
    @Test func environmentOverridesAndAdds() throws {
        var spec = ProcessSpec(executable: "/bin/sh", arguments: ["sh", "-c", "echo \"$HOME|$MR_NEW|$PATH\""])
        spec.environment = ["HOME": "/override", "MR_NEW": "added"]
        let out = try ProcessRunner().run(spec)
        let text = String(decoding: out.stdout, as: UTF8.self)
        #expect(text.hasPrefix("/override|added|"))
        #expect(text.contains("/bin"))  // the rest of the environment is inherited
    }

    @Test func environmentPassesThroughWhenNothingIsOverridden() throws {
        let spec = ProcessSpec(executable: "/usr/bin/env", arguments: ["env"])
        let out = try ProcessRunner().run(spec)
        let lines = String(decoding: out.stdout, as: UTF8.self).split(separator: "\n")
        #expect(lines.contains { $0.hasPrefix("PATH=") })
    }

    @Test func streamsLongLinesInPieces() throws {
        final class Lines: @unchecked Sendable { var items: [[UInt8]] = [] }
        let lines = Lines()
        var spec = ProcessSpec(
            executable: "/bin/sh",
            arguments: ["sh", "-c", "head -c 10 /dev/zero | tr '\\0' x; echo; printf 'a\\r\\nb'"]
        )
        spec.maxLineBytes = 4
        spec.onLine = { _, line in lines.items.append(line) }
        _ = try ProcessRunner().run(spec)
        #expect(lines.items.map { String(decoding: $0, as: UTF8.self) } == ["xxxx", "xxxx", "xx", "a", "b"])
    }

    @Test func longLineArrivingInOneReadIsStillSplit() throws {
        final class Lines: @unchecked Sendable { var items: [[UInt8]] = [] }
        let lines = Lines()
        // One write, so the whole line lands in one read.
        var spec = ProcessSpec(executable: "/usr/bin/printf", arguments: ["printf", "xxxxxxxxxx\\nyy\\n"])
        spec.maxLineBytes = 4
        spec.onLine = { _, line in lines.items.append(line) }
        _ = try ProcessRunner().run(spec)
        #expect(lines.items.map { String(decoding: $0, as: UTF8.self) } == ["xxxx", "xxxx", "xx", "yy"])
    }

    @Test func deadlineAndCancellationStopTheGroup() throws {
        var spec = ProcessSpec(executable: "/bin/sh", arguments: ["sh", "-c", "sleep 30 | cat"])
        spec.deadline = Monotonic.now() + 200_000_000
        let out = try ProcessRunner().run(spec)
        #expect(out.stoppedBy == .deadline)
        #expect(out.signal == SIGTERM)
        #expect(out.exitCode == -1)

        let token = CancellationToken()
        var spec2 = ProcessSpec(executable: "/bin/sleep", arguments: ["sleep", "30"])
        spec2.cancellation = token
        token.cancel(.cancelled)
        let out2 = try ProcessRunner().run(spec2)
        #expect(out2.stoppedBy == .token(.cancelled))
    }

    @Test func spawnErrorsAreTyped() {
        #expect(throws: RunnerError.self) {
            try ProcessRunner().run(ProcessSpec(executable: "/no/such/binary", arguments: ["x"]))
        }
        do {
            _ = try ProcessRunner().run(ProcessSpec(executable: "/etc/passwd", arguments: ["x"]))
            Issue.record("ran a non-executable")
        } catch {
            #expect(error.code == .permissionDenied)
        }
    }
}

/// The pure decisions of the hardening work: no root, no processes.
@Suite struct HardeningDecisionTests {
    @Test(arguments: [
        ("apt", "--no-install-recommends", true), ("apt", "--target-release=bookworm-backports", true),
        ("apt", "-o", false), ("apt", "Dir::Bin::dpkg=/tmp/x", false), ("apt", "-c", false),
        ("apt", "--target-release=-o", false), ("apt", "--allow-unauthenticated", false),
        ("dnf", "--enablerepo=updates", true), ("yum", "--nobest", true), ("dnf", "--installroot=/tmp/r", false),
        ("dnf", "--setopt=reposdir=/tmp", false), ("dnf", "--enablerepo=a b", false),
        ("zypper", "--no-refresh", true), ("zypper", "--root", false), ("apt", "--enablerepo=x", false),
    ])
    func packageOptionAllowList(_ manager: String, _ option: String, _ allowed: Bool) {
        #expect((PackageHandler.optionProblem(option, manager: PackageManager(rawValue: manager)) == nil) == allowed)
    }

    @Test func sudoersCommandsMustNameRegularFiles() {
        #expect(SudoersHandler.commandFileProblem("/usr/bin/") != nil)
        #expect(SudoersHandler.commandFileProblem("/usr/bin") != nil)
        #expect(SudoersHandler.commandFileProblem("/nonexistent/tool") != nil)
        #expect(SudoersHandler.commandFileProblem("/bin/sh -c true") == nil)
    }

    @Test(arguments: [
        ("a\nb", false), ("ok-id_1.2", true), (String(repeating: "x", count: 256), true),
        (String(repeating: "x", count: 257), false), ("tab\there", false), ("del\u{7F}", false), ("é", true),
    ])
    func commandNames(_ name: String, _ ok: Bool) {
        #expect(((try? CommandMessage.checkName(name, "id")) != nil) == ok)
    }

    @Test func nulAnywhereAndHugeTimeoutsAreRefused() throws {
        func command(_ params: String, timeout: Int = 5) throws -> CommandMessage {
            try WireDecoder().decode(
                CommandMessage.self,
                from: try JSONReader().parse(
                    Array(#"{"id":"c","type":"exec","timeout":\#(timeout),"params":\#(params)}"#.utf8)
                )
            )
        }
        #expect(throws: RunnerError.self) { try command(#"{"command":"a\u0000b"}"#).validate() }
        #expect(throws: RunnerError.self) { try command(#"{"env":{"K\u0000":"v"}}"#).validate() }
        #expect(throws: RunnerError.self) { try command(#"{"args":["x","\u0000"]}"#).validate() }
        #expect(throws: RunnerError.self) { try command(#"{}"#, timeout: 2_147_483_648).validate() }
        try command(#"{"command":"fine"}"#, timeout: 2_147_483_647).validate()
    }

    @Test func deadlinesSaturate() {
        #expect(Monotonic.deadline(from: 1_000, seconds: Int.max) == .max)
        #expect(Monotonic.deadline(from: .max - 5, seconds: 1) == .max)
        #expect(Monotonic.deadline(from: 1_000, seconds: 2) == 2_000_001_000)
        #expect(Monotonic.deadline(from: 1_000, seconds: 1e300) == .max)
        #expect(Monotonic.deadline(from: 1_000, seconds: Double.infinity) == .max)
        #expect(Monotonic.deadline(from: 1_000, seconds: 0.5) == 500_001_000)
    }

    @Test func goDurationsAboveGosLimitAreRefused() {
        #expect(GoDuration.parse("2562047h") != nil)
        for text in ["2562048h", "1e400", "inf", "nan", "-1s", "+5s", "9999999999999999999s"] {
            #expect(GoDuration.parse(text) == nil, "\(text)")
        }
    }

    @Test func jsonValueCountIsBounded() {
        let many = "[" + Array(repeating: "0", count: 300_000).joined(separator: ",") + "]"
        #expect(throws: JSONParseError.self) { try JSONReader().parse(Array(many.utf8)) }
        let fine = "[" + Array(repeating: "0", count: 200_000).joined(separator: ",") + "]"
        #expect((try? JSONReader().parse(Array(fine.utf8))) != nil)
        let tree = try? JSONReader().parse(Array(fine.utf8))
        #expect((tree?.retainedBytesEstimate ?? 0) >= 200_000 * 24, "estimates what the tree keeps, not wire bytes")
    }
}

@Suite struct SshdBannerTargetTests {
    @Test func targetsFollowWhereSshdListens() {
        func shown(_ listen: [String], _ port: Int = 22) -> [String] {
            SshdTool.bannerTargets(listen: listen, port: port).map { "\($0.host) \($0.port)" }
        }
        #expect(shown([]) == ["127.0.0.1 22"])
        #expect(shown(["0.0.0.0:2222"]) == ["127.0.0.1 2222"])
        #expect(shown(["192.0.2.7:22"]) == ["192.0.2.7 22"], "one other address: checked there, not on 127.0.0.1")
        #expect(shown(["[::]:22", "0.0.0.0:22"]) == ["::1 22", "127.0.0.1 22"])
        #expect(shown(["[2001:db8::1]:2200"]) == ["2001:db8::1 2200"])
    }
}

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

@Suite struct SshdPlanTests {
    static let off = [
        SshdHandler.Setting(directive: "PasswordAuthentication no", key: "passwordauthentication", expected: ["no"])
    ]

    static func plan(_ main: String) -> SshdTool.Plan {
        SshdTool.plan(main: Array(main.utf8), config: "/etc/ssh/sshd_config", settings: off)
    }

    @Test(arguments: [
        ("Include /etc/ssh/sshd_config.d/*.conf\nPort 22\n", true),
        ("# comment\n\n   Include /etc/ssh/sshd_config.d/*.conf\n", true),
        ("Port 22\nInclude /etc/ssh/sshd_config.d/*.conf\n", false),
        ("Include sshd_config.d/*.conf\n", false),
        ("PasswordAuthentication yes\n", false),
    ])
    func dropInOnlyWhenTheIncludeComesFirst(_ main: String, _ dropIn: Bool) {
        let p = Self.plan(main)
        #expect(p.dropIn == dropIn)
        #expect(p.target == (dropIn ? "/etc/ssh/sshd_config.d/00-micro-runner.conf" : "/etc/ssh/sshd_config"))
    }

    @Test func mainFileModeReplacesGlobalDuplicatesAndKeepsMatchBlocks() {
        let p = Self.plan("PasswordAuthentication yes\nPort 22\nMatch User bob\n    PasswordAuthentication yes\n")
        let text = String(decoding: p.content, as: UTF8.self)
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines.firstIndex(of: "PasswordAuthentication no") == 1, "\(text)")
        #expect(text.contains("# PasswordAuthentication yes    # replaced by micro-runner above"))
        #expect(lines.last == "    PasswordAuthentication yes", "the Match block is untouched")
        // A second plan over its own output keeps one live setting and one header (the old line is commented).
        let again = String(decoding: Self.plan(text).content, as: UTF8.self).split(separator: "\n").map(String.init)
        #expect(again.filter { $0 == "PasswordAuthentication no" }.count == 1, "\(again)")
        #expect(again.filter { $0.hasPrefix("# Managed by micro-runner") }.count == 1, "\(again)")
    }
}

/// The one spawn helper the runner, the client and the benchmark share, driven directly.
@Suite struct DirectoryListingTests {
    /// Every name from 1 to 255 bytes, in a directory large enough to need many getdents reads.
    @Test func everyNameComesBackWhole() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mr-list-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var made: Set<String> = [".", ".."]
        for length in 1...255 {
            for variant in 0..<8 {
                let name = String(repeating: "x", count: length - 1) + String(variant)
                close(open(dir + "/" + name, O_WRONLY | O_CREAT, 0o644))
                made.insert(name)
            }
        }
        let fd = open(dir, O_RDONLY | O_DIRECTORY)
        try #require(fd >= 0)
        defer { close(fd) }
        var seen: [String] = []
        try Sys.forEachName(inDirectory: fd) { seen.append(String(decoding: $0, as: UTF8.self)) }
        #expect(seen.count == made.count)
        #expect(Set(seen) == made)
        // The caller's descriptor is not used for the listing: a second pass sees everything again.
        var again = 0
        try Sys.forEachName(inDirectory: fd) { _ in again += 1 }
        #expect(again == made.count)
    }

    @Test func aFileIsNoDirectory() throws {
        let fd = open("/proc/self/status", O_RDONLY)
        try #require(fd >= 0)
        defer { close(fd) }
        #expect(throws: SystemError(ENOTDIR)) { try Sys.forEachName(inDirectory: fd) { _ in } }
    }
}

@Suite struct LeftoverNameTests {
    @Test(
        arguments: [
            (".f.mr-tmp-123-0a1b2c3d4e5f", 123),
            (".sshd_config.mr-bak-4194304-ff", 4_194_304),
            (".a.mr-b.mr-upload-7-1", 7),  // NAME may itself contain .mr-: the last one counts
            (".x.mr-journal-9-ab", 9),  // a killed runner's journal rewrite is swept like any staged file
            ("f.mr-tmp-1-ab", nil),  // not a dot name
            (".f.mr-tmp-1-", nil),
            (".f.mr-tmp--ab", nil),
            (".f.mr-tmp-0-ab", nil),
            (".f.mr-tmp-1-AB", nil),
            (".f.mr-tmp-1-ab.conf", nil),
            (".f.mr-tmp-99999999999-ab", nil),  // no pid: too many digits
            (".f.mr-tmp-2147483648-ab", nil),  // above Int32.max
            (".mr-tmp-1-ab", nil),  // no NAME
            (".f.mr-", nil),
            ("", nil),
        ] as [(String, Int32?)]
    )
    func leftoverNamesAndTheirPIDs(_ name: String, _ pid: Int32?) {
        let bytes = Array(name.utf8)
        #expect(bytes.withUnsafeBufferPointer { StagedFile.leftoverPID($0) } == pid)
    }
}

@Suite struct SpawnTests {
    /// Runs `script` with `/bin/sh -c` through `Spawn`, returning its stdout.
    func output(_ script: String, _ configure: (inout SpawnRequest) -> Void = { _ in }) throws -> String {
        var fds: [Int32] = [-1, -1]
        try #require(mr_pipe_cloexec(&fds) == 0)
        var request = SpawnRequest(executable: "/bin/sh", arguments: ["sh", "-c", script])
        request.standardOutput = .descriptor(fds[1])
        configure(&request)
        let pid: pid_t
        do { pid = try Spawn.start(request) } catch {
            close(fds[0])
            close(fds[1])
            throw error
        }
        close(fds[1])
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fds[0], $0.baseAddress, $0.count) }
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        close(fds[0])
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// SigIgn from /proc: whether SIGPIPE (bit 12) is ignored in the child.
    func childIgnoresSIGPIPE(_ configure: (inout SpawnRequest) -> Void) throws -> Bool {
        let line = try output("grep '^SigIgn:' /proc/self/status", configure)
        let mask = try #require(
            UInt64(line.split(separator: "\t").last?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "", radix: 16)
        )
        return mask & (1 << (UInt64(SIGPIPE) - 1)) != 0
    }

    @Test func signalsTheParentIgnoresAreResetOnlyWhenAsked() throws {
        // The test process ignores SIGPIPE (CTestSupport), as the runner and the client do.
        try #require(TestProcess.ignoresSIGPIPE)
        #expect(try childIgnoresSIGPIPE { _ in } == false)
        #expect(try childIgnoresSIGPIPE { $0.defaultSignals = [] })
    }

    @Test func environmentOverridesDirectoryAndProcessGroup() throws {
        let out = try output(#"printf '%s|%s|%s' "$MR_SPAWN_TEST" "$(pwd)" "$(ps -o pgid= -p $$ | tr -d ' ')""#) {
            $0.environment = ["MR_SPAWN_TEST": "set"]
            $0.workingDirectory = "/usr"
            $0.newProcessGroup = true
        }
        let parts = out.split(separator: "|").map(String.init)
        try #require(parts.count == 3, "\(out)")
        #expect(parts[0] == "set")
        #expect(parts[1] == "/usr")
        #expect(parts[2] != String(getpgrp()), "a process group of its own")
        #expect(try output("printf '%s' \"$HOME\"") == ProcessInfo.processInfo.environment["HOME"] ?? "")
    }

    @Test func aMissingExecutableIsAnErrorWithItsErrno() {
        var caught: SpawnError?
        do { _ = try Spawn.start(SpawnRequest(executable: "/nonexistent/x", arguments: ["x"])) } catch {
            caught = error
        }
        #expect(caught?.code == ENOENT)
        #expect(caught?.workingDirectoryUnsupported == false)
    }
}
