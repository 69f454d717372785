import Foundation
import MicroRunnerClient
import MicroRunnerProtocol
import MicroRunnerTestSupport
import Testing

/// What a container must look like after every session: no runner process, no runner directory.
private func expectNothingLeft(
    _ run: (String) -> (status: Int32, output: String),
    sourceLocation: SourceLocation = #_sourceLocation
) {
    let left = run("ls -d /tmp/micro-runner.* /root/.cache/micro-runner/run.* 2>/dev/null; pgrep -x micro-runner")
    #expect(left.output.isEmpty, "left behind in the container: \(left.output)", sourceLocation: sourceLocation)
}

/// ping, exec, put (twice: the second finds it unchanged) and read against `host`, checked from inside.
private func exercise(
    _ host: String,
    environment: [String: String] = [:],
    _ run: (String) -> (status: Int32, output: String),
    sourceLocation: SourceLocation = #_sourceLocation
) throws {
    let marker = UUID().uuidString
    try #require(run("echo \(marker) > /etc/mr-marker").status == 0)
    let ping = try mrctl(["ping", "--json", "--host", host], environment: environment)
    #expect(ping.status == 0, "\(ping.stdout) \(ping.stderr)", sourceLocation: sourceLocation)
    // Two runners are built (amd64, arm64): the container's uname chose one.
    #expect(ping.objects.first?["result"]?["arch"] == .string("amd64"), sourceLocation: sourceLocation)
    let exec = try mrctl(["exec", "--host", host, "cat /etc/mr-marker; cat /proc/1/comm"], environment: environment)
    #expect(exec.status == 0 && exec.stdout.contains(marker), "\(exec.stdout)", sourceLocation: sourceLocation)
    #expect(!FileManager.default.fileExists(atPath: "/etc/mr-marker"), "ran here, not in the container")

    // Binary content (NULs, newlines, every byte value) lands exactly.
    let local = FileManager.default.temporaryDirectory.appendingPathComponent("mr-ct-\(marker).bin").path
    defer { try? FileManager.default.removeItem(atPath: local) }
    var bytes = (0..<300_000).map { _ in UInt8.random(in: 0...255) }
    bytes += Array(0...255)
    try Data(bytes).write(to: URL(fileURLWithPath: local))
    let want = shell("sha256sum \(local)").output.prefix(64)
    let put = try mrctl(["put", "--json", "--host", host, local, "/root/put.bin"], environment: environment)
    #expect(put.status == 0 && put.objects.first?["changed"] == .bool(true), "\(put.stdout)")
    #expect(run("sha256sum /root/put.bin").output.prefix(64) == want, sourceLocation: sourceLocation)
    let again = try mrctl(["put", "--json", "--host", host, local, "/root/put.bin"], environment: environment)
    #expect(again.status == 0 && again.objects.first?["changed"] == .bool(false), "\(again.stdout)")

    let read = try mrctl(["read", "--host", host, "/etc/mr-marker"], environment: environment)
    #expect(read.status == 0 && read.stdout.contains(marker), "\(read.stdout)", sourceLocation: sourceLocation)
    expectNothingLeft(run, sourceLocation: sourceLocation)
}

/// Starts `mrctl exec HOST 'sleep 300'`, interrupts it once the command runs in the container, and checks that
/// mrctl ends with 130 in time and the container keeps nothing: no sleep, no runner, no directory.
private func interrupt(
    _ host: String,
    environment: [String: String] = [:],
    _ run: @escaping (String) -> (status: Int32, output: String)
) throws {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: mrctlPath)
    p.arguments = ["exec", "--host", host, "sleep 312"]
    p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    try p.run()
    defer { if p.isRunning { p.terminate() } }
    var started = false
    for _ in 0..<100 where !started {
        started = run("pgrep -f '^sleep 312$'").status == 0
        if !started { usleep(100_000) }
    }
    try #require(started, "the command never started in the container")
    kill(p.processIdentifier, SIGINT)
    let status = p.exitStatus(within: 5)
    #expect(status != nil, "mrctl still running 5 s after the interrupt")
    #expect(status == 130)
    // `podman exec` can end a moment before what ran in the container is gone (measured: the sleep went 0.23 s
    // after mrctl's exit, seen once the wait asked the kernel rather than Foundation, which had waited for
    // podman's descendants): allowed 3 s, then nothing may be left.
    let deadline = Date().addingTimeInterval(3)
    let leftovers = "pgrep -f '^sleep 312$'; ls -d /tmp/micro-runner.* /root/.cache/micro-runner/run.* 2>/dev/null"
    while !run(leftovers).output.isEmpty && Date() < deadline { usleep(50_000) }
    #expect(run("pgrep -f '^sleep 312$'").status != 0, "the command was left running")
    expectNothingLeft(run)
}

