import Foundation
import MicroRunnerProtocol
import Testing

/// The static runner built by `scripts/build-runner` (or `MICRO_RUNNER_BIN`).
enum RunnerBinary {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static var path: String {
        ProcessInfo.processInfo.environment["MICRO_RUNNER_BIN"]
            ?? repo.appendingPathComponent(".build/release/micro-runner").path
    }

    /// A private copy, since the runner deletes itself at exit.
    static func copy() throws -> String {
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw TestFailure("runner binary missing at \(path): run scripts/build-runner first (scripts/test does)")
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mr-it-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let dest = dir.appendingPathComponent("micro-runner").path
        try FileManager.default.copyItem(atPath: path, toPath: dest)
        return dest
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// One received wire line.
struct Received {
    var type: MessageType
    var data: JSONValue
    var at: Date

    var commandID: String? { data["command_id"]?.stringValue }
    var code: String? { data["code"]?.stringValue }
    var message: String { data["message"]?.stringValue ?? "" }
    subscript(_ key: String) -> JSONValue? { data[key] }
    var result: JSONValue { data["result"] ?? .null }
}

/// Drives a runner process over pipes, reading its stdout on a thread.
final class RunnerProcess: @unchecked Sendable {
    let process = Process()
    let stdin = Pipe()
    let stdout = Pipe()
    let stderr = Pipe()
    let binary: String
    private let lock = NSCondition()
    private var lines: [Received] = []
    private var rawLines: [String] = []
    private var eof = false

    init(arguments: [String] = [], binary: String? = nil, environment: [String: String]? = nil) throws {
        self.binary = try binary ?? RunnerBinary.copy()
        process.executableURL = URL(fileURLWithPath: self.binary)
        process.arguments = arguments
        if let environment { process.environment = environment }
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        // A just-copied binary can be briefly "busy" (ETXTBSY) while another test's fork still holds it open.
        var attempts = 0
        while true {
            do {
                try process.run()
                break
            } catch  where attempts < 500 && "\(error)".contains("Text file busy") {
                attempts += 1
                usleep(2000)
            }
        }
        let handle = stdout.fileHandleForReading
        Thread.detachNewThread { [self] in
            var pending: [UInt8] = []
            var scanFrom = 0
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                pending.append(contentsOf: chunk)
                // Scan only the new bytes: a multi-megabyte line arrives in many chunks.
                while let nl = pending[scanFrom...].firstIndex(of: 0x0A) {
                    let line = Array(pending[0..<nl])
                    pending.removeSubrange(0...nl)
                    scanFrom = 0
                    let text = String(decoding: line, as: UTF8.self)
                    let received: Received
                    do {
                        let env = try Envelope.parse(line: line)
                        received = Received(type: env.type, data: env.data, at: Date())
                    } catch {
                        received = Received(type: "UNPARSEABLE", data: .string(text), at: Date())
                    }
                    lock.lock()
                    lines.append(received)
                    rawLines.append(text)
                    lock.broadcast()
                    lock.unlock()
                }
                scanFrom = pending.count
            }
            lock.lock()
            eof = true
            lock.broadcast()
            lock.unlock()
        }
    }

    deinit {
        if process.isRunning { process.terminate() }
    }

    func send(_ text: String) {
        stdin.fileHandleForWriting.write(Data((text + "\n").utf8))
    }

    func send(bytes: [UInt8]) {
        stdin.fileHandleForWriting.write(Data(bytes))
    }

    func sendCommand(
        _ id: String,
        _ type: String,
        timeout: Int = 30,
        params: [String: Any],
        extra: [String: Any] = [:]
    ) {
        var data: [String: Any] = ["id": id, "type": type, "timeout": timeout, "params": params]
        for (k, v) in extra { data[k] = v }
        let object: [String: Any] = ["type": "CMD", "data": data]
        let json = try! JSONSerialization.data(withJSONObject: object)
        send(String(decoding: json, as: UTF8.self))
    }

    func closeStdin() {
        try? stdin.fileHandleForWriting.close()
    }

    /// Waits for the next line (in order).
    private var cursor = 0
    func next(timeout: TimeInterval = 15) throws -> Received {
        let deadline = Date().addingTimeInterval(timeout)
        lock.lock()
        defer { lock.unlock() }
        while cursor >= lines.count {
            if eof { throw TestFailure("runner closed stdout; stderr: \(stderrText())") }
            if !lock.wait(until: deadline) { throw TestFailure("no line from the runner within \(timeout)s") }
        }
        cursor += 1
        return lines[cursor - 1]
    }

    /// Waits for the next line of `type`, skipping others (e.g. EVENTs).
    func next(_ type: MessageType, timeout: TimeInterval = 15) throws -> Received {
        while true {
            let r = try next(timeout: timeout)
            if r.type == type { return r }
        }
    }

    /// The next DONE or ERROR.
    func answer(timeout: TimeInterval = 15) throws -> Received {
        while true {
            let r = try next(timeout: timeout)
            if r.type == .done || r.type == .error { return r }
        }
    }

    var allRawLines: [String] {
        lock.lock()
        defer { lock.unlock() }
        return rawLines
    }

    func waitForExit(timeout: TimeInterval = 15) throws -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning {
            if Date() > deadline { throw TestFailure("runner still running after \(timeout)s") }
            usleep(10_000)
        }
        return process.terminationStatus
    }

    func stderrText() -> String {
        String(decoding: (try? stderr.fileHandleForReading.readToEnd()) ?? Data(), as: UTF8.self)
    }
}

/// Whether any process with `marker` in its command line still runs.
func processRunning(withMarker marker: String) -> Bool {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    for pid in entries where Int(pid) != nil {
        guard let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { continue }
        let text = String(decoding: cmdline.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
        if text.contains(marker) && !text.contains("pgrep") {
            // A zombie is gone for our purposes only once reaped; count anything that is not a zombie.
            if let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")"),
                stat[stat.index(close, offsetBy: 2)] == "Z"
            {
                continue
            }
            return true
        }
    }
    return false
}

/// A unique marker for `sleep` durations so tests can find their own processes.
func uniqueSleep(_ base: Int) -> String {
    "\(base).\(Int.random(in: 100_000...999_999))"
}
