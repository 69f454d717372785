import MicroRunnerHandlers
import MicroRunnerProtocol
// Benchmarks the built static runner over pipes (not a test: numbers, no assertions).
//
//   swift run -c release micro-runner-bench [--runner PATH] [--commands N] [--starts N]
//
// Measures: time from spawn to READY; round trip of `exec /bin/true` (argv form), median and p99 over
// N sequential commands; the floor of a raw posix_spawn+waitpid of /bin/true from this process in the
// same run; the runner's peak RSS (VmHWM); file.write and file.read of an 8 MiB file.
import MicroRunnerSystem

var runnerPath = ".build/runner/amd64/micro-runner"
var commands = 2000
var starts = 200
var only: String?
var args = CommandLine.arguments.dropFirst()[...]
while let a = args.popFirst() {
    switch a {
    case "--runner": runnerPath = args.popFirst() ?? runnerPath
    case "--commands": commands = Int(args.popFirst() ?? "") ?? commands
    case "--starts": starts = Int(args.popFirst() ?? "") ?? starts
    case "--only": only = args.popFirst()  // ready | exec | spawn | supervised | files (for profiling)
    default:
        print("usage: micro-runner-bench [--runner PATH] [--commands N] [--starts N] [--only PHASE]")
        exit(2)
    }
}

signal(SIGPIPE, SIG_IGN)

/// A runner child with line I/O.
final class Runner {
    let pid: pid_t
    let toRunner: Int32
    let fromRunner: Int32
    var buffer: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 20)

    init(_ path: String) {
        var request = SpawnRequest(executable: path, arguments: [path, "--keep"])
        request.standardInput = .pipe
        request.standardOutput = .pipe
        request.standardError = .inherited  // the runner's complaints stay visible
        let spawned: SpawnedProcess
        do throws(SpawnError) {
            spawned = try Spawn.start(request)
        } catch {
            fatalError("cannot start \(path): \(errnoText(error.code))")
        }
        guard let input = spawned.standardInput, let output = spawned.standardOutput else {
            fatalError("Spawn returns the pipes it was asked for")
        }
        pid = spawned.pid
        toRunner = input
        fromRunner = output
    }

    func send(_ line: [UInt8]) {
        line.withUnsafeBytes { _ = writeAll(toRunner, $0) }
    }

    var scanned = 0

    func readLine() -> [UInt8] {
        while true {
            // Only new bytes are scanned: an 8 MiB answer arrives in many reads.
            if let nl = buffer[scanned...].firstIndex(of: 0x0A) {
                let line = Array(buffer[0..<nl])
                buffer.removeSubrange(0...nl)
                scanned = 0
                return line
            }
            scanned = buffer.count
            let n = chunk.withUnsafeMutableBytes { read(fromRunner, $0.baseAddress, $0.count) }
            guard n > 0 else { fatalError("runner closed its output") }
            buffer.append(contentsOf: chunk[0..<n])
        }
    }

    /// A field of /proc/PID/status in KiB: VmHWM (peak resident) or VmRSS (resident now).
    func statusKiB(_ field: String) -> Int {
        let status = (try? FileSystem.readAll("/proc/\(pid)/status")) ?? []
        for line in String(decoding: status, as: UTF8.self).split(separator: "\n") where line.hasPrefix(field + ":") {
            return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
        }
        return 0
    }

    func stop() {
        close(toRunner)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        close(fromRunner)
    }
}

func percentile(_ values: [Double], _ p: Double) -> Double {
    let sorted = values.sorted()
    return sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * p + 0.5))]
}

func ms(_ ns: Int64) -> Double { Double(ns) / 1e6 }

func fmt(_ v: Double, _ digits: Int = 3) -> String {
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let r = (v * scale).rounded() / scale
    return String(r)
}

@MainActor func runs(_ phase: String) -> Bool { only == nil || only == phase }

// 1. Time to READY.
var readyTimes: [Double] = [0]
for i in 0..<(runs("ready") ? starts : 0) {
    if i == 0 { readyTimes = [] }
    let t0 = Monotonic.now()
    let r = Runner(runnerPath)
    _ = r.readLine()
    readyTimes.append(ms(Monotonic.now() - t0))
    r.stop()
}

