import Foundation
import MicroRunnerProtocol
import MicroRunnerTestSupport
import Testing

/// The built static runner, over pipes: the session a person would type, and the lifecycle rules.
@Suite(.serialized) struct LifecycleTests {
    @Test func handTypedSession() throws {
        let r = try RunnerProcess()
        let ready = try r.next()
        #expect(ready.type == .ready)
        #expect(ready["platform"] == .string("linux"))
        #expect(ready["pid"]?.intValue == Int(r.process.processIdentifier))
        #expect(ready["capabilities"]?["exec"] == .bool(true))
        #expect(ready["metadata"]?["ttl"] == .string("10m0s"))
        #expect(ready["metadata"]?["protocol"] == .string("1"))
        #expect(Int(ready["metadata"]?["max_line_bytes"]?.stringValue ?? "") ?? 0 >= 10 << 20)

        r.sendCommand("c1", "exec", params: ["command": "echo hello", "capture_out": true])
        let done = try r.answer()
        #expect(done.type == .done)
        #expect(done.commandID == "c1")
        #expect(done.result["stdout"] == .string("hello\n"))
        #expect(done.result["exit_code"]?.intValue == 0)

        r.send("this is not json")
        let bad = try r.next()
        #expect(bad.type == .error)
        #expect(bad.code == "INVALID_CMD")
        #expect(bad.commandID == nil)

        r.send(#"{"type":"HELLO","data":{}}"#)
        let unknown = try r.next()
        #expect(unknown.type == .error)
        #expect(unknown.code == "INVALID_CMD")
        #expect(unknown.message.contains("HELLO"))

        r.sendCommand("c2", "rm.everything", params: [:])
        let unsupported = try r.next()
        #expect(unsupported.type == .error)
        #expect(unsupported.code == "UNSUPPORTED")
        #expect(unsupported.commandID == "c2")

        r.sendCommand("c3", "exec", timeout: 0, params: ["command": "true"])
        let invalid = try r.next()
        #expect(invalid.code == "INVALID_CMD")
        #expect(invalid.commandID == "c3")
        #expect(invalid.message.contains("timeout"))

        r.sendCommand("c4", "exec", params: ["command": "echo still alive", "capture_out": true])
        #expect(try r.answer().result["stdout"] == .string("still alive\n"))

        r.closeStdin()
        let exit = try r.next()
        #expect(exit.type == .exit)
        #expect(exit["reason"] == .string("stdin_closed"))
        #expect(exit["self_deleted"] == .bool(true))
        #expect(exit["commands_total"]?.intValue == 4)
        #expect(try r.waitForExit() == 0)
        #expect(!FileManager.default.fileExists(atPath: r.binary))
        // Every line the runner wrote is a valid envelope.
        #expect(r.allRawLines.allSatisfy { (try? Envelope.parse(line: Array($0.utf8))) != nil })
    }

    /// Round 2: the self-delete removed whatever was at the runner's path at exit, so an in-place upgrade with
    /// mv while an old runner ran lost the new binary. Only the file this runner started from is removed.
    @Test func aBinaryMovedOverTheRunnerIsNotDeleted() throws {
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        let upgrade = r.binary + ".new"
        try "#!/bin/sh\necho the new version\n".write(toFile: upgrade, atomically: false, encoding: .utf8)
        #expect(rename(upgrade, r.binary) == 0)
        r.closeStdin()
        #expect(try r.next(.exit)["self_deleted"] == .bool(false))
        _ = try r.waitForExit()
        #expect((try? String(contentsOfFile: r.binary, encoding: .utf8)) == "#!/bin/sh\necho the new version\n")
        #expect(r.stderrText().contains("no longer this runner's executable"), "\(r.stderrText())")
        unlink(r.binary)
    }

    @Test func keepFlagLeavesTheBinary() throws {
        let r = try RunnerProcess(arguments: ["--keep"])
        _ = try r.next(.ready)
        r.closeStdin()
        #expect(try r.next(.exit)["self_deleted"] == .bool(false))
        _ = try r.waitForExit()
        #expect(FileManager.default.fileExists(atPath: r.binary))
    }

    @Test func ttlExpiresWhileIdle() throws {
        let r = try RunnerProcess(arguments: ["--ttl", "2s"])
        #expect(try r.next(.ready)["metadata"]?["ttl"] == .string("2s"))
        // Nothing is sent: the next line can only be the TTL's EXIT. 30 s, not 10: in a fresh-clone run the whole
        // machine once stalled ~12 s (a dozen suites finished at the same instant) and this test failed on it.
        let exit = try r.next(timeout: 30)
        #expect(exit.type == .exit)
        #expect(exit["reason"] == .string("ttl_expired"))
        _ = try r.waitForExit()
        #expect(!FileManager.default.fileExists(atPath: r.binary))
    }

    @Test func ttlStopsARunningCommand() throws {
        let marker = uniqueSleep(40)
        let r = try RunnerProcess(arguments: ["--ttl", "2s"])
        _ = try r.next(.ready)
        r.sendCommand("long", "exec", timeout: 60, params: ["command": "sleep \(marker)"])
        let answer = try r.answer(timeout: 10)
        #expect(answer.type == .error)
        #expect(answer.code == "TIMEOUT")
        #expect(answer.commandID == "long")
        #expect(answer.message.contains("TTL"))
        #expect(try r.next(.exit)["reason"] == .string("ttl_expired"))
        _ = try r.waitForExit()
        #expect(!processRunning(withMarker: "sleep \(marker)"))
    }

    @Test func versionFlag() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: BuiltRunner.path)
        p.arguments = ["--version"]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        p.waitUntilExit()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(p.terminationStatus == 0)
        #expect(text.hasPrefix("micro-runner "))
    }

    @Test func badFlagExitsWithUsageAndNoReady() throws {
        let r = try RunnerProcess(arguments: ["--frobnicate"])
        #expect(try r.waitForExit() == 2)
        #expect(r.allRawLines.isEmpty)
        #expect(r.stderrText().contains("unknown option"))
    }

    @Test func sigtermStopsTheCommandAndSaysExit() throws {
        let marker = uniqueSleep(41)
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        r.sendCommand("s", "exec", params: ["command": "sleep \(marker)"])
        Thread.sleep(forTimeInterval: 0.3)
        r.process.terminate()
        let answer = try r.answer()
        #expect(answer.code == "CANCELLED")
        #expect(answer.commandID == "s")
        let exit = try r.next(.exit)
        #expect(exit["reason"] == .string("error"))
        #expect(exit["exit_code"]?.intValue == 128 + Int(SIGTERM))
        _ = try r.waitForExit()
        #expect(!processRunning(withMarker: "sleep \(marker)"))
    }

    @Test func stdinClosedDuringACommandFinishesItFirst() throws {
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        r.sendCommand("a", "exec", params: ["command": "sleep 0.5; echo done", "capture_out": true])
        r.sendCommand("b", "exec", params: ["command": "echo queued", "capture_out": true])
        r.closeStdin()
        #expect(try r.answer().result["stdout"] == .string("done\n"))
        #expect(try r.answer().result["stdout"] == .string("queued\n"))
        #expect(try r.next(.exit)["reason"] == .string("stdin_closed"))
    }
}

