import Foundation
import MicroRunnerProtocol
import MicroRunnerTestSupport
import Testing

@Suite(
    .serialized,
    .enabled(
        if: SystemdContainer.available,
        "root, systemd-nspawn"
    )
)
struct ServiceTests {
    @Test func noSystemdHereMeansNoCapability() throws {
        let r = try RunnerProcess()
        #expect(
            try r.next(.ready)["capabilities"]?["service.reload"]
                == .bool(FileManager.default.fileExists(atPath: "/run/systemd/system"))
        )
    }

    @Test func lifecycleWithHonestChangedInRealSystemd() throws {
        let c = try SystemdContainer()
        let r = try c.runner()
        #expect(try r.next(.ready)["capabilities"]?["service.reload"] == .bool(true))
        r.sendCommand(
            "u",
            "file.write",
            params: [
                "path": "/etc/systemd/system/mr-test.service", "create": true,
                "content":
                    "[Unit]\nDescription=micro-runner test\n[Service]\nExecStart=/bin/sleep infinity\nExecReload=/bin/true\n[Install]\nWantedBy=multi-user.target\n",
            ]
        )
        #expect(try r.answer().type == .done)
        r.sendCommand("dr", "exec", params: ["command": "systemctl daemon-reload"])
        #expect(try r.answer().result["exit_code"]?.intValue == 0)

        func service(_ id: String, _ action: String, dryRun: Bool = false) throws -> Received {
            r.sendCommand(
                id,
                "service.reload",
                params: ["name": "mr-test", "action": action],
                extra: dryRun ? ["dry_run": true] : [:]
            )
            return try r.answer(timeout: 60)
        }
        let dry = try service("d", "start", dryRun: true)
        #expect(dry.result["action"] == .string("started"))
        #expect(dry.result["status"] == .string("inactive"))
        let start = try service("s1", "start")
        #expect(start.result["action"] == .string("started"), "\(start.data)")
        #expect(start.result["changed"] == .bool(true), "\(start.data)")
        #expect(start.result["status"] == .string("active"))
        #expect(start.result["sub_state"] == .string("running"))
        let again = try service("s2", "start")
        #expect(again.result["action"] == .string("already_started"))
        #expect(again.result["changed"] == .bool(false))
        #expect(try service("r", "reload").result["action"] == .string("reloaded"))
        r.sendCommand(
            "pid1",
            "exec",
            params: ["command": "systemctl show -p MainPID --value mr-test", "capture_out": true]
        )
        let pid1 = try r.answer().result["stdout"]
        #expect(try service("rs", "restart").result["action"] == .string("restarted"))
        r.sendCommand(
            "pid2",
            "exec",
            params: ["command": "systemctl show -p MainPID --value mr-test", "capture_out": true]
        )
        #expect(try r.answer().result["stdout"] != pid1, "restart must start a new process")
        let stop = try service("st", "stop")
        #expect(stop.result["action"] == .string("stopped"))
        #expect(stop.result["status"] == .string("inactive"))
        #expect(try service("st2", "stop").result["action"] == .string("already_stopped"))
        let enable = try service("e", "enable")
        #expect(enable.result["action"] == .string("enabled"))
        #expect(enable.result["enabled"] == .bool(true))
        #expect(try service("e2", "enable").result["action"] == .string("already_enabled"))
        #expect(try service("x", "disable").result["action"] == .string("disabled"))
        #expect(try service("x2", "disable").result["changed"] == .bool(false))

        r.sendCommand("nf", "service.reload", params: ["name": "mr-no-such-unit", "action": "start"])
        #expect(try r.answer().code == "NOT_FOUND")
        r.sendCommand("bad", "service.reload", params: ["name": "--now", "action": "start"])
        #expect(try r.answer().code == "INVALID_CMD")
    }

    @Test func sshdHardenOnTheStockDebianLayoutReloadsThroughSystemd() throws {
        let c = try SystemdContainer()
        let r = try c.runner()
        #expect(try r.next(.ready)["capabilities"]?["sshd.harden"] == .bool(true))
        // What cloud images ship: a drop-in that turns passwords back on, read after the main file's Include.
        r.sendCommand(
            "ci",
            "file.write",
            params: [
                "path": "/etc/ssh/sshd_config.d/50-cloud-init.conf", "content": "PasswordAuthentication yes\n",
                "create": true,
            ]
        )
        #expect(try r.answer().type == .done)
        r.sendCommand(
            "h",
            "sshd.harden",
            timeout: 60,
            params: ["disable_password_auth": true, "disable_root_login": true, "test_connection": true]
        )
        let done = try r.answer(timeout: 90)
        #expect(done.type == .done, "\(done.data)")
        #expect(done.result["service_action"] == .string("reloaded"))
        r.sendCommand(
            "t",
            "exec",
            params: [
                "command":
                    "sshd -T | grep -E '^(passwordauthentication|permitrootlogin) '; ls /etc/ssh/sshd_config.d; systemctl is-active ssh",
                "capture_out": true,
            ]
        )
        let out = try r.answer().result["stdout"]?.stringValue ?? ""
        #expect(out.contains("passwordauthentication no"), "\(out)")
        #expect(out.contains("permitrootlogin no"), "\(out)")
        #expect(out.contains("00-micro-runner.conf"), "\(out)")
        #expect(out.hasSuffix("active\n"), "\(out)")
        r.sendCommand(
            "h2",
            "sshd.harden",
            timeout: 60,
            params: ["disable_password_auth": true, "disable_root_login": true, "test_connection": true]
        )
        let again = try r.answer(timeout: 90)
        #expect(again.result["changed"] == .bool(false))
        #expect(again.result["service_action"] == .string("none"))
    }

    /// A reload that really fails after the install (systemd's ExecReload made to fail): the previous files are
    /// back, the message says the restore worked and the second reload failed too, and sshd still serves.
    @Test func aFailingReloadRollsBackAndSaysSo() throws {
        let c = try SystemdContainer()
        let r = try c.runner()
        _ = try r.next(.ready)
        r.sendCommand(
            "break",
            "exec",
            params: [
                "command":
                    "mkdir -p /etc/systemd/system/ssh.service.d && printf '[Service]\\nExecReload=\\nExecReload=/bin/false\\n' > /etc/systemd/system/ssh.service.d/fail.conf && systemctl daemon-reload && ls /etc/ssh/sshd_config.d",
                "capture_out": true, "capture_err": true,
            ]
        )
        let broke = try r.answer(timeout: 60)
        #expect(broke.result["exit_code"] == .number("0"), "\(broke.data)")
        let before = broke.result["stdout"]?.stringValue ?? ""
        r.sendCommand(
            "h",
            "sshd.harden",
            timeout: 60,
            params: ["disable_password_auth": true, "disable_root_login": true, "test_connection": true]
        )
        let failed = try r.answer(timeout: 90)
        #expect(failed.type == .error, "\(failed.data)")
        #expect(failed.message.contains("systemctl reload ssh failed"), "\(failed.message)")
        #expect(failed.message.contains("previous configuration was restored"), "\(failed.message)")
        #expect(failed.message.contains("reloading sshd with it failed"), "\(failed.message)")
        r.sendCommand(
            "t",
            "exec",
            params: [
                "command": "ls /etc/ssh/sshd_config.d; systemctl is-active ssh; sshd -T | grep '^permitrootlogin '",
                "capture_out": true,
            ]
        )
        let out = try r.answer().result["stdout"]?.stringValue ?? ""
        #expect(out.hasPrefix(before), "the drop-in directory is as it was: \(out)")
        #expect(!out.contains("00-micro-runner.conf"), "\(out)")
        #expect(out.contains("active\n"), "sshd still runs: \(out)")
        #expect(!out.contains("permitrootlogin no"), "the hardened setting is not live: \(out)")
    }
}
