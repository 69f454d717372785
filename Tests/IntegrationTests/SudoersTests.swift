import Foundation
import MicroRunnerProtocol
import MicroRunnerTestSupport
import Testing

/// sudoers.ensure with the real visudo and a real `sudo -n` as an unprivileged user.
@Suite(
    .serialized,
    .enabled(if: geteuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/sbin/visudo"), "root and sudo")
)
struct SudoersTests {
    static let user = "mr-sudo-test"
    static let rule = "/etc/sudoers.d/froyo-\(user)"

    init() {
        ensureTestUser(Self.user)
        try? FileManager.default.removeItem(atPath: Self.rule)
    }

    /// A private copy of the runner the test user owns, and a fresh password for that user.
    static func unprivilegedSetup() throws -> (dir: String, secret: String) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mr-sudo-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try BuiltRunner.copy(to: dir + "/micro-runner")
        shell("chown -R \(user) \(dir)")
        let secret = "Pw-\(Int.random(in: 100_000...999_999))"
        shell("echo '\(user):\(secret)' | chpasswd")
        return (dir, secret)
    }

    /// A root runner that has just installed the test user's rule.
    static func rootWithRule(_ commands: [String], noPasswd: Bool) throws -> RunnerProcess {
        let root = try RunnerProcess()
        _ = try root.next(.ready)
        root.sendCommand("a", "sudoers.ensure", params: ["user": user, "commands": commands, "no_passwd": noPasswd])
        #expect(try root.answer().type == .done)
        return root
    }

    /// That copy running as the test user, after READY.
    static func runnerAsUser(_ dir: String) throws -> RunnerProcess {
        let r = try RunnerProcess(
            arguments: ["-u", user, "--", dir + "/micro-runner", "--keep"],
            binary: "/usr/sbin/runuser"
        )
        _ = try r.next(.ready)
        return r
    }

    func sudoAs(_ command: String) -> (status: Int32, output: String) {
        shell("su - \(Self.user) -c 'sudo -n \(command)' 2>&1")
    }

    @Test func ruleIsValidatedInstalledAndReallyGrantsWhatItSays() throws {
        defer { try? FileManager.default.removeItem(atPath: Self.rule) }
        let r = try RunnerProcess()
        #expect(try r.next(.ready)["capabilities"]?["sudoers.ensure"] == .bool(true))
        #expect(sudoAs("/usr/bin/id -u").status != 0, "the user must not have sudo before the rule")

        r.sendCommand(
            "a",
            "sudoers.ensure",
            params: ["user": Self.user, "commands": ["/usr/bin/id"], "no_passwd": true]
        )
        let created = try r.answer()
        #expect(created.result["action"] == .string("created"))
        #expect(created.result["changed"] == .bool(true))
        #expect(created.result["file_path"] == .string(Self.rule))
        #expect(statLine(Self.rule).hasPrefix("440 0 0 "))
        #expect(shell("visudo -c").status == 0)
        let allowed = sudoAs("/usr/bin/id -u")
        #expect(
            allowed.status == 0 && allowed.output.trimmingCharacters(in: .whitespacesAndNewlines) == "0",
            "\(allowed.output)"
        )
        let refused = sudoAs("/usr/bin/whoami")
        #expect(refused.status != 0, "\(refused.output)")
        #expect(refused.output.contains("password is required"), "\(refused.output)")

        r.sendCommand(
            "b",
            "sudoers.ensure",
            params: ["user": Self.user, "commands": ["/usr/bin/id"], "no_passwd": true]
        )
        let again = try r.answer()
        #expect(again.result["action"] == .string("already_present"))
        #expect(again.result["changed"] == .bool(false))

        r.sendCommand(
            "c",
            "sudoers.ensure",
            params: ["user": Self.user, "commands": ["/usr/bin/id", "/usr/bin/whoami"], "no_passwd": true]
        )
        #expect(try r.answer().result["action"] == .string("updated"))
        #expect(sudoAs("/usr/bin/whoami").output.contains("root"))

        r.send(
            #"{"type":"CMD","data":{"id":"d","type":"sudoers.ensure","timeout":10,"dry_run":true,"params":{"user":"\#(Self.user)","state":"absent"}}}"#
        )
        let dry = try r.answer()
        #expect(dry.result["action"] == .string("removed"))
        #expect(dry.result["changed"] == .bool(true))
        #expect(FileManager.default.fileExists(atPath: Self.rule), "a dry run removed the rule")

        r.sendCommand("e", "sudoers.ensure", params: ["user": Self.user, "state": "absent"])
        let removed = try r.answer()
        #expect(removed.result["action"] == .string("removed"))
        #expect(!FileManager.default.fileExists(atPath: Self.rule))
        #expect(sudoAs("/usr/bin/id -u").status != 0)
    }

    @Test func dryRunChangesNothing() throws {
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        r.send(
            #"{"type":"CMD","data":{"id":"d","type":"sudoers.ensure","timeout":10,"dry_run":true,"params":{"user":"\#(Self.user)","commands":["/usr/bin/id"]}}}"#
        )
        let dry = try r.answer()
        #expect(dry.result["action"] == .string("created"))
        #expect(dry.result["changed"] == .bool(true))
        #expect(!FileManager.default.fileExists(atPath: Self.rule))
    }

    @Test(arguments: [
        ("bob,ALL", ["/usr/bin/id"], "user"),
        ("bob\nALL ALL=(ALL) NOPASSWD: ALL", ["/usr/bin/id"], "user"),
        ("ALL", ["/usr/bin/id"], "user"),
        ("%sudo", ["/usr/bin/id"], "user"),
        (user, ["ALL"], "absolute"),
        (user, ["/usr/bin/id, ALL"], ","),
        (user, ["/bin/sh -c ALL"], "ALL"),
        (user, ["/usr/bin/id\nALL ALL=(ALL) ALL"], "newlines"),
        (user, ["/usr/bin/*"], "*"),
        (user, ["/usr/bin/id: ALL"], ":"),
        (user, ["usr/bin/id"], "absolute"),
        (user, [], "empty"),
    ])
    func injectionIsRejectedAndNothingIsWritten(_ user: String, _ commands: [String], _ expected: String) throws {
        let params: [String: Any] = ["user": user, "commands": commands]
        let before = (try? FileManager.default.contentsOfDirectory(atPath: "/etc/sudoers.d")) ?? []
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        r.sendCommand("x", "sudoers.ensure", params: params)
        let a = try r.answer()
        #expect(a.code == "INVALID_CMD", "\(a.data)")
        #expect(a.message.contains(expected), "\(a.message)")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: "/etc/sudoers.d")) ?? []) == before)
    }

    /// exec use_sudo from a runner that is not root: `sudo -n` with a NOPASSWD rule, and `sudo -S` with the
    /// password on stdin; the password never appears in anything the runner writes.
    @Test func execUseSudoFromAnUnprivilegedRunner() throws {
        defer { try? FileManager.default.removeItem(atPath: Self.rule) }
        let (dir, secret) = try Self.unprivilegedSetup()
        defer { try? FileManager.default.removeItem(atPath: dir) }

        // 1. NOPASSWD rule, sudo -n.
        let root = try Self.rootWithRule(["/usr/bin/id"], noPasswd: true)
        let r = try Self.runnerAsUser(dir)
        r.sendCommand(
            "n",
            "exec",
            params: ["command": "/usr/bin/id", "args": ["-u"], "use_sudo": true, "capture_out": true]
        )
        #expect(try r.answer().result["stdout"] == .string("0\n"))
        r.sendCommand(
            "n2",
            "exec",
            params: [
                "command": "/usr/bin/whoami", "args": [], "use_sudo": true, "capture_out": true, "capture_err": true,
            ]
        )
        let refused = try r.answer()
        #expect(refused.result["exit_code"]?.intValue != 0, "sudo -n must not run a command outside the rule")

        // 2. A rule that needs the password: sudo -S reads it from the runner, never from a prompt.
        root.sendCommand(
            "b",
            "sudoers.ensure",
            params: ["user": Self.user, "commands": ["/usr/bin/id"], "no_passwd": false]
        )
        #expect(try root.answer().result["action"] == .string("updated"))
        r.sendCommand(
            "p",
            "exec",
            params: [
                "command": "/usr/bin/id", "args": ["-u"], "use_sudo": true, "sudo_password": secret,
                "capture_out": true, "capture_err": true,
            ]
        )
        let withPassword = try r.answer()
        #expect(withPassword.result["stdout"] == .string("0\n"), "\(withPassword.data)")
        r.sendCommand(
            "w",
            "exec",
            params: [
                "command": "/usr/bin/id", "args": ["-u"], "use_sudo": true, "sudo_password": secret + "x",
                "capture_out": true, "capture_err": true,
            ]
        )
        #expect(try r.answer().result["exit_code"]?.intValue != 0)
        #expect(!r.allRawLines.contains { $0.contains(secret) }, "the password must never be echoed")
    }

    /// A directory as a command would grant everything in it (`sudo /usr/bin/bash`): refused, nothing installed.
    @Test func aDirectoryIsNotACommand() throws {
        defer { try? FileManager.default.removeItem(atPath: Self.rule) }
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        for command in ["/usr/bin/", "/usr/bin", "/usr/bin/*"] {
            r.sendCommand("d", "sudoers.ensure", params: ["user": Self.user, "commands": [command], "no_passwd": true])
            let a = try r.answer()
            #expect(a.code == "INVALID_CMD", "\(command): \(a.data)")
        }
        #expect(!FileManager.default.fileExists(atPath: Self.rule))
        #expect(sudoAs("/usr/bin/bash -c id").status != 0, "the user has no sudo rights")
    }

    /// The second adversarial review installed a rule for a script its grantee owned, edited it, and ran it as
    /// uid 0. A command file anyone but root can change, or one under a directory others can write, is refused.
    @Test func aCommandFileOthersCanRewriteIsRefused() throws {
        defer { try? FileManager.default.removeItem(atPath: Self.rule) }
        let home = "/home/\(Self.user)"
        let dir = "/tmp/mr-sudoers-\(UUID().uuidString.prefix(8))"
        let safeDir = "/root/mr-sudoers-\(UUID().uuidString.prefix(8))"
        defer {
            try? FileManager.default.removeItem(atPath: dir)
            try? FileManager.default.removeItem(atPath: safeDir)
            unlink("\(home)/mr-tool.sh")
        }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)
        try FileManager.default.createDirectory(atPath: safeDir, withIntermediateDirectories: false)
        chmod(dir, 0o777)
        chmod(safeDir, 0o755)
        func script(_ path: String, owner: String = "root", mode: String) {
            shell("printf '#!/bin/sh\\nid -u\\n' > \(path) && chown \(owner) \(path) && chmod \(mode) \(path)")
        }
        script("\(home)/mr-tool.sh", owner: Self.user, mode: "0755")  // the grantee's own file
        script("\(safeDir)/world-writable.sh", mode: "0777")  // root's, but anyone may rewrite it
        script("\(safeDir)/group-writable.sh", mode: "0775")
        script("\(dir)/in-open-dir.sh", mode: "0755")  // root's 0755, in a directory anyone may write
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        for command in [
            "\(home)/mr-tool.sh", "\(safeDir)/world-writable.sh", "\(safeDir)/group-writable.sh",
            "\(dir)/in-open-dir.sh",
        ] {
            r.sendCommand("w", "sudoers.ensure", params: ["user": Self.user, "commands": [command], "no_passwd": true])
            let a = try r.answer()
            #expect(a.code == "INVALID_CMD", "\(command): \(a.data)")
            #expect(!FileManager.default.fileExists(atPath: Self.rule), "\(command): nothing installed")
        }
        #expect(sudoAs("\(home)/mr-tool.sh").status != 0, "the grantee cannot run its own file as root")
        // A root-owned 0755 file in root's directories is a command.
        script("\(safeDir)/good.sh", mode: "0755")
        r.sendCommand("g", "sudoers.ensure", params: ["user": Self.user, "commands": ["\(safeDir)/good.sh"]])
        #expect(try r.answer().type == .done)
    }

    /// With `use_sudo` and a password, from a runner that is not root, TIMEOUT and CANCEL stop the whole root
    /// command, background children included (the runner cannot signal root processes itself).
    @Test func sudoWithAPasswordIsStoppedWholeOnTimeoutAndCancel() throws {
        defer { try? FileManager.default.removeItem(atPath: Self.rule) }
        let (dir, secret) = try Self.unprivilegedSetup()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try Self.rootWithRule(["/bin/sh"], noPasswd: false)
        let r = try Self.runnerAsUser(dir)
        let first = uniqueSleep(70)
        let second = uniqueSleep(71)
        r.sendCommand(
            "t",
            "exec",
            timeout: 1,
            params: [
                "command": "sleep \(first) & sleep \(second); echo never", "use_sudo": true, "sudo_password": secret,
            ]
        )
        let timedOut = try r.answer()
        #expect(timedOut.code == "TIMEOUT", "\(timedOut.data)")
        Thread.sleep(forTimeInterval: 0.3)
        #expect(!processRunning(withMarker: "sleep \(first)"), "the background root child is gone")
        #expect(!processRunning(withMarker: "sleep \(second)"), "the foreground root child is gone")

        let third = uniqueSleep(72)
        r.sendCommand(
            "c",
            "exec",
            params: ["command": "sleep \(third) & wait", "use_sudo": true, "sudo_password": secret]
        )
        Thread.sleep(forTimeInterval: 0.5)
        r.send(#"{"type":"CANCEL","data":{"command_id":"c"}}"#)
        #expect(try r.answer().code == "CANCELLED")
        Thread.sleep(forTimeInterval: 0.3)
        #expect(!processRunning(withMarker: "sleep \(third)"))
        #expect(!r.allRawLines.contains { $0.contains(secret) })
    }
}
