import MicroRunnerAgent
import MicroRunnerHandlers
import MicroRunnerProtocol
// libFuzzer entry point for the whole agent in-process: framing, envelope parsing, validation, signatures,
// idempotency, run_if_succeeded chains, deadlines and dispatch, with handlers that do nothing (so a fuzzed
// line can reach every decision the runner makes before a handler would touch the machine).
// Built by scripts/fuzz with -sanitize=fuzzer,address -DFUZZING; a normal build makes a replayer instead:
// `micro-runner-fuzz-agent FILE...` runs each file through the same entry point.
import MicroRunnerSystem

/// Answers every command at once: `{"exit_code": params.code}` (0 when absent), so chains and idempotency see
/// both successes and failures.
final class NoopHandler: CommandHandler {
    let type: CommandType
    init(type: CommandType) { self.type = type }
    func isAvailable(on host: Host) -> Bool { true }
    func run(_ context: CommandContext) throws(RunnerError) -> JSONValue {
        if context.command.params["fail"] != nil { throw RunnerError(.execFailed, "fuzz failure") }
        let code = context.command.params["code"]?.intValue ?? 0
        return .object(JSONObject([("exit_code", .number(String(code)))]))
    }
}

let devNull = open("/dev/null", O_WRONLY | O_CLOEXEC)

/// One session: the input as stdin (a few fixed lines first, so replays and chains have something to find),
/// answered to /dev/null, until EOF.
func runSession(_ input: [UInt8]) {
    var fds: [Int32] = [0, 0]
    guard pipe(&fds) == 0 else { return }
    let prefix = Array(
        #"{"type":"CMD","data":{"id":"p1","type":"exec","timeout":5,"idempotency_key":"k","params":{}}}"#.utf8 + [0x0A]
    )
    // Both fit in the pipe's 64 KiB buffer (libFuzzer runs with -max_len=4096), so the write never blocks.
    (prefix + input).withUnsafeBytes { _ = write(fds[1], $0.baseAddress, $0.count) }
    close(fds[1])
    var config = AgentConfiguration(version: "fuzz")
    config.inputFD = fds[0]
    config.outputFD = devNull
    config.keepBinary = true
    config.handlers = CommandType.all.map { NoopHandler(type: $0) }
    config.ttlSeconds = 30
    if let agent = try? Agent(configuration: config) {
        _ = agent.run()
    }
    close(fds[0])
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    runSession(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

#if FUZZING
/// libFuzzer's driver, entered from this executable's own main (SwiftPM names the entry point itself, so
/// libFuzzer's `main` cannot be the one).
@_silgen_name("LLVMFuzzerRunDriver")
func fuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> Int32
) -> Int32

@main struct Fuzz {
    static func main() {
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(fuzzerRunDriver(&argc, &argv) { data, size in fuzzOneInput(data, size) })
    }
}
#else
@main struct Replay {
    static func main() {
        for path in CommandLine.arguments.dropFirst() {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { continue }
            var bytes: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = read(fd, &buffer, buffer.count)
                if n <= 0 { break }
                bytes += buffer[0..<n]
            }
            close(fd)
            runSession(bytes)
        }
    }
}
#endif
