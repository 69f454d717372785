import Foundation
import MicroRunnerClient
import MicroRunnerProtocol
import MicroRunnerTestSupport
import Testing

/// A host that attacks the controller: a fake runner (READY, then what `HOSTILE_MODE` says) that mrctl uploads and
/// starts through the local transport, as it would any runner.
enum HostileRunner {
    static let script = #"""
        #!/usr/bin/env python3
        import json, os, sys
        mode = os.environ["HOSTILE_MODE"]
        out = sys.stdout.buffer
        def send(t, data):
            # Compact, as a runner writes it.
            line = json.dumps({"type": t, "timestamp": "2026-12-07T00:00:00Z", "data": data}, separators=(",", ":"))
            out.write(line.encode() + b"\n")
            out.flush()
        caps = {k: True for k in ["exec", "file.write", "file.read"]}
        extensions = "cancel,file.digest,file.raw_content" if mode == "raw-flood" else "cancel"
        send("READY", {"version": "hostile", "platform": "linux", "arch": "amd64", "pid": os.getpid(),
                       "capabilities": caps, "metadata": {"ttl": "10m0s", "extensions": extensions}})
        if mode == "raw-flood":
            # Speaks file.digest and file.raw_content, then announces more raw bytes than any answer may have.
            for line in sys.stdin:
                d = json.loads(line)["data"]
                p = d.get("params", {})
                if p.get("digest_only"):
                    send("DONE", {"command_id": d["id"], "result": {"content": "", "size": 1 << 30, "mode": "0644",
                                  "owner": "0", "group": "0", "checksum": "", "truncated": False,
                                  "file_checksum": "0" * 64}, "duration": 0.0})
                else:
                    send("DONE", {"command_id": d["id"], "result": {"content": "", "size": 1 << 30, "mode": "0644",
                                  "owner": "0", "group": "0", "checksum": "", "truncated": True, "encoding": "raw",
                                  "content_length": (16 << 20) + 1}, "duration": 0.0})
                    try:
                        while True:
                            out.write(b"\n" * 65536)
                    except BrokenPipeError:
                        sys.exit(0)
            sys.exit(0)
        line = sys.stdin.readline()
        cmd = json.loads(line)["data"]["id"] if line else "?"
        if mode == "endless-line":
            out.write(b'{"type":"EVENT","data":{"message":"')
            chunk = b"x" * 65536
            try:
                while True:
                    out.write(chunk)
            except BrokenPipeError:
                sys.exit(0)
        elif mode == "event-flood":
            message = "y" * (1 << 20)
            try:
                while True:
                    send("EVENT", {"command_id": cmd, "level": "info", "message": message})
            except BrokenPipeError:
                sys.exit(0)
        elif mode == "escapes":
            text = "\x1b[2K\rOK all good\x1b]0;pwned title\x07\x1b]52;c;aGVsbG8=\x07\x1b[8mhidden\x9b31m\u202eevil\n"
            send("DONE", {"command_id": cmd, "result": {"exit_code": 0, "stdout": text, "stderr": "\x1b[1A\x1b[2K",
                                                        "duration": 0.0}, "duration": 0.0})
            sys.stdin.read()
            send("EXIT", {"reason": "stdin_closed", "exit_code": 0, "self_deleted": False, "commands_total": 1})
        """#

    /// Runs `mrctl exec` against the hostile runner; returns how it ended, its peak RSS (KiB, from wait4) and
    /// how long it took.
    static func mrctl(mode: String, arguments: [String] = []) throws -> (CLIRun, maxRSSKiB: Int, seconds: Double) {
        let dir = NSTemporaryDirectory() + "mr-hostile-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try script.write(toFile: dir + "/runner", atomically: true, encoding: .utf8)
        chmod(dir + "/runner", 0o755)
        return try mrctlMeasured(
            ["exec", "--host", "local", "--runner", dir + "/runner"] + arguments + ["--", "true"],
            environment: ["HOSTILE_MODE": mode]
        )
    }
}

/// mrctl run to its end, with its peak RSS (KiB, from wait4: Foundation's Process gives no rusage) and how long
/// it took.
func mrctlMeasured(
    _ arguments: [String],
    environment: [String: String] = [:]
) throws -> (CLIRun, maxRSSKiB: Int, seconds: Double) {
    let dir = NSTemporaryDirectory() + "mr-measured-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let driver = """
        import os, sys, time
        start = time.time()
        pid = os.fork()
        if pid == 0:
            out = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            err = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(out, 1)
            os.dup2(err, 2)
            os.execv(sys.argv[3], sys.argv[3:])
        _, status, usage = os.wait4(pid, 0)
        print(os.waitstatus_to_exitcode(status), usage.ru_maxrss, time.time() - start)
        """
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
    p.arguments = ["-c", driver, dir + "/out", dir + "/err", mrctlPath] + arguments
    p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    let pipe = Pipe()
    p.standardOutput = pipe
    try p.run()
    let report = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    let fields = report.split(separator: " ").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
    guard fields.count == 3, let status = Int32(fields[0]), let rss = Int(fields[1]), let seconds = Double(fields[2])
    else { throw TestFailure("driver said: \(report)") }
    let out = (try? String(contentsOfFile: dir + "/out", encoding: .utf8)) ?? ""
    let err = (try? String(contentsOfFile: dir + "/err", encoding: .utf8)) ?? ""
    return (CLIRun(status: status, stdout: out, stderr: err), rss, seconds)
}

/// The second adversarial review: the controller's memory and terminal are as precious as the host's.
@Suite struct HostileHostTests {
    /// One line that never ends took mrctl to 1.2-2 GB in 12 s; now the host fails at 16 MiB.
    @Test func aLineThatNeverEndsFailsTheHostWithBoundedMemory() throws {
        let (run, rss, seconds) = try HostileRunner.mrctl(mode: "endless-line")
        #expect(run.status == 2, "\(run.stdout) \(run.stderr)")
        #expect(run.stdout.contains("line longer than 16777216 bytes"), "\(run.stdout)")
        #expect(rss < 96 * 1024, "peak RSS \(rss / 1024) MiB")
        #expect(seconds < 20, "took \(seconds) s")
    }

    /// 1 MiB EVENT lines without end, and no answer: mrctl's memory stays flat (reading pauses while the
    /// client is behind), and the command fails once its timeout and the 30 s grace have passed (`--timeout`
    /// did not stop it before).
    @Test func aFloodOfEventsWithoutAnAnswerIsBoundedAndTimesOut() throws {
        let (run, rss, seconds) = try HostileRunner.mrctl(mode: "event-flood", arguments: ["--timeout", "1"])
        #expect(run.status == 2, "\(run.stdout) \(run.stderr)")
        #expect(run.stdout.contains("CLIENT_ANSWER_TIMEOUT"), "\(run.stdout.prefix(2000))")
        #expect(rss < 64 * 1024, "peak RSS \(rss / 1024) MiB")
        #expect(seconds < 45, "took \(seconds) s")
    }

    /// CSI, OSC (title, clipboard), C1 and bidi controls from a host reach the terminal only as visible text; a
    /// FAILED cannot be drawn over as OK. `--raw` prints them as they came; `--json` escapes them as JSON does.
    @Test func escapeSequencesFromAHostAreShownNotObeyed() throws {
        let (run, _, _) = try HostileRunner.mrctl(mode: "escapes")
        #expect(run.status == 0, "\(run.stdout) \(run.stderr)")
        let forbidden = run.stdout.unicodeScalars.filter {
            ($0.value < 0x20 && $0 != "\n" && $0 != "\t") || (0x7F...0x9F).contains($0.value) || $0.value == 0x202E
        }
        #expect(forbidden.isEmpty, "reached the terminal: \(forbidden.map { String($0.value, radix: 16) })")
        #expect(run.stdout.contains(#"\x1b]52;c;aGVsbG8="#), "shown, visibly: \(run.stdout)")
        #expect(run.stdout.contains(#"\u{009b}31m"#) && run.stdout.contains(#"\u{202e}evil"#), "\(run.stdout)")
        let (raw, _, _) = try HostileRunner.mrctl(mode: "escapes", arguments: ["--raw"])
        #expect(raw.stdout.contains("\u{1B}]52;c;aGVsbG8="), "--raw prints the bytes")
        let (json, _, _) = try HostileRunner.mrctl(mode: "escapes", arguments: ["--json"])
        #expect(!json.stdout.unicodeScalars.contains { $0.value == 0x1B }, "\(json.stdout)")
    }
}

/// TerminalText over every code point that matters, in every position: nothing below 0x20 but tab and
/// newline, no DEL, no C1 and no bidi control reaches the terminal; everything else is left as it was.
/// Raw bytes after an answer (ext `file.raw_content`) are found only where a DONE line has the key itself.
@Suite struct RawAnswerFramingTests {
    @Test(
        arguments: [
            (#"{"type":"DONE","timestamp":"t","data":{"result":{"content_length":4194304}}}"#, 4_194_304),
            (#"{"type":"DONE","data":{"result":{"content_length":0}}}"#, 0),
            // Inside a string every quote is escaped: text that looks like the key is not it.
            (#"{"type":"DONE","data":{"result":{"stdout":"\"content_length\":99"}}}"#, nil),
            (#"{"type":"EVENT","data":{"metadata":{"content_length":5}}}"#, nil),
            (#"{"type":"DONE","data":{"result":{"content_length":-5}}}"#, nil),
            (#"{"type":"DONE","data":{"result":{"content_length":"5"}}}"#, nil),
            (#" {"type":"DONE","data":{"result":{"content_length":5}}}"#, nil),
        ] as [(String, Int?)]
    )
    func announcedLength(_ line: String, _ want: Int?) {
        #expect(RawAnswer.announcedLength(ArraySlice(Array(line.utf8))) == want)
    }

    /// A host that announces more raw bytes than any answer may have fails the session, bounded.
    @Test func anOversizedRawAnswerEndsTheSession() throws {
        let dir = NSTemporaryDirectory() + "mr-hostile-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try HostileRunner.script.write(toFile: dir + "/runner", atomically: true, encoding: .utf8)
        chmod(dir + "/runner", 0o755)
        let (run, rss, seconds) = try mrctlMeasured(
            ["fetch", "--host", "local", "--runner", dir + "/runner", "/etc/hostname", dir + "/out"],
            environment: ["HOSTILE_MODE": "raw-flood"]
        )
        #expect(run.status != 0)
        #expect(run.stdout.contains("raw bytes") || run.stderr.contains("raw bytes"), "\(run.stdout) \(run.stderr)")
        #expect(rss < 128 << 10, "peak RSS \(rss >> 10) MiB")
        // Usually 0.2 s; a write already queued when the session ends can leave the tidy-up to the answer's
        // grace (30 s), which bounds it.
        #expect(seconds < 60)
        #expect(!FileManager.default.fileExists(atPath: dir + "/out/local/etc/hostname"))
    }
}

@Suite struct TerminalTextTests {
    @Test func noControlCharacterSurvivesInAnyPosition() {
        let interesting = Array(0...0x2FF) + Array(0x2000...0x206F) + [0xFEFF, 0x1F600]
        for value in interesting {
            guard let scalar = Unicode.Scalar(value) else { continue }
            for (prefix, suffix) in [("", ""), ("a", ""), ("", "b"), ("ab", "cd"), ("\u{1B}", "\u{9B}")] {
                var text = prefix
                text.unicodeScalars.append(scalar)
                text += suffix
                let shown = TerminalText.visible(text)
                for s in shown.unicodeScalars {
                    #expect(
                        !TerminalText.needsEscape(s) && !(s.value < 0x20 && s != "\n" && s != "\t"),
                        "U+\(String(value, radix: 16)) left \(String(s.value, radix: 16)) in \(shown.debugDescription)"
                    )
                }
                if !TerminalText.needsEscape(scalar) && !prefix.contains("\u{1B}") {
                    #expect(shown == text, "U+\(String(value, radix: 16)) must be left alone")
                }
            }
        }
    }

    @Test func everyByteDecodedAsUTF8IsSafe() {
        for first in 0...255 {
            for second in [0x00, 0x1B, 0x41, 0x80, 0x9B, 0xC2, 0xE2, 0xFF] {
                let text = String(decoding: [UInt8(first), UInt8(second), 0x5B, 0x33, 0x31, 0x6D], as: UTF8.self)
                let shown = TerminalText.visible(text)
                #expect(!shown.unicodeScalars.contains { TerminalText.needsEscape($0) }, "\(first) \(second)")
            }
        }
    }

    @Test func examples() {
        #expect(TerminalText.visible("plain\ttext\n") == "plain\ttext\n")
        #expect(TerminalText.visible("\u{1B}[31mred\r") == #"\x1b[31mred\x0d"#)
        #expect(TerminalText.visible("a\u{7F}b\u{85}c") == #"a\x7fb\u{0085}c"#)
    }
}