// 2. exec /bin/true round trips, and the runner's RSS.
let runner = Runner(runnerPath)
_ = runner.readLine()
var execTimes: [Double] = [0]
for i in 0..<(runs("exec") ? commands + 50 : 0) {
    let line =
        Array(
            #"{"type":"CMD","data":{"id":"b\#(i)","type":"exec","timeout":10,"params":{"command":"/bin/true","args":["x"]}}}"#
                .utf8
        ) + [0x0A]
    let t0 = Monotonic.now()
    runner.send(line)
    let answer = runner.readLine()
    let t = ms(Monotonic.now() - t0)
    guard answer.starts(with: Array(#"{"type":"DONE""#.utf8)) else {
        fatalError("unexpected answer: \(String(decoding: answer, as: UTF8.self))")
    }
    if i == 50 { execTimes = [] }
    if i >= 50 { execTimes.append(t) }  // first 50 warm up
}

// 2b. A round trip that spawns nothing (file.read of a 16-byte file): the protocol's own cost.
var protocolTimes: [Double] = [0]
let tinyPath = "/tmp/mr-bench-tiny-\(getpid())"
let tinyFD = open(tinyPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
_ = write(tinyFD, "0123456789abcdef", 16)
close(tinyFD)
for i in 0..<(runs("protocol") ? commands + 50 : 0) {
    let line =
        Array(
            #"{"type":"CMD","data":{"id":"p\#(i)","type":"file.read","timeout":10,"params":{"path":"\#(tinyPath)"}}}"#
                .utf8
        )
        + [0x0A]
    let t0 = Monotonic.now()
    runner.send(line)
    _ = runner.readLine()
    if i == 50 { protocolTimes = [] }
    if i >= 50 { protocolTimes.append(ms(Monotonic.now() - t0)) }
}
unlink(tinyPath)

let peakAfterExec = runner.statusKiB("VmHWM")

// 3. The floor (raw posix_spawn + waitpid of /bin/true from this process) and the runner's own spawn path
// (ProcessRunner: process group, /dev/null stdio, pidfd, poll) in this process without the protocol,
// interleaved so that both see the same machine: this VM's spawn cost drifts by 0.1 ms between minutes.
var spawnTimes: [Double] = [0]
var supervisedTimes: [Double] = [0]
// The same argv as the exec command above: coreutils' true sets up its locale only when given an argument
// (~0.3 ms here), so a floor of `/bin/true` alone against `/bin/true x` once overstated the runner's cost.
let trueArgv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/true"), strdup("x"), nil]
let processRunner = ProcessRunner()
for i in 0..<(runs("spawn") || runs("supervised") ? commands + 50 : 0) {
    if i == 50 {
        spawnTimes = []
        supervisedTimes = []
    }
    var t0 = Monotonic.now()
    var pid: pid_t = 0
    posix_spawn(&pid, "/bin/true", nil, nil, trueArgv, environ)
    var status: Int32 = 0
    waitpid(pid, &status, 0)
    if i >= 50 { spawnTimes.append(ms(Monotonic.now() - t0)) }

    var spec = ProcessSpec(executable: "/bin/true", arguments: ["/bin/true", "x"])
    spec.captureOutput = false
    spec.captureError = false
    spec.cancellation = CancellationToken()
    t0 = Monotonic.now()
    _ = try? processRunner.run(spec)
    if i >= 50 { supervisedTimes.append(ms(Monotonic.now() - t0)) }
}

// 4. 8 MiB file.write and file.read.
let dir = "/tmp/mr-bench-\(getpid())"
mkdir(dir, 0o700)
let size = 8 << 20
let content = String(repeating: "0123456789abcdef", count: size / 16)
var writeTimes: [Double] = [1]
var readTimes: [Double] = [1]
for i in 0..<(runs("files") ? 10 : 0) {
    // Alternate content so every write really writes (an identical one is skipped as unchanged).
    let body = i % 2 == 0 ? content : String(repeating: "fedcba9876543210", count: size / 16)
    let w =
        Array(
            #"{"type":"CMD","data":{"id":"w\#(i)","type":"file.write","timeout":60,"params":{"path":"\#(dir)/f","create":true,"content":"\#(body)"}}}"#
                .utf8
        ) + [0x0A]
    var t0 = Monotonic.now()
    runner.send(w)
    let wa = runner.readLine()
    if i == 0 { writeTimes = [] }
    writeTimes.append(ms(Monotonic.now() - t0))
    guard wa.starts(with: Array(#"{"type":"DONE""#.utf8)) else {
        fatalError(String(decoding: wa.prefix(300), as: UTF8.self))
    }
    let r =
        Array(
            #"{"type":"CMD","data":{"id":"r\#(i)","type":"file.read","timeout":60,"params":{"path":"\#(dir)/f"}}}"#.utf8
        ) + [0x0A]
    t0 = Monotonic.now()
    runner.send(r)
    let ra = runner.readLine()
    if i == 0 { readTimes = [] }
    readTimes.append(ms(Monotonic.now() - t0))
    guard ra.count > size else { fatalError("short read answer") }
}
let peakAfterFiles = runner.statusKiB("VmHWM")
let rssAfterFiles = runner.statusKiB("VmRSS")
runner.stop()
unlink(dir + "/f")
rmdir(dir)

var st = stat()
stat(runnerPath, &st)
let mib = Double(size) / 1_048_576
/// One result row: label, then median and p99 in ms, or free text.
func row(_ label: String, _ text: String) {
    print(label + String(repeating: " ", count: max(1, 44 - label.count)) + text)
}

func timing(_ values: [Double]) -> String {
    "median \(fmt(percentile(values, 0.5))) ms, p99 \(fmt(percentile(values, 0.99))) ms"
}

print("runner: \(runnerPath) (\(st.st_size) bytes)")
if runs("ready") { row("time to READY (\(starts) starts)", timing(readyTimes)) }
if runs("exec") { row("exec /bin/true round trip (\(commands))", timing(execTimes)) }
if runs("protocol") { row("protocol round trip, no spawn (\(commands))", timing(protocolTimes)) }
if runs("spawn") || runs("supervised") { row("raw posix_spawn+waitpid floor (\(commands))", timing(spawnTimes)) }
if runs("spawn") || runs("supervised") { row("ProcessRunner in-process (\(commands))", timing(supervisedTimes)) }
if only == nil {
    row("runner overhead over the floor", "median \(fmt(percentile(execTimes, 0.5) - percentile(spawnTimes, 0.5))) ms")
}
if runs("files") {
    let w = percentile(writeTimes, 0.5)
    let r = percentile(readTimes, 0.5)
    row("file.write 8 MiB (10 runs)", "median \(fmt(w, 1)) ms = \(fmt(mib / w * 1000, 0)) MiB/s")
    row("file.read 8 MiB (10 runs)", "median \(fmt(r, 1)) ms = \(fmt(mib / r * 1000, 0)) MiB/s")
}
row("runner peak RSS after READY + exec", "\(peakAfterExec) KiB")
if runs("files") {
    row("runner peak RSS after 8 MiB transfers", "\(peakAfterFiles) KiB (resident afterwards: \(rssAfterFiles) KiB)")
}
