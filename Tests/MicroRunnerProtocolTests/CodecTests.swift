import MicroRunnerProtocol
import Testing

@Suite struct JSONReaderTests {
    @Test func depthLimitStopsDeepNesting() {
        let deep = Array(repeating: UInt8(ascii: "["), count: 100_000)
        #expect(throws: JSONParseError.self) { try JSONReader(maxDepth: 128).parse(deep) }
        let ok = Array(repeating: UInt8(ascii: "["), count: 10) + Array(repeating: UInt8(ascii: "]"), count: 10)
        #expect(throws: Never.self) { try JSONReader(maxDepth: 10).parse(ok) }
        #expect(throws: JSONParseError.self) { try JSONReader(maxDepth: 9).parse(ok) }
    }

    @Test(arguments: [
        (#""\u00e9\ud83d\ude00""#, "é😀"),
        (#""a\nb\t\"\\\/""#, "a\nb\t\"\\/"),
        (#""\ud800""#, "\u{FFFD}"),  // lone surrogate: replaced, as Go does
        (#""\udc00x""#, "\u{FFFD}x"),
    ])
    func stringEscapes(_ input: String, _ expected: String) throws {
        #expect(try JSONReader().parse(Array(input.utf8)) == .string(expected))
    }

    @Test func duplicateKeyLastWins() throws {
        let v = try JSONReader().parse(Array(#"{"a":1,"a":2}"#.utf8))
        #expect(v["a"] == .number("2"))
    }

    @Test func capturesRawParamsExactly() throws {
        let line = Array(#"{"type":"CMD","data":{"params": {"b" : [1, 2.50],"a":"x"} ,"id":"1"}}"#.utf8)
        let (_, range) = try JSONReader().parse(line, capturing: ["data", "params"])
        let r = try #require(range)
        #expect(String(decoding: line[r], as: UTF8.self) == #"{"b" : [1, 2.50],"a":"x"}"#)
    }

    @Test func writerEscapesForOneLine() {
        let s = JSONValue.string("a\"b\\c\n\r\t\u{1}\u{2028}é")
        #expect(String(decoding: JSONWriter.serialize(s), as: UTF8.self) == #""a\"b\\c\n\r\t\u0001\u2028é""#)
    }

    @Test func prefixFittingEscapedNeverSplitsACharacter() {
        let bytes = Array("ab\"é😀".utf8)  // escaped: a b \" é(2) 😀(4)
        #expect(JSONWriter.prefixLength(of: bytes, fittingEscaped: 4) == 3)
        let cut = JSONWriter.prefixLength(of: bytes, fittingEscaped: 7)
        #expect(String(validating: bytes[0..<cut], as: UTF8.self) != nil)
        #expect(JSONWriter.escapedLength(of: bytes[0..<cut]) <= 7)
        #expect(JSONWriter.prefixLength(of: bytes, fittingEscaped: 100) == bytes.count)
    }

    /// The eight-bytes-at-a-time scans agree with a byte-by-byte reference wherever a special byte falls
    /// (every position of a word, word boundaries, the tail) and whatever the budget.
    @Test(arguments: 0..<4)
    func wordScansAgreeWithTheByteByByteReference(_ seed: Int) throws {
        let alphabet: [String] = [
            "a", "Z", "~", "\"", "\\", "\n", "\t", "\u{1}", "\u{1F}", "é", "😀", "\u{2028}", "\u{2029}", "\u{2000}", "€",
        ]
        var rng = SeededGenerator(seed: UInt64(seed))
        for _ in 0..<300 {
            let length = Int.random(in: 0..<80, using: &rng)
            let text = (0..<length).map { _ in alphabet.randomElement(using: &rng)! }.joined()
            let bytes = Array(text.utf8)
            let written = String(decoding: JSONWriter.serialize(.string(text)), as: UTF8.self)
            #expect(written == "\"" + Self.referenceEscape(text) + "\"", "\(text.debugDescription)")
            #expect(try JSONReader().parse(Array(written.utf8)) == .string(text))
            for budget in [0, 1, 5, 7, 8, 9, 16, 31, 64, 200] {
                #expect(
                    JSONWriter.prefixLength(of: bytes, fittingEscaped: budget)
                        == Self.referencePrefix(bytes, budget),
                    "\(text.debugDescription) budget \(budget)"
                )
            }
        }
    }

    /// Long strings (100-3000 pieces) inside an object, after and before other members: the escaping of a
    /// streamed batch or a file's text, checked against the reference.
    @Test(arguments: 0..<3)
    func longStringsAreWrittenAsShortOnesAre(_ seed: Int) throws {
        let alphabet: [String] = [
            "a", "Z", "0123456789", "\"", "\\", "\n", "\t", "\u{1}", "é", "😀", "\u{2028}", "\u{2029}", "€",
        ]
        var rng = SeededGenerator(seed: UInt64(seed) + 100)
        for _ in 0..<40 {
            let length = Int.random(in: 100..<3000, using: &rng)
            let text = (0..<length).map { _ in alphabet.randomElement(using: &rng)! }.joined()
            let prefix = String(repeating: "p", count: Int.random(in: 0..<40, using: &rng))
            let line: JSONValue = .object(
                JSONObject([("a", .string(prefix)), ("m", .string(text)), ("z", .number("1"))])
            )
            let written = String(decoding: JSONWriter.serialize(line), as: UTF8.self)
            let expected = #"{"a":""# + prefix + #"","m":""# + Self.referenceEscape(text) + #"","z":1}"#
            #expect(written == expected, "\(text.count) characters")
            #expect(try JSONReader().parse(Array(written.utf8)) == line)
        }
    }

    static func referenceEscape(_ s: String) -> String {
        var out = ""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{2028}": out += "\\u2028"
            case "\u{2029}": out += "\\u2029"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    static func referencePrefix(_ bytes: [UInt8], _ budget: Int) -> Int {
        if bytes.count * 6 <= budget { return bytes.count }
        var n = 0
        var i = 0
        while i < bytes.count {
            let cost: Int
            switch bytes[i] {
            case 0x22, 0x5C, 0x0A, 0x0D, 0x09: cost = 2
            case 0x00..<0x20, 0xE2: cost = 6
            default: cost = 1
            }
            if n + cost > budget { break }
            n += cost
            i += 1
        }
        while i > 0 && i < bytes.count && (bytes[i] & 0xC0) == 0x80 { i -= 1 }
        return i
    }
}

/// SplitMix64: the same sequence on every run, so a failure names its seed and replays.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite struct WireCodingTests {
    @Test func commandDecodesWithGoDefaults() throws {
        let json = #"{"id":"c1","type":"exec","timeout":30,"params":{"command":"ls","args":null,"env":{"A":"1"}}}"#
        let cmd = try WireDecoder().decode(CommandMessage.self, from: Array(json.utf8))
        #expect(cmd.id == "c1")
        #expect(cmd.type == .exec)
        #expect(cmd.timeout == 30)
        #expect(cmd.dryRun == false)
        let exec = try WireDecoder().decode(ExecParams.self, from: cmd.params)
        #expect(exec.command == "ls")
        #expect(exec.args == [])
        #expect(exec.env == ["A": "1"])
        #expect(exec.captureOut == false)
    }

    @Test(arguments: [
        (#"{"id":"c","type":"exec","timeout":"30","params":{}}"#, "timeout"),
        (#"{"id":"c","type":"exec","timeout":1.5,"params":{}}"#, "timeout"),
        (#"{"id":7,"type":"exec","timeout":1,"params":{}}"#, "id"),
    ])
    func typeErrorsNameTheField(_ json: String, _ field: String) {
        do {
            _ = try WireDecoder().decode(CommandMessage.self, from: Array(json.utf8))
            Issue.record("decoded a bad command")
        } catch {
            #expect(error.description.hasPrefix(field))
        }
    }

    @Test(arguments: [
        (#"{"id":"","type":"exec","timeout":1,"params":{}}"#, "id"),
        (#"{"id":"c","type":"exec","timeout":0,"params":{}}"#, "timeout"),
        (#"{"id":"c","type":"exec","timeout":5,"params":[]}"#, "params"),
        (#"{"id":"c","type":"exec","timeout":5}"#, "params"),
    ])
    func validationNamesTheField(_ json: String, _ field: String) throws {
        let cmd = try WireDecoder().decode(CommandMessage.self, from: Array(json.utf8))
        do {
            try cmd.validate()
            Issue.record("validated a bad command")
        } catch {
            #expect(error.code == .invalidCommand)
            #expect(error.message.contains(field))
        }
    }

    /// `stream_batch` goes on the wire only when asked for, so a CMD without it is byte for byte what it was;
    /// an EVENT's lines split on `\n` only (a `\r` or an empty line is kept).
    @Test func streamBatchIsWrittenOnlyWhenTrueAndLinesSplit() throws {
        let plain = String(decoding: WireEncoder().encode(ExecParams(command: "x", streamLines: true)), as: UTF8.self)
        #expect(!plain.contains("stream_batch"))
        let batched = WireEncoder().encode(ExecParams(command: "x", streamLines: true, streamBatch: true))
        #expect(String(decoding: batched, as: UTF8.self).hasSuffix(#","stream_batch":true}"#))
        #expect(try WireDecoder().decode(ExecParams.self, from: batched).streamBatch)
        let event = { (message: String) in EventMessage(commandID: "c", level: .info, message: message) }
        #expect(event("").lines == [""])
        #expect(event("one").lines == ["one"])
        #expect(event("a\r\n\nb\u{e9}\n").lines == ["a\r", "", "b\u{e9}", ""])
    }

    @Test func unknownWireNamesStillDecode() throws {
        let e = try WireDecoder().decode(ErrorMessage.self, from: Array(#"{"code":"FUTURE_CODE","message":"m"}"#.utf8))
        #expect(e.code == ErrorCode(rawValue: "FUTURE_CODE"))
        #expect(e.retryable == false)
        #expect(e.commandID == nil)
    }

    @Test func messagesRoundTrip() throws {
        let done = DoneMessage(commandID: "c", result: .object(JSONObject([("x", .bool(true))])), duration: 0.25)
        let bytes = WireEncoder().encode(done)
        #expect(String(decoding: bytes, as: UTF8.self) == #"{"command_id":"c","result":{"x":true},"duration":0.25}"#)
        #expect(try WireDecoder().decode(DoneMessage.self, from: bytes) == done)
        let ready = ReadyMessage(
            version: "1",
            platform: "linux",
            arch: "amd64",
            pid: 1,
            capabilities: ["b": true, "a": false],
            metadata: ["ttl": "10m0s"]
        )
        let text = String(decoding: WireEncoder().encode(ready), as: UTF8.self)
        #expect(text.contains(#""capabilities":{"a":false,"b":true}"#))  // sorted, like Go
        #expect(try WireDecoder().decode(ReadyMessage.self, from: Array(text.utf8)) == ready)
    }

    @Test func envelopeParsesAndKeepsParamsBytes() throws {
        let line =
            Array(#"{"type":"CMD","timestamp":"2026-01-02T03:04:05.5Z","data":{"id":"a","params":{"x" :1}}}"#.utf8) + [
                0x0D
            ]
        let env = try Envelope.parse(line: line)
        #expect(env.type == .command)
        #expect(env.timestamp == "2026-01-02T03:04:05.5Z")
        #expect(env.rawParams == Array(#"{"x" :1}"#.utf8))
    }

    @Test(arguments: [
        ("[1]", "object envelope"),
        (#"{"data":{}}"#, "no \"type\""),
        (#"{"type":5}"#, "expected a string"),
        (#"{"type":"CMD","timestamp":"yesterday"}"#, "RFC 3339"),
        ("{", "not valid JSON"),
    ])
    func badEnvelopesSayWhy(_ text: String, _ expected: String) {
        do {
            _ = try Envelope.parse(line: Array(text.utf8))
            Issue.record("parsed a bad envelope")
        } catch {
            #expect(error.code == .invalidCommand)
            #expect(error.message.contains(expected), "\(error.message)")
        }
    }
}

@Suite struct TimeFormatTests {
    @Test(arguments: [
        (0, 0, "1970-01-01T00:00:00Z"),
        (1_795_727_915, 123_000_000, "2026-11-26T21:18:35.123Z"),
        (951_782_400, 1, "2000-02-29T00:00:00.000000001Z"),
    ])
    func formats(_ s: Int, _ ns: Int, _ expected: String) {
        #expect(Timestamp.format(seconds: s, nanoseconds: ns) == expected)
        let parsed = Timestamp.parse(expected)
        #expect(parsed?.seconds == s)
        #expect(parsed?.nanoseconds == ns)
    }

    /// 64-bit seconds, as a 32-bit runner's `time_t` gives them: past 2038-01-19 and before 1901.
    @Test func formatsSecondsBeyondA32BitInt() {
        #expect(Timestamp.format(seconds: Int64(Int32.max) + 1, nanoseconds: 0) == "2038-01-19T03:14:08Z")
        #expect(Timestamp.format(seconds: Int64(1) << 32, nanoseconds: 5) == "2106-02-07T06:28:16.000000005Z")
        #expect(Timestamp.format(seconds: Int64(Int32.min) - 1, nanoseconds: 0) == "1901-12-13T20:45:51Z")
    }

    @Test func parsesOffsetsAndRejectsJunk() {
        #expect(Timestamp.parse("2026-11-26T22:18:35+01:00")?.seconds == 1_795_727_915)
        for bad in ["", "2026-11-26", "2026-13-01T00:00:00Z", "2026-11-26T21:18:35", "2026-11-26T21:18:35.Z"] {
            #expect(Timestamp.parse(bad) == nil, "\(bad)")
        }
    }

    @Test(arguments: [(600.0, "10m0s"), (2, "2s"), (3723, "1h2m3s"), (1.5, "1.5s"), (0.25, "250ms")])
    func goDurations(_ seconds: Double, _ text: String) {
        #expect(GoDuration.format(seconds: seconds) == text)
        #expect(GoDuration.parse(text) == seconds)
    }

    @Test func durationParsing() {
        #expect(GoDuration.parse("1h30m") == 5400)
        #expect(GoDuration.parse("90") == 90)
        for bad in ["", "10x", "-5s", "m", "0s"] { #expect(GoDuration.parse(bad) == nil, "\(bad)") }
    }
}

@Suite struct LineFramerTests {
    @Test func splitsAcrossChunksAndKeepsCR() {
        var f = LineFramer(maxLineBytes: 100)
        #expect(f.append(Array("ab".utf8)) == [])
        #expect(f.append(Array("c\r\nd\ne".utf8)) == [.line(Array("abc\r".utf8)), .line(Array("d".utf8))])
        #expect(f.finish() == .line(Array("e".utf8)))
        #expect(f.finish() == nil)
    }

    @Test func oversizedLineIsDroppedAndCountedThenFramingResumes() {
        var f = LineFramer(maxLineBytes: 10)
        var frames = f.append(Array(repeating: UInt8(ascii: "x"), count: 7))
        frames += f.append(Array(repeating: UInt8(ascii: "x"), count: 20_000))
        frames += f.append(Array("xx\nok\n".utf8))
        #expect(frames == [.oversized(byteCount: 20_009), .line(Array("ok".utf8))])
    }

    @Test func lineOfExactlyTheLimitIsAccepted() {
        var f = LineFramer(maxLineBytes: 3)
        #expect(f.append(Array("abc\nabcd\n".utf8)) == [.line(Array("abc".utf8)), .oversized(byteCount: 4)])
    }
}

@Suite struct NULScanTests {
    /// The word-at-a-time scan finds a NUL wherever it is, and nothing in text without one (including bytes
    /// 0x80-0xFF and 0x01, the edge cases of the has-zero-byte test).
    @Test func findsNULAtEveryOffset() throws {
        for length in [0, 1, 7, 8, 9, 15, 16, 17, 100] {
            let clean = String(repeating: "\u{1}é\u{7F}", count: length)
            #expect(CommandMessage.firstNUL(in: .string(clean), path: "p") == nil)
            for at in stride(from: 0, to: clean.utf8.count + 1, by: 1) {
                var bytes = Array(clean.utf8)
                bytes.insert(0, at: at)
                let s = String(decoding: bytes, as: UTF8.self)
                #expect(CommandMessage.firstNUL(in: .string(s), path: "p") == "p")
            }
        }
    }
}
