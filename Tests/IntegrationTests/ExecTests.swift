import Foundation
import MicroRunnerProtocol
import MicroRunnerTestSupport
import Testing

/// exec through the static runner: process groups, timeouts, cancel, streaming, stdin, limits.
@Suite(.serialized) struct ExecTests {
    @Test func grandchildHoldingThePipeDoesNotDelayATimeout() throws {
        let marker = uniqueSleep(30)
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        r.sendCommand("t", "exec", timeout: 1, params: ["command": "sleep \(marker) | cat", "capture_out": true])
        let answer = try r.answer(timeout: 10)
        #expect(answer.type == .error)
        #expect(answer.code == "TIMEOUT")
        #expect(answer.commandID == "t")
        #expect(answer["retryable"] == .bool(true))
        #expect(answer["details"]?["stdout"] != nil)
        // The Go original waits for the pipe's writer (30 s); here the group was killed at the limit: when the
        // answer comes, the 30 s sleep is already gone (its state, not a clock, says it was stopped).
        #expect(!processRunning(withMarker: "sleep \(marker)"))
    }

    @Test func timeoutKeepsPartialOutput() throws {
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        r.sendCommand(
            "t",
            "exec",
            timeout: 1,
            params: ["command": "echo before; echo oops >&2; sleep 20", "capture_out": true, "capture_err": true]
        )
        let answer = try r.answer(timeout: 10)
        #expect(answer.code == "TIMEOUT")
        #expect(answer["details"]?["stdout"] == .string("before\n"))
        #expect(answer["details"]?["stderr"] == .string("oops\n"))
    }

    @Test func termIgnoringChildIsKilled() throws {
        let marker = uniqueSleep(31)
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        r.sendCommand("t", "exec", timeout: 1, params: ["command": "trap '' TERM; sleep \(marker)"])
        let answer = try r.answer(timeout: 10)
        #expect(answer.code == "TIMEOUT")
        #expect(!processRunning(withMarker: "sleep \(marker)"))
    }

