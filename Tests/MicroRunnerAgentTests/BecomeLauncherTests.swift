import MicroRunnerAgent
import MicroRunnerProtocol
import Testing

/// The become launcher's pure decisions: what it accepts on its command line and what it runs. No root, no sudo.
@Suite struct BecomeLauncherTests {
    @Test func parsesMethodUserAndPasswordFlagAndKeepsTheRunnersFlags() throws {
        let request = try BecomeLauncher.parse(["mr", "--become", "sudo", "deploy", "yes", "--ttl", "5m"]).get()
        #expect(request.method == "sudo" && request.user == "deploy" && request.readsPassword)
        #expect(request.runnerArguments == ["--ttl", "5m"])
        let root = try BecomeLauncher.parse(["mr", "--become", "sudo", "#0", "no"]).get()
        #expect(!root.readsPassword && root.runnerArguments.isEmpty && BecomeUser.isRoot(root.user))
    }

    @Test(arguments: [
        ["mr", "--become", "su", "root", "no"],  // not offered: su reads passwords from a terminal only
        ["mr", "--become", "doas", "root", "no"],
        ["mr", "--become", "sudo", "-u", "no"],  // would be read as sudo's own option
        ["mr", "--become", "sudo", "root;id", "no"],
        ["mr", "--become", "sudo", "root", "maybe"],
        ["mr", "--become", "sudo", "root"],
    ])
    func refusesWhatSudoCouldMisread(_ argv: [String]) {
        guard case .failure(let e) = BecomeLauncher.parse(argv) else {
            Issue.record("accepted \(argv)")
            return
        }
        #expect(e.code == BecomeLauncher.Status.usage)
        #expect(e.output.hasPrefix("micro-runner-become: "), "the controller finds the line by its prefix")
    }

    @Test(arguments: [
        ("root", true), ("deploy", true), ("www-data", true), ("svc.backup_1", true), ("HOST$", true), ("#0", true),
        ("#1000", true), ("", false), ("-u", false), ("#", false), ("#12a", false), ("a b", false), ("a$b", false),
        ("ünïcode", false), ("name\n", false), (String(repeating: "a", count: 33), false),
    ])
    func userNames(_ user: String, _ valid: Bool) {
        #expect(BecomeUser.isValid(user) == valid, "\(user)")
    }

    @Test func sudoNeverPromptsAndRunsTheSameExecutable() {
        let argv = BecomeLauncher.sudoArguments(
            sudo: "/usr/bin/sudo",
            user: "nobody",
            runner: "/tmp/micro-runner.x/micro-runner",
            arguments: ["--ttl", "10m"]
        )
        #expect(
            argv == ["/usr/bin/sudo", "-n", "-u", "nobody", "--", "/tmp/micro-runner.x/micro-runner", "--ttl", "10m"]
        )
    }
}
