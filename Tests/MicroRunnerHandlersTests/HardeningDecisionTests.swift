import Foundation
import MicroRunnerHandlers
import MicroRunnerProtocol
import MicroRunnerSystem
import MicroRunnerTestSupport
import Testing

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
