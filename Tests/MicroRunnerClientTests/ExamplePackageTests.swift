import Foundation
import MicroRunnerClient
import MicroRunnerTestSupport
import Testing

/// Examples/FleetTools: a package of its own that depends on this one by path, built by scripts/test with its
/// runners from the `build-runners` plugin.
let examplePackage = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Examples/FleetTools").path

/// Whether scripts/test built the example package and ran its plugin (a plain `swift test` does not).
let examplesBuilt =
    FileManager.default.isExecutableFile(atPath: examplePackage + "/.build/debug/stream-command")
    && FileManager.default.isExecutableFile(atPath: examplePackage + "/.build/runner/amd64/micro-runner")

/// The example programs as a user runs them, against the sshd fixture: what they print for each real failure,
/// and that nothing of them links libsodium.
@Suite(
    .serialized,
    .enabled(if: geteuid() == 0, "uses the sshd fixture"),
    .enabled(if: examplesBuilt, "scripts/test builds Examples/FleetTools and runs its build-runners plugin first")
)
struct ExamplePackageTests {
    /// Runs an example program (without MICRO_RUNNER_DIR: it finds the runners the plugin put beside its build).
    ///
    /// On threads of its own, not the cooperative pool: its two blocking reads there once held both of the pool's
    /// threads (2 cores) while another test's runner, which had inherited these pipes in a concurrent spawn, kept
    /// them open and waited for that pool itself; neither test ever finished (a fresh-clone run hung).
    func run(_ program: String, _ arguments: [String]) async throws -> (status: Int32, out: String, err: String) {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread { continuation.resume(with: Result { try Self.runBlocking(program, arguments) }) }
            thread.start()
        }
    }

    static func runBlocking(
        _ program: String,
        _ arguments: [String]
    ) throws -> (status: Int32, out: String, err: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: examplePackage + "/.build/debug/" + program)
        p.arguments = arguments
        p.environment = ProcessInfo.processInfo.environment.filter { $0.key != "MICRO_RUNNER_DIR" }
        let (out, err) = (Pipe(), Pipe())
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let errData = Box(Data())
        let errDone = DispatchSemaphore(value: 0)
        let reader = Thread {
            errData.value = err.fileHandleForReading.readDataToEndOfFile()
            errDone.signal()
        }
        reader.start()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        errDone.wait()
        return (
            p.terminationStatus, String(decoding: outData, as: UTF8.self),
            String(decoding: errData.value, as: UTF8.self)
        )
    }

    /// The fixture's ssh config with three more hosts: an unresolvable name (an IPv6 address, IPv4 only: no DNS
    /// query, which this sandbox's resolver drops under load), a key the server does not know and a host whose
    /// key the client does not know.
    func sshConfig(_ s: SSHServer, in dir: String) throws -> String {
        shell("ssh-keygen -q -t ed25519 -N '' -f \(dir)/stranger")
        try "".write(toFile: dir + "/empty_known_hosts", atomically: true, encoding: .utf8)
        let base = try String(contentsOfFile: s.clientConfig, encoding: .utf8)
            .replacingOccurrences(of: "Host *\n", with: "Host * !stranger\n")
        let extra = """
            Host nowhere
              HostName ::1
              AddressFamily inet
            Host stranger
              HostName 127.0.0.1
              Port \(s.port)
              User \(SSHServer.user)
              IdentityFile \(dir)/stranger
              IdentitiesOnly yes
              UserKnownHostsFile \(s.knownHosts)
            Host newkey
              HostName 127.0.0.1
              Port \(s.port)
              User \(SSHServer.user)
              UserKnownHostsFile \(dir)/empty_known_hosts

            """
        try (extra + base).write(toFile: dir + "/ssh_config", atomically: true, encoding: .utf8)
        return dir + "/ssh_config"
    }

    func scratch() throws -> String {
        let dir = NSTemporaryDirectory() + "mr-examples-\(getpid())-\(Int.random(in: 0..<1_000_000))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test func fleetUptimeNamesEveryKindOfFailure() async throws {
        let s = try server()
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let config = try sshConfig(s, in: dir)
        let hosts = ["h1", "closed", "nowhere", "stranger", "newkey", "refusing1"]
        let r = try await run("fleet-uptime", ["-F", config] + hosts)
        var lines: [String: String] = [:]
        for line in r.out.split(separator: "\n") {
            let host = String(line.prefix { $0 != ":" })
            lines[host] = String(line.dropFirst(host.count + 2))
        }
        #expect(Set(lines.keys) == Set(hosts), "\(r.out)\(r.err)")
        #expect(lines["h1"]?.contains("load average") == true, "\(lines)")
        #expect(lines["closed"]?.hasPrefix("unreachable:") == true, "\(lines)")
        #expect(lines["nowhere"]?.hasPrefix("unreachable:") == true, "\(lines)")
        #expect(lines["stranger"]?.hasPrefix("authentication:") == true, "\(lines)")
        #expect(lines["newkey"]?.hasPrefix("host-key:") == true, "\(lines)")
        #expect(lines["refusing1"]?.hasPrefix("refused:") == true, "\(lines)")
        #expect(lines["refusing1"]?.contains("Please login as the user ubuntu") == true, "\(lines)")
        #expect(r.status == 4)
    }

    @Test func deployIfChangedSendsOnlyAChangedFileAndReloadsOnlyThen() async throws {
        let s = try server()
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let remote = "/tmp/mr-example-deploy-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: remote) }
        var content = Array("listen 8080;\n".utf8)
        try Data(content).write(to: URL(fileURLWithPath: dir + "/site.conf"))
        let args = ["-F", s.clientConfig, "h1", dir + "/site.conf", remote, "mr-example.service"]

        let first = try await run("deploy-if-changed", args)
        #expect(first.out.contains("h1: \(remote) changed (\(content.count) bytes)"), "\(first)")
        // The reload follows the change: this machine has no systemd running, so the runner does not offer it
        // and says so; with systemd it would reload.
        #expect(first.out.contains("h1: unsupported: service.reload") || first.out.contains("reload"), "\(first)")
        #expect(FileManager.default.contents(atPath: remote).map(Array.init) == content)

        let second = try await run("deploy-if-changed", args)
        #expect(second.out == "h1: \(remote) unchanged; mr-example.service left alone\n", "\(second)")
        #expect(second.status == 0)

        content[7] ^= 1
        try Data(content).write(to: URL(fileURLWithPath: dir + "/site.conf"))
        let third = try await run("deploy-if-changed", args)
        #expect(third.out.contains("h1: \(remote) changed"), "\(third)")
        #expect(FileManager.default.contents(atPath: remote).map(Array.init) == content)
    }

    @Test func streamCommandStreamsBothStreamsAndExitsWithTheCommandsStatus() async throws {
        let s = try server()
        let r = try await run(
            "stream-command",
            ["-F", s.clientConfig, "h1", "echo one; echo two >&2; echo three; exit 3"]
        )
        #expect(r.out == "one\nthree\n")
        #expect(r.err == "two\n")
        #expect(r.status == 3)
    }

    @Test func ctrlCStopsTheStreamedCommandOnTheHost() async throws {
        let s = try server()
        let marker = uniqueSleep(60)
        let out = Pipe()
        let p = try startWithSignalsUnblocked(
            [
                examplePackage + "/.build/debug/stream-command", "-F", s.clientConfig, "h1",
                "echo started; sleep \(marker)",
            ]
        ) { $0.standardOutput = out }
        let started = Task { out.fileHandleForReading.availableData }
        #expect(String(decoding: await started.value, as: UTF8.self) == "started\n")
        #expect(processRunning(withMarker: "sleep \(marker)"))
        let sent = ContinuousClock.now
        kill(p.processIdentifier, SIGINT)
        #expect(p.exitStatus(within: 5) == 130)
        #expect(ContinuousClock.now - sent < .seconds(5))
        var gone = false
        for _ in 0..<50 where !gone {
            gone = !processRunning(withMarker: "sleep \(marker)")
            if !gone { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(gone, "the command still runs on the host after Ctrl-C")
    }

    @Test func thePluginPutTheRunnersWhereTheProgramsLook() throws {
        for arch in ["amd64", "arm64", "arm"] {
            let copied = FileManager.default.contents(atPath: "\(examplePackage)/.build/runner/\(arch)/micro-runner")
            let built = FileManager.default.contents(
                atPath: "\(examplePackage)/../../.build/runner/\(arch)/micro-runner"
            )
            #expect(copied != nil && copied == built, "\(arch)")
        }
    }

    @Test func noExampleProgramLinksLibsodium() {
        for program in ["fleet-uptime", "deploy-if-changed", "stream-command"] {
            let ldd = shell("ldd \(examplePackage)/.build/debug/\(program)")
            #expect(ldd.status == 0 && ldd.output.contains("libswiftCore"), "\(ldd.output)")
            #expect(!ldd.output.contains("sodium"), "\(program) links libsodium: \(ldd.output)")
        }
    }
}