    @Test func cancelStopsTheRunningCommandsGroup() throws {
        let marker = uniqueSleep(32)
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        r.sendCommand("c", "exec", timeout: 60, params: ["command": "sleep \(marker) & sleep \(marker); wait"])
        Thread.sleep(forTimeInterval: 0.3)
        #expect(processRunning(withMarker: "sleep \(marker)"))
        r.send(#"{"type":"CANCEL","data":{"command_id":"c"}}"#)
        let answer = try r.answer(timeout: 10)
        #expect(answer.type == .error)
        #expect(answer.code == "CANCELLED")
        #expect(answer.commandID == "c")
        #expect(!processRunning(withMarker: "sleep \(marker)"))
        r.sendCommand("next", "exec", params: ["command": "true"])
        #expect(try r.answer().type == .done)
    }

    @Test func cancelOfAQueuedCommandSkipsIt() throws {
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        r.sendCommand("first", "exec", params: ["command": "sleep 0.5"])
        r.sendCommand("second", "exec", params: ["command": "touch /tmp/mr-should-not-exist-\(getpid())"])
        r.send(#"{"type":"CANCEL","data":{"command_id":"second"}}"#)
        #expect(try r.answer().commandID == "first")
        let second = try r.answer()
        #expect(second.commandID == "second")
        #expect(second.code == "CANCELLED")
        #expect(!FileManager.default.fileExists(atPath: "/tmp/mr-should-not-exist-\(getpid())"))
    }

    @Test func linesStreamWhileTheCommandRuns() throws {
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        r.sendCommand(
            "s",
            "exec",
            params: [
                "command": "echo one; echo two >&2; sleep 1; echo three", "stream_lines": true, "capture_out": true,
            ]
        )
        var events: [Received] = []
        var done: Received?
        while done == nil {
            let line = try r.next()
            if line.type == .event { events.append(line) } else { done = line }
        }
        let messages = events.map { $0.message }
        #expect(messages == ["one", "two", "three"] || messages == ["two", "one", "three"])
        #expect(events.first { $0.message == "two" }?["metadata"]?["stream"] == .string("stderr"))
        #expect(events.first { $0.message == "one" }?["metadata"]?["stream"] == .string("stdout"))
        // "one" came out a second before the command ended: streamed, not batched at the end.
        let first = try #require(events.first)
        #expect(done!.at.timeIntervalSince(first.at) > 0.5)
        #expect(done!.result["stdout"] == .string("one\nthree\n"))
    }

    @Test func argvFormRunsWithoutAShellAndFindsThePATH() throws {
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        r.sendCommand(
            "a",
            "exec",
            params: ["command": "printf", "args": ["%s|", "$HOME", "a b", ";ls"], "capture_out": true]
        )
        #expect(try r.answer().result["stdout"] == .string("$HOME|a b|;ls|"))
        r.sendCommand("m", "exec", params: ["command": "no-such-tool-xyz", "args": ["x"]])
        let missing = try r.answer()
        #expect(missing.type == .error)
        #expect(missing.code == "NOT_FOUND")
        #expect(missing.message.contains("no-such-tool-xyz"))
        r.sendCommand("w", "exec", params: ["command": "pwd", "work_dir": "/nonexistent-dir-xyz"])
        let badDir = try r.answer()
        #expect(badDir.code == "NOT_FOUND")
        #expect(badDir.message.contains("/nonexistent-dir-xyz"))
        r.sendCommand("shell127", "exec", params: ["command": "no-such-tool-xyz"])
        #expect(try r.answer().result["exit_code"]?.intValue == 127)  // through a shell: a result, not an error
    }

    @Test func envWorkDirStdinAndExitStatus() throws {
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        r.sendCommand(
            "e",
            "exec",
            params: [
                "command": "echo \"$GREETING $(pwd)\"; cat; exit 3", "env": ["GREETING": "hi"], "work_dir": "/tmp",
                "stdin": "from stdin\n", "capture_out": true,
            ]
        )
        let done = try r.answer()
        #expect(done.result["stdout"] == .string("hi /tmp\nfrom stdin\n"))
        #expect(done.result["exit_code"]?.intValue == 3)
    }

    @Test func childThatIgnoresItsLargeStdinDoesNotHurtTheRunner() throws {
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        r.sendCommand("i", "exec", params: ["command": "true", "stdin": String(repeating: "x", count: 1 << 20)])
        #expect(try r.answer().result["exit_code"]?.intValue == 0)
    }

    @Test func signalDeathReportsMinusOneAndTheSignal() throws {
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        r.sendCommand("k", "exec", params: ["command": "kill -KILL $$"])
        let done = try r.answer()
        #expect(done.result["exit_code"]?.intValue == -1)
        #expect(done.result["signal"] == .string("SIGKILL"))
    }

    @Test func endlessOutputIsBoundedAndFlagged() throws {
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        r.sendCommand(
            "y",
            "exec",
            timeout: 60,
            params: [
                "command": "head -c 50000000 /dev/zero | tr '\\0' y", "capture_out": true, "max_output_bytes": 1000,
            ]
        )
        let done = try r.answer(timeout: 60)
        #expect(done.result["stdout"]?.stringValue?.utf8.count == 1000)
        #expect(done.result["stdout_truncated"] == .bool(true))
        #expect(done.result["exit_code"]?.intValue == 0)
    }

    @Test func answerLineStaysUnderTenMebibytesEvenForControlCharacters() throws {
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        // 8 MiB of \x01 escapes to 48 MiB; the runner must cut it to fit one Go-readable line.
        r.sendCommand(
            "z",
            "exec",
            timeout: 60,
            params: [
                "command": "head -c 8388608 /dev/zero | tr '\\0' '\\001'", "capture_out": true,
                "max_output_bytes": 8 << 20,
            ]
        )
        let done = try r.answer(timeout: 60)
        #expect(done.result["stdout_truncated"] == .bool(true))
        let longest = r.allRawLines.map { $0.utf8.count }.max() ?? 0
        #expect(longest < 10 << 20, "longest line \(longest) bytes")
    }

    @Test func captureOffDiscardsOutput() throws {
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        r.sendCommand("d", "exec", params: ["command": "echo out; echo err >&2", "capture_out": false])
        let done = try r.answer()
        #expect(done.result["stdout"] == .string(""))
        #expect(done.result["stderr"] == .string(""))
    }

    @Test func backgroundGrandchildDoesNotHoldTheAnswer() throws {
        let marker = uniqueSleep(33)
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        let sent = Date()
        r.sendCommand(
            "bg",
            "exec",
            timeout: 30,
            params: ["command": "sleep \(marker) & echo started", "capture_out": true]
        )
        let done = try r.answer(timeout: 20)
        #expect(done.type == .done)
        #expect(done.result["stdout"] == .string("started\n"))
        #expect(
            done.at.timeIntervalSince(sent) < 5,
            "the leader exited; the answer must not wait for the background job"
        )
        // A background job the user started is left running (as with ssh), not killed.
        #expect(processRunning(withMarker: "sleep \(marker)"))
        _ = try? Process.run(URL(fileURLWithPath: "/usr/bin/pkill"), arguments: ["-f", "sleep \(marker)"])
    }

    @Test func sudoPasswordNeverAppearsInOutput() throws {
        // As root, use_sudo runs the command directly; the password must still never be echoed anywhere.
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        let secret = "s3cr3t-\(Int.random(in: 1000...9999))"
        r.sendCommand(
            "p",
            "exec",
            params: [
                "command": "id -u", "use_sudo": true, "sudo_password": secret, "capture_out": true, "capture_err": true,
            ]
        )
        let done = try r.answer()
        #expect(done.type == .done)
        #expect(!r.allRawLines.contains { $0.contains(secret) })
    }
}