/// Hostile and malformed input never ends the runner.
@Suite(.serialized) struct HostileInputTests {
    @Test func oversizedLineIsRejectedAndTheRunnerGoesOn() throws {
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        // 17 MiB with no newline until the end: over the 16 MiB default.
        var line = Array(#"{"type":"CMD","data":{"id":"big","type":"exec","timeout":5,"params":{"command":""#.utf8)
        line += [UInt8](repeating: UInt8(ascii: "x"), count: 17 << 20)
        line += Array(#""}}}"#.utf8) + [0x0A]
        r.send(bytes: line)
        let error = try r.next(timeout: 30)
        #expect(error.type == .error)
        #expect(error.code == "INVALID_CMD")
        #expect(error.message.contains("exceeds"))
        r.sendCommand("after", "exec", params: ["command": "echo ok", "capture_out": true])
        #expect(try r.answer().result["stdout"] == .string("ok\n"))
        r.closeStdin()
        #expect(try r.waitForExit() == 0)
    }

    @Test func tenMebibyteLineIsAccepted() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mr-10m-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let target = dir.appendingPathComponent("big.txt").path
        let content = String(repeating: "0123456789abcdef", count: (10 << 20) / 16)
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        r.sendCommand("w", "file.write", params: ["path": target, "content": content, "create": true])
        let done = try r.answer(timeout: 30)
        #expect(done.type == .done, "\(done.data)")
        #expect(done.result["bytes_written"]?.intValue == 10 << 20)
        #expect((try? FileManager.default.attributesOfItem(atPath: target)[.size] as? Int) == 10 << 20)
    }

    @Test(arguments: [
        "{", "[]", "null", "\u{7F}\u{1}garbage", #"{"type":"CMD"}"#, #"{"type":"CMD","data":"x"}"#,
        #"{"type":"CMD","data":{"id":"x","type":"exec","timeout":5,"params":{"command":5}}}"#,
        #"{"type":"CMD","data":{"id":"x","type":"exec","timeout":5,"params":{"args":"notalist","command":"ls"}}}"#,
        #"{"type":"CMD","data":{"id":"x","type":"file.write","timeout":5,"params":{"path":"relative"}}}"#,
        #"{"type":"CMD","data":{"id":"x","type":"file.read","timeout":5,"params":{"path":"/nonexistent/x"}}}"#,
        #"{"type":"CANCEL","data":{}}"#, #"{"type":"DONE","data":{}}"#,
        "{\"type\":\"CMD\",\"data\":{\"id\":\"\u{FFFF}\",\"type\":\"exec\",\"timeout\":5,\"params\":{\"command\":\"\"}}}",
    ])
    func badLineGetsAnErrorAndTheRunnerGoesOn(_ line: String) throws {
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        r.send(line)
        let error = try r.next()
        #expect(error.type == .error, "\(error.data)")
        #expect(!error.message.isEmpty)
        r.sendCommand("ok", "exec", params: ["command": "echo alive", "capture_out": true])
        let done = try r.answer()
        #expect(done.type == .done)
        #expect(done.result["stdout"] == .string("alive\n"))
        r.closeStdin()
        #expect(try r.waitForExit() == 0)
    }

    @Test func invalidUTF8AndBinaryJunkGetErrors() throws {
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        r.send(bytes: [0xFF, 0xFE, 0x00, 0x0A])
        r.send(bytes: Array(#"{"type":"CMD","data":{"id":"#.utf8) + [0x22, 0xC3, 0x28, 0x22] + Array("}}\n".utf8))
        #expect(try r.next().code == "INVALID_CMD")
        #expect(try r.next().code == "INVALID_CMD")
        r.sendCommand("ok", "exec", params: ["command": "true"])
        #expect(try r.answer().type == .done)
    }

    @Test func runIfSucceededChainsStopAtTheFirstFailureExactly() throws {
        let r = try RunnerProcess()
        let ready = try r.next(.ready)
        #expect(ready["metadata"]?["extensions"]?.stringValue?.contains("run_if_succeeded") == true)
        func cmd(_ id: String, _ command: String, after: String? = nil) -> String {
            let meta = after.map { #","metadata":{"run_if_succeeded":"\#($0)"}"# } ?? ""
            return
                #"{"type":"CMD","data":{"id":"\#(id)","type":"exec","timeout":5\#(meta),"params":{"command":"\#(command)","capture_out":true}}}"#
        }
        // All sent at once: the runner, not the client's timing, decides what runs.
        let batch = [
            cmd("a1", "echo one"), cmd("a2", "echo two", after: "a1"), cmd("b1", "exit 3", after: "a2"),
            cmd("b2", "echo never", after: "b1"), cmd("b3", "echo never", after: "b2"), cmd("c1", "echo independent"),
        ]
        r.send(batch.joined(separator: "\n"))
        let answers = try (0..<6).map { _ in try r.answer() }
        #expect(answers.map(\.commandID) == ["a1", "a2", "b1", "b2", "b3", "c1"])
        #expect(answers[1].result["stdout"] == .string("two\n"))
        #expect(answers[2].result["exit_code"]?.intValue == 3)
        #expect(answers[3].code == "CANCELLED")
        #expect(answers[3].message.contains("b1"))
        #expect(answers[4].code == "CANCELLED")
        #expect(answers[5].result["stdout"] == .string("independent\n"))
    }

    @Test func pipelinedCommandsAnswerInOrder() throws {
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        var batch = ""
        for i in 0..<50 {
            batch +=
                #"{"type":"CMD","data":{"id":"p\#(i)","type":"exec","timeout":5,"params":{"command":"echo","args":["\#(i)"],"capture_out":true}}}"#
                + "\n"
        }
        r.send(bytes: Array(batch.utf8))
        for i in 0..<50 {
            let a = try r.answer()
            #expect(a.commandID == "p\(i)")
            #expect(a.result["stdout"] == .string("\(i)\n"))
        }
    }
}