@Suite(.serialized, .enabled(if: SystemdContainer.available, "root, systemd-nspawn"))
struct NspawnTransportTests {
    @Test func nsenterAndTheMachineByName() throws {
        let c = try SystemdContainer()
        try c.register()
        try exercise("nsenter:\(c.pid)", c.run)
        try exercise("nspawn:\(c.name)", c.run)
        // systemd-run runs it as a transient service of the machine's own systemd, not as a raw namespace join.
        let unit = try mrctl(["exec", "--host", "nspawn:\(c.name)", "cat /proc/self/cgroup"])
        #expect(unit.stdout.contains(".service"), "\(unit.stdout)")
    }

    @Test func anInventoryNamesTheMachineAndTheProcess() throws {
        let c = try SystemdContainer()
        try c.register()
        try #require(c.run("echo inventory-ok > /etc/mr-marker").status == 0)
        let inventory = FileManager.default.temporaryDirectory.appendingPathComponent("mr-inv-\(c.name).ini").path
        defer { try? FileManager.default.removeItem(atPath: inventory) }
        try """
        [boxes]
        box-machine ansible_connection=community.general.machinectl ansible_host=\(c.name)
        box-ns ansible_connection=community.general.nsenter ansible_nsenter_pid=\(c.pid)
        """.write(toFile: inventory, atomically: true, encoding: .utf8)
        let r = try mrctl(["exec", "--json", "-i", inventory, "cat /etc/mr-marker"])
        #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
        let names = Set(r.objects.compactMap { $0["host"]?.stringValue })
        #expect(names == ["box-machine", "box-ns"])
        #expect(r.objects.allSatisfy { $0["result"]?["stdout"]?.stringValue == "inventory-ok\n" }, "\(r.stdout)")
        expectNothingLeft(c.run)
    }

    @Test func anInterruptEndsTheCommandAndRemovesTheRunner() throws {
        let c = try SystemdContainer()
        try c.register()
        try interrupt("nspawn:\(c.name)", c.run)
        try interrupt("nsenter:\(c.pid)", c.run)
    }

    @Test func aNoexecTmpFallsBackToTheHomeCache() throws {
        let c = try SystemdContainer()
        try #require(c.run("mount -o remount,noexec /tmp && mkdir -p /root").status == 0)
        let r = try mrctl(["exec", "--host", "nsenter:\(c.pid)", "echo ran"], environment: ["HOME": "/root"])
        #expect(r.status == 0 && r.stdout.contains("ran"), "\(r.stdout) \(r.stderr)")
        #expect(c.run("test -d /root/.cache/micro-runner").status == 0, "the fallback directory was used")
        expectNothingLeft(c.run)
    }

    @Test func aMissingMachineProcessOrRuntimeIsNamed() throws {
        let machine = try mrctl(["exec", "--host", "nspawn:mr-no-such-machine", "true"])
        #expect(machine.status == 4 && machine.stdout.contains("nspawn:mr-no-such-machine"), "\(machine.stdout)")
        #expect(machine.stdout.contains("CLIENT_UNREACHABLE"), "\(machine.stdout)")
        let process = try mrctl(["exec", "--host", "nsenter:999999999", "true"])
        #expect(process.status == 4 && process.stdout.contains("CLIENT_UNREACHABLE"), "\(process.stdout)")
        let runtime = try mrctl(["exec", "--host", "docker:web", "true"], environment: ["PATH": "/nonexistent"])
        #expect(runtime.status == 2, "\(runtime.stdout)")
        #expect(runtime.stdout.contains("docker not found in PATH (install docker.io"), "\(runtime.stdout)")
    }
}

@Suite(.serialized, .enabled(if: PodmanContainer.available, "root, podman and runc (scripts/test installs them)"))
struct PodmanTransportTests {
    @Test func byNameThroughAnInventoryAndAnInterrupt() throws {
        let c = try PodmanContainer()
        try exercise("podman:\(c.name)", environment: c.environment, c.run)
        // Another user in the container: podman exec -u.
        let nobody = try mrctl(["exec", "--host", "podman:nobody@\(c.name)", "id -un"], environment: c.environment)
        #expect(nobody.status == 0 && nobody.stdout.contains("nobody"), "\(nobody.stdout)")

        let inventory = FileManager.default.temporaryDirectory.appendingPathComponent("mr-inv-\(c.name).yml").path
        defer { try? FileManager.default.removeItem(atPath: inventory) }
        try """
        all:
          hosts:
            web:
              ansible_connection: containers.podman.podman
              ansible_host: \(c.name)
        """.write(toFile: inventory, atomically: true, encoding: .utf8)
        let r = try mrctl(["exec", "--json", "-i", inventory, "cat /etc/mr-marker"], environment: c.environment)
        #expect(r.status == 0 && r.objects.first?["host"] == .string("web"), "\(r.stdout) \(r.stderr)")

        try interrupt("podman:\(c.name)", environment: c.environment, c.run)

        let missing = try mrctl(["exec", "--host", "podman:mr-no-such", "true"], environment: c.environment)
        #expect(missing.status == 4 && missing.stdout.contains("CLIENT_UNREACHABLE"), "\(missing.stdout)")
    }
}
