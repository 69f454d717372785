import Foundation
import MicroRunnerClient
import MicroRunnerProtocol
import MicroRunnerTestSupport
import Testing

/// ext `file.raw_content`: a file.write's content as raw bytes after its line. What matters beyond the bytes
/// landing: the framing never loses its place, so bytes that look like protocol lines are never served.
@Suite(.serialized) struct RawContentTests {
    /// Bytes with every value, newlines and NULs among them, and a CMD line inside.
    static func hostileBytes(_ count: Int, seed: Int, embedding path: String) -> [UInt8] {
        var bytes = (0..<count).map { UInt8(truncatingIfNeeded: ($0 &* 31) ^ seed) }
        let inner = RunnerProcess.commandLine("inner", "file.write", params: ["path": path, "content": "served\n"])
        if count > inner.count + 2 { bytes.replaceSubrange(1..<(1 + inner.count), with: inner) }
        bytes[0] = 0x0A
        return bytes
    }

    static func sha(_ bytes: [UInt8]) -> String {
        let path = NSTemporaryDirectory() + "mr-raw-\(UUID().uuidString)"
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
        defer { unlink(path) }
        return sha256(path)
    }

    @Test func readyListsTheExtension() throws {
        let r = try RunnerProcess()
        let ready = try r.next(.ready)
        #expect(
            ready["metadata"]?["extensions"]?.stringValue?.split(separator: ",").contains("file.raw_content") == true
        )
    }

    /// Chunks arrive whole in one write, split across many small writes, and with the next line in the same
    /// write as the bytes: each time the file is exactly the bytes, and the line inside them is never served.
    @Test func chunksLandExactlyHoweverTheyAreCutAndTheirBytesAreNeverLines() throws {
        let s = try Scratch()
        let chunks = [
            Self.hostileBytes(300_000, seed: 1, embedding: s.file("inner")), [],
            Self.hostileBytes(1, seed: 2, embedding: s.file("inner")),
            Self.hostileBytes(70_000, seed: 3, embedding: s.file("inner")),
        ]
        let whole = chunks.reduce([], +)
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        var offset = 0
        for (i, chunk) in chunks.enumerated() {
            let final = i == chunks.count - 1
            var params: [String: Any] = [
                "path": s.file("big"), "upload_id": "raw1", "offset": offset, "final": final,
                "content_length": chunk.count, "content_sha256": Self.sha(chunk),
            ]
            if final { params["file_sha256"] = Self.sha(whole) }
            let line = RunnerProcess.commandLine("c\(i)", "file.write", params: params)
            switch i {
            case 0:
                // In pieces of 4 KiB with pauses, so the bytes span many reads of the runner.
                let all = line + chunk
                for start in stride(from: 0, to: all.count, by: 4096) {
                    r.send(bytes: Array(all[start..<min(all.count, start + 4096)]))
                    if start % (64 * 4096) == 0 { usleep(2000) }
                }
            case 1:
                // No bytes, and the next CMD in the same write.
                r.send(bytes: line + chunk + RunnerProcess.commandLine("probe", "exec", params: ["command": "true"]))
            default:
                r.send(bytes: line + chunk)
            }
            let answer = try r.answer()
            #expect(answer.type == .done, "chunk \(i): \(answer.data)")
            if i == 1 { #expect(try r.answer().commandID == "probe") }
            offset += chunk.count
        }
        #expect(FileManager.default.contents(atPath: s.file("big")) == Data(whole))
        #expect(!FileManager.default.fileExists(atPath: s.file("inner")))
        #expect(s.entries() == ["big"])
    }

    /// Whatever refuses a command with content (an unknown type, a type that takes none, a relative path, a
    /// length over the limit, a wrong hash), its bytes are taken off stdin and dropped, the line inside them is
    /// not served, and the next command is.
    @Test func aRefusedCommandsBytesAreDroppedAndNeverServed() throws {
        let s = try Scratch()
        try s.write("keep", "old\n")
        let bytes = Self.hostileBytes(50_000, seed: 7, embedding: s.file("inner"))
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        let cases: [(String, String, [String: Any], [UInt8])] = [
            ("unknown", "no.such.type", ["content_length": bytes.count], bytes),
            ("exec", "exec", ["command": "touch \(s.file("ran"))", "content_length": bytes.count], bytes),
            ("relative", "file.write", ["path": "relative", "content_length": bytes.count], bytes),
            ("both", "file.write", ["path": s.file("keep"), "content": "x", "content_length": bytes.count], bytes),
            (
                "wrong-hash", "file.write",
                [
                    "path": s.file("keep"), "content_length": bytes.count,
                    "content_sha256": String(repeating: "0", count: 64),
                ],
                bytes
            ),
            ("bad-id", "file.write", ["path": s.file("keep"), "content_length": bytes.count], bytes),
        ]
        for (id, type, params, content) in cases {
            let extra: [String: Any] = id == "bad-id" ? ["id": String(repeating: "x", count: 300)] : [:]
            r.send(bytes: RunnerProcess.commandLine(id, type, params: params, extra: extra) + content)
            let answer = try r.answer()
            #expect(answer.type == .error, "\(id): \(answer.data)")
        }
        // Over the limit (16 MiB): read and dropped, in one write with the next command behind it.
        let huge = [UInt8](repeating: 0x0A, count: (16 << 20) + 1)
        r.send(
            bytes: RunnerProcess.commandLine(
                "huge",
                "file.write",
                params: ["path": s.file("keep"), "content_length": huge.count]
            )
                + huge + RunnerProcess.commandLine("after", "file.read", params: ["path": s.file("keep")])
        )
        let refused = try r.answer(timeout: 30)
        #expect(refused.type == .error && refused.commandID == "huge")
        #expect(refused.message.contains("exceeds the limit") == true)
        let after = try r.answer()
        #expect(after.commandID == "after" && after.result["content"] == .string("old\n"))
        #expect(s.read("keep") == "old\n")
        #expect(!FileManager.default.fileExists(atPath: s.file("inner")))
        #expect(!FileManager.default.fileExists(atPath: s.file("ran")))
        // Only those answers came: nothing inside the bytes was answered as a line.
        let ids = r.allRawLines.compactMap { line -> String? in
            guard line.contains("\"DONE\"") || line.contains("\"ERROR\"") else { return nil }
            return line
        }
        #expect(ids.count == cases.count + 2, "\(ids)")
    }

    /// A whole upload's hash is checked before the file replaces anything: a file that changed while it was
    /// sent never lands, and nothing is left behind.
    @Test func aWrongWholeFileHashLeavesTheOldFile() throws {
        let s = try Scratch()
        try s.write("target", "old\n")
        let chunk = Self.hostileBytes(10_000, seed: 9, embedding: s.file("inner"))
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        r.send(
            bytes: RunnerProcess.commandLine(
                "c0",
                "file.write",
                params: [
                    "path": s.file("target"), "upload_id": "u1", "offset": 0, "final": true,
                    "content_length": chunk.count, "file_sha256": String(repeating: "a", count: 64),
                ]
            ) + chunk
        )
        let answer = try r.answer()
        #expect(answer.type == .error)
        #expect(answer.message.contains("left untouched") == true)
        #expect(s.read("target") == "old\n")
        #expect(s.entries() == ["target"])
    }

    /// Raw content is bound to an idempotency key's fingerprint only through its hash: without one it is refused.
    @Test func anIdempotencyKeyNeedsTheContentsHash() throws {
        let s = try Scratch()
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        let bytes: [UInt8] = Array("hello\n".utf8)
        r.send(
            bytes: RunnerProcess.commandLine(
                "k1",
                "file.write",
                params: ["path": s.file("f"), "create": true, "content_length": bytes.count],
                extra: ["idempotency_key": "key-1"]
            ) + bytes
        )
        let refused = try r.answer()
        #expect(refused.type == .error && refused.message.contains("content_sha256") == true)
        r.send(
            bytes: RunnerProcess.commandLine(
                "k2",
                "file.write",
                params: [
                    "path": s.file("f"), "create": true, "content_length": bytes.count,
                    "content_sha256": Self.sha(bytes),
                ],
                extra: ["idempotency_key": "key-1"]
            ) + bytes
        )
        let done = try r.answer()
        #expect(done.type == .done, "\(done.data)")
        #expect(s.read("f") == "hello\n")
    }

    /// stdin closing inside a command's bytes: that command is answered, then EXIT; nothing is written.
    @Test func stdinClosingInsideTheBytesAnswersTheCommand() throws {
        let s = try Scratch()
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        r.send(
            bytes: RunnerProcess.commandLine(
                "cut",
                "file.write",
                params: ["path": s.file("f"), "content_length": 1000]
            )
                + [UInt8](repeating: 65, count: 400)
        )
        r.closeStdin()
        let answer = try r.answer()
        #expect(answer.type == .error && answer.commandID == "cut")
        #expect(answer.message.contains("400 of 1000") == true)
        #expect(try r.next(.exit).type == .exit)
        #expect(!FileManager.default.fileExists(atPath: s.file("f")))
    }

    /// `file.read` with `raw_content`: the DONE says `content_length` and exactly those bytes follow it (newlines,
    /// NULs and a DONE-looking line among them), then the next answer; an idempotency key does not make the
    /// answer a replay without its bytes.
    @Test func aRawReadAnswersWithTheBytesAfterItsLine() throws {
        let s = try Scratch()
        var content = Self.hostileBytes(200_000, seed: 5, embedding: s.file("x"))
        content += Array(#"{"type":"DONE","data":{"command_id":"fake","result":{}}}"#.utf8) + [0x0A, 0]
        _ = FileManager.default.createFile(atPath: s.file("data"), contents: Data(content))
        var sent: [UInt8] = []
        for (id, offset, key) in [("r1", 0, nil), ("r2", 150_000, "k"), ("r3", 150_000, "k")]
            as [(String, Int, String?)]
        {
            sent += RunnerProcess.commandLine(
                id,
                "file.read",
                params: ["path": s.file("data"), "offset": offset, "max_bytes": 100_000, "raw_content": true],
                extra: key.map { ["idempotency_key": $0] } ?? [:]
            )
        }
        sent += RunnerProcess.commandLine("after", "exec", params: ["command": "true"])
        let answers = try Self.answers(to: sent)
        #expect(answers.map(\.id) == ["r1", "r2", "r3", "after"])
        #expect(answers[0].raw == Array(content[0..<100_000]))
        #expect(answers[0].result["truncated"] == .bool(true))
        #expect(answers[1].raw == Array(content[150_000...]))
        #expect(answers[1].result["truncated"] == .bool(false))
        #expect(answers[2].raw == answers[1].raw, "the second use of the key read again, with its bytes")
        #expect(answers[0].result["encoding"] == .string("raw"))
        #expect(answers[3].result["exit_code"]?.intValue == 0)
    }

    /// ext `file.skip_checksum`: asked, the answer's checksum is empty and the bytes are the same; not asked, the
    /// window's SHA-256 as always. Text windows too.
    @Test func skipChecksumLeavesOnlyTheChecksumOut() throws {
        let s = try Scratch()
        let content = Self.hostileBytes(300_000, seed: 9, embedding: s.file("x"))
        _ = FileManager.default.createFile(atPath: s.file("data"), contents: Data(content))
        try "some text\n".write(toFile: s.file("text"), atomically: true, encoding: .utf8)
        var sent: [UInt8] = []
        for (id, path, raw, skip) in [
            ("skipped", "data", true, true), ("checked", "data", true, false), ("text", "text", false, true),
        ] {
            var params: [String: Any] = ["path": s.file(path), "offset": raw ? 1000 : 0, "max_bytes": 200_000]
            if raw { params["raw_content"] = true }
            if skip { params["skip_checksum"] = true }
            sent += RunnerProcess.commandLine(id, "file.read", params: params)
        }
        let answers = try Self.answers(to: sent)
        #expect(answers.map(\.id) == ["skipped", "checked", "text"])
        #expect(answers[0].raw == Array(content[1000..<201_000]))
        #expect(answers[0].result["checksum"] == .string(""))
        #expect(answers[1].raw == answers[0].raw)
        #expect(answers[1].result["checksum"] == .string(Self.sha(answers[1].raw)))
        #expect(answers[2].result["checksum"] == .string(""))
        #expect(answers[2].result["content"] == .string("some text\n"))
        let ready = try RunnerProcess().next(.ready)
        #expect(
            ready["metadata"]?["extensions"]?.stringValue?.split(separator: ",").contains("file.skip_checksum") == true
        )
    }

    /// ext `file.running_checksum`: windows read in order carry one SHA-256 from offset 0, said by the window that
    /// reaches the end, and each names the file the same way; a window out of order, or another file's window in
    /// between, drops the running sum, so the last says none.
    @Test func aRunningChecksumCoversWindowsReadInOrderOnly() throws {
        let s = try Scratch()
        let content = Self.hostileBytes(250_000, seed: 3, embedding: s.file("x"))
        _ = FileManager.default.createFile(atPath: s.file("data"), contents: Data(content))
        try "other\n".write(toFile: s.file("other"), atomically: true, encoding: .utf8)
        func window(_ id: String, _ path: String, _ offset: Int) -> [UInt8] {
            RunnerProcess.commandLine(
                id,
                "file.read",
                params: [
                    "path": s.file(path), "offset": offset, "max_bytes": 100_000, "raw_content": true,
                    "skip_checksum": true, "running_checksum": true,
                ]
            )
        }
        let inOrder = window("a", "data", 0) + window("b", "data", 100_000) + window("c", "data", 200_000)
        let skipped = window("d", "data", 0) + window("e", "data", 200_000)
        let between =
            window("f", "data", 0) + window("g", "other", 0) + window("h", "data", 100_000)
            + window("i", "data", 200_000)
        let answers = try Self.answers(to: inOrder + skipped + between)
        #expect(answers.map(\.id) == ["a", "b", "c", "d", "e", "f", "g", "h", "i"])
        #expect(answers[0].raw + answers[1].raw + answers[2].raw == content)
        #expect(answers[0].result["file_checksum"] == nil && answers[1].result["file_checksum"] == nil)
        #expect(answers[2].result["file_checksum"] == .string(Self.sha(content)))
        let identity = answers[0].result["identity"]?.stringValue ?? ""
        #expect(identity.split(separator: ":").count == 5, "\(identity)")
        #expect(answers[1].result["identity"]?.stringValue == identity)
        #expect(answers[2].result["identity"]?.stringValue == identity)
        #expect(answers[4].result["file_checksum"] == nil, "a window was skipped")
        #expect(answers[6].result["file_checksum"] == .string(Self.sha(Array("other\n".utf8))), "a file of one window")
        #expect(answers[8].result["file_checksum"] == nil, "another file's window came between")
    }

    /// Runs a copy of the built runner on `sent` (stdin then closed) and walks its stdout as a controller does:
    /// each DONE or ERROR line, and the raw bytes a DONE announces after it.
    static func answers(to sent: [UInt8]) throws -> [(id: String, result: JSONValue, raw: [UInt8])] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try BuiltRunner.copy())
        let input = Pipe()
        let output = Pipe()
        p.standardInput = input
        p.standardOutput = output
        try p.run()
        try input.fileHandleForWriting.write(contentsOf: Data(sent))
        try input.fileHandleForWriting.close()
        let all = [UInt8](output.fileHandleForReading.readDataToEndOfFile())
        p.waitUntilExit()
        var at = 0
        var answers: [(id: String, result: JSONValue, raw: [UInt8])] = []
        while let nl = all[at...].firstIndex(of: 0x0A) {
            let line = Array(all[at..<nl])
            at = nl + 1
            let envelope = try Envelope.parse(line: line, keepRawParams: false)
            guard envelope.type == .done || envelope.type == .error else { continue }
            let result = envelope.data["result"] ?? .null
            var raw: [UInt8] = []
            if let n = result["content_length"]?.intValue {
                #expect(RawAnswer.announcedLength(ArraySlice(line)) == n)
                raw = Array(all[at..<(at + n)])
                at += n
            }
            answers.append((envelope.data["command_id"]?.stringValue ?? "?", result, raw))
        }
        return answers
    }
}
