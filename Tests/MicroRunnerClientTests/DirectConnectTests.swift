import Foundation
import MicroRunnerClient
import MicroRunnerProtocol
import Testing

/// `mr-connect` as built beside mrctl (scripts/test builds it).
let connectHelperPath = URL(fileURLWithPath: mrctlPath).deletingLastPathComponent().appendingPathComponent("mr-connect")
    .path

/// Whether mr-connect may open a host's connection, from `ssh -G`'s words: no root, no ssh.
@Suite struct DirectConnectDecisionTests {
    typealias D = SSHTransport.DirectConnect

    @Test func aPlainConfigIsOursWithAnyFamily() {
        let said = "user mr\nhostname 127.0.0.1\nport 22\naddressfamily any\nconnectionattempts 1\nproxyusefdpass no\n"
        #expect(D.decide(sshConfig: said) == D(family: nil))
    }

    @Test(arguments: [("inet", "-4"), ("inet6", "-6"), ("INET", "-4")])
    func theAddressFamilyIsPassedOn(_ family: String, _ flag: String) {
        #expect(D.decide(sshConfig: "addressfamily \(family)\n") == D(family: flag))
    }

    @Test(arguments: [
        "proxycommand nc %h %p", "proxyjump bastion", "bindaddress 10.0.0.2", "bindinterface eth1",
        "connectionattempts 3", "addressfamily unix",
    ])
    func aConfigThatConnectsOtherwiseIsLeftToSSH(_ line: String) {
        #expect(D.decide(sshConfig: "hostname h\nport 22\n\(line)\r\nuser u\n") == nil)
    }

    @Test func aLoginThatIsNoShellLeavesSSHAlone() {
        #expect(SSHTransport.shellRunsProxyCommands(nil))
        #expect(SSHTransport.shellRunsProxyCommands("/bin/sh"))
        #expect(SSHTransport.shellRunsProxyCommands("/bin/bash"))
        #expect(!SSHTransport.shellRunsProxyCommands("/usr/sbin/nologin"))
        #expect(!SSHTransport.shellRunsProxyCommands("/bin/false"))
        #expect(!SSHTransport.shellRunsProxyCommands("/nonexistent/bin/zsh"))
    }

    @Test func noneIsNoProxy() {
        #expect(D.decide(sshConfig: "proxycommand none\nproxyjump none\n") == D(family: nil))
    }
}

/// The real thing: sshd on loopback, ssh, and mr-connect as its ProxyCommand.
@Suite(.serialized, .enabled(if: geteuid() == 0, "starts sshd and creates a test user"))
struct DirectConnectTests {
    /// A stand-in helper that notes each call and then runs mr-connect, so a test sees whether ssh used it.
    func loggingHelper() throws -> (path: String, log: String) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mr-connect-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let (path, log) = (dir + "/helper", dir + "/calls")
        try "#!/bin/sh\necho \"$*\" >> '\(log)'\nexec '\(connectHelperPath)' \"$@\"\n".write(
            toFile: path,
            atomically: true,
            encoding: .utf8
        )
        chmod(path, 0o755)
        return (path, log)
    }

    func transport(
        _ alias: String,
        helper: String,
        _ configure: (inout SSHOptions) throws -> Void = { _ in }
    ) throws -> SSHTransport {
        var o = sshOptions(try server())
        o.connectHelper = helper
        try configure(&o)
        return SSHTransport(host: HostSpec(host: alias), options: o)
    }

    /// Starting a runner through `t` fails as unreachable, in ssh's words (`saying`), without ssh's own line
    /// about the helper.
    func expectUnreachable(_ t: SSHTransport, saying: String) async throws {
        do {
            try await RunnerClient.withRunner(transport: t, runner: try RunnerBinary(path: runnerPath)) { _ in }
            Issue.record("connected to \(t.host)")
        } catch let error as ClientError {
            #expect(error.kind == .unreachable, "\(error)")
            #expect(error.message.contains(saying), "\(error)")
            #expect(!error.message.contains("proxy dialer"), "\(error)")
        }
    }

    @Test func aSessionRunsOverTheHelpersConnection() async throws {
        #expect(FileManager.default.isExecutableFile(atPath: connectHelperPath), "build mr-connect first")
        let (helper, log) = try loggingHelper()
        let runner = try RunnerBinary(path: runnerPath)
        let out = try await RunnerClient.withRunner(transport: try transport("h2", helper: helper), runner: runner) {
            try await $0.exec(ExecParams(command: "echo over-nodelay")).stdout
        }
        #expect(out == "over-nodelay\n")
        // ssh's %h and %p, the connect timeout before them.
        let calls = try String(contentsOfFile: log, encoding: .utf8)
        #expect(calls == "10 127.0.0.1 \(try server().port)\n")
    }

    @Test func aHostThatMustBindIsConnectedBySSHItself() async throws {
        let (helper, log) = try loggingHelper()
        let runner = try RunnerBinary(path: runnerPath)
        let out = try await RunnerClient.withRunner(transport: try transport("bound1", helper: helper), runner: runner)
        {
            try await $0.exec(ExecParams(command: "echo bound")).stdout
        }
        #expect(out == "bound\n")
        #expect(!FileManager.default.fileExists(atPath: log), "mr-connect was used for a host with BindAddress")
    }

    @Test func theCallersProxyCommandNoneTurnsItOff() async throws {
        let (helper, log) = try loggingHelper()
        let t = try transport("h3", helper: helper) { $0.extraOptions = ["ProxyCommand=none"] }
        let runner = try RunnerBinary(path: runnerPath)
        let out = try await RunnerClient.withRunner(transport: t, runner: runner) {
            try await $0.exec(ExecParams(command: "echo direct")).stdout
        }
        #expect(out == "direct\n")
        #expect(!FileManager.default.fileExists(atPath: log), "mr-connect was used despite ProxyCommand=none")
    }

    /// Also where ssh may become a background master and sends the helper's stderr to /dev/null: the helper's
    /// note beside the control socket says it then.
    @Test(arguments: [false, true]) func aRefusedConnectionIsSaidInSSHsWords(shared: Bool) async throws {
        let t = try transport("closed", helper: connectHelperPath) { o in
            guard shared else { return }
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mr-cp-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            chmod(dir, 0o700)
            o.sharing = .master(directory: dir, persist: 5)
        }
        try await expectUnreachable(t, saying: "Connection refused")
    }

    /// A name the helper cannot resolve, with ssh's address family passed on to it: an IPv6 address, IPv4 only
    /// (no DNS query, which this sandbox's resolver drops under load).
    @Test func anUnresolvableNameIsSaidInSSHsWords() async throws {
        let (helper, log) = try loggingHelper()
        let t = try transport("h4", helper: helper) { $0.extraOptions = ["HostName=::1", "AddressFamily=inet"] }
        try await expectUnreachable(t, saying: "Could not resolve hostname ::1")
        // The helper was asked, for IPv4 only, as ssh's config says.
        #expect(try String(contentsOfFile: log, encoding: .utf8).hasPrefix("-4 10 ::1 "))
    }
}
