import Foundation
import MicroRunnerAgent
import MicroRunnerHandlers
import MicroRunnerProtocol
import MicroRunnerSystem
import MicroRunnerTestSupport
import Testing

/// Answers with its params; `{"fail": CODE}` throws that error code; `{"sleep": true}` waits until it is
/// stopped (CANCEL, TTL, deadline) and says why.
final class ScriptedHandler: CommandHandler {
    let type: CommandType
    init(_ type: CommandType) { self.type = type }
    func isAvailable(on host: MicroRunnerHandlers.Host) -> Bool { type != .serviceReload }
    func run(_ context: CommandContext) throws(RunnerError) -> JSONValue {
        let params = context.command.params
        if let code = params["fail"]?.stringValue {
            throw RunnerError(ErrorCode(rawValue: code), "scripted failure", details: ["why": "asked"])
        }
        if params["sleep"] != nil {
            while context.cancellation.stopReason == nil && Monotonic.now() < context.deadline { usleep(2000) }
            if let reason = context.cancellation.stopReason { throw stopError(reason, what: "sleep") }
            throw RunnerError(.timeout, "sleep: deadline")
        }
        return .object(JSONObject([("echo", params), ("exit_code", params["exit_code"] ?? .number("0"))]))
    }
}

/// The whole agent in this process, over pipes: no root, no runner binary, no processes.
final class AgentHarness: @unchecked Sendable {
    let input: FileHandle
    private let output: FileHandle
    private var buffer: [UInt8] = []
    let done = DispatchSemaphore(value: 0)

    init(ttl: Double = 60, configure: (inout AgentConfiguration) -> Void = { _ in }) throws {
        // An agent still writing when a test has finished reading must get EPIPE, not kill the test process.
        guard TestProcess.ignoresSIGPIPE else { throw TestFailure("SIGPIPE is not ignored in the test process") }
        var inPipe: [Int32] = [0, 0]
        var outPipe: [Int32] = [0, 0]
        guard pipe(&inPipe) == 0, pipe(&outPipe) == 0 else { throw CocoaError(.fileWriteUnknown) }
        var config = AgentConfiguration(version: "test")
        config.inputFD = inPipe[0]
        config.outputFD = outPipe[1]
        config.keepBinary = true
        config.ttlSeconds = ttl
        config.handlers = CommandType.all.map { ScriptedHandler($0) }
        configure(&config)
        let agent = try Agent(configuration: config)
        input = FileHandle(fileDescriptor: inPipe[1], closeOnDealloc: true)
        output = FileHandle(fileDescriptor: outPipe[0], closeOnDealloc: true)
        let outFD = outPipe[1]
        let inFD = inPipe[0]
        Thread.detachNewThread { [done] in
            _ = agent.run()
            close(outFD)
            close(inFD)
            done.signal()
        }
    }

    func send(_ line: String) { try? input.write(contentsOf: Data((line + "\n").utf8)) }

    func cmd(_ id: String, _ params: String, type: String = "exec", extra: String = "") {
        send(#"{"type":"CMD","data":{"id":"\#(id)","type":"\#(type)","timeout":5,"params":\#(params)\#(extra)}}"#)
    }

    /// The next line the agent wrote, parsed; a failure, not a hang, when none comes within `timeout` seconds
    /// (a regression that stops the agent answering fails its test and lets the others run).
    func next(timeout: Double = 15) throws -> Envelope {
        let deadline = ContinuousClock.now + .seconds(timeout)
        while true {
            if let nl = buffer.firstIndex(of: 0x0A) {
                let line = Array(buffer[..<nl])
                buffer.removeSubrange(...nl)
                return try Envelope.parse(line: line)
            }
            var ready = pollfd(fd: output.fileDescriptor, events: Int16(POLLIN), revents: 0)
            let left = deadline - ContinuousClock.now
            let ms = Int32(
                clamping: left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000
            )
            if ms <= 0 || poll(&ready, 1, ms) == 0 {
                throw TestFailure("the in-process agent wrote no complete line within \(timeout) s")
            }
            let chunk = output.availableData
            if chunk.isEmpty { throw CocoaError(.fileReadUnknown) }
            buffer += chunk
        }
    }

    /// The next DONE or ERROR, within `timeout` seconds for each line.
    func answer(timeout: Double = 15) throws -> Envelope {
        while true {
            let e = try next(timeout: timeout)
            if e.type == .done || e.type == .error { return e }
        }
    }
}

@Suite struct InProcessAgentTests {
    @Test func aSilentAgentFailsTheHarnessInsteadOfHangingIt() throws {
        let h = try AgentHarness()
        #expect(try h.next().type == .ready)
        let start = ContinuousClock.now
        #expect(throws: TestFailure.self) { try h.next(timeout: 0.3) }
        #expect(ContinuousClock.now - start < .seconds(5))
    }

    @Test func readyThenAnswersInWireOrder() throws {
        let h = try AgentHarness()
        let ready = try h.next()
        #expect(ready.type == .ready)
        #expect(ready.data["capabilities"]?["service.reload"] == .bool(false))
        for i in 1...5 { h.cmd("c\(i)", #"{"n":\#(i)}"#) }
        for i in 1...5 {
            let a = try h.answer()
            #expect(a.data["command_id"] == .string("c\(i)"))
            #expect(a.data["result"]?["echo"]?["n"] == .number("\(i)"))
        }
        try h.input.close()
        let exit = try h.next()
        #expect(exit.type == .exit)
        #expect(exit.data["reason"] == .string("stdin_closed"))
        #expect(exit.data["commands_total"] == .number("5"))
    }

    @Test(arguments: [
        ("this is not json", "INVALID_CMD"), (#"{"type":"HELLO","data":{}}"#, "INVALID_CMD"),
        (#"{"type":"CMD","data":{"id":"x","type":"nope","timeout":5,"params":{}}}"#, "UNSUPPORTED"),
        (#"{"type":"CMD","data":{"id":"x","type":"service.reload","timeout":5,"params":{}}}"#, "UNSUPPORTED"),
        (#"{"type":"CMD","data":{"id":"x","type":"exec","timeout":0,"params":{}}}"#, "INVALID_CMD"),
        (#"{"type":"CMD","data":{"id":"x","type":"exec","timeout":5,"params":[]}}"#, "INVALID_CMD"),
        (#"{"type":"CMD","data":{"id":"x","type":"exec","timeout":5,"params":{"fail":"NOT_FOUND"}}}"#, "NOT_FOUND"),
    ])
    func badLinesAnswerErrorsAndTheAgentGoesOn(_ line: String, _ code: String) throws {
        let h = try AgentHarness()
        _ = try h.next()
        h.send(line)
        let error = try h.answer()
        #expect(error.type == .error)
        #expect(error.data["code"] == .string(code))
        h.cmd("after", "{}")
        #expect(try h.answer().type == .done)
    }

    @Test func cancelStopsTheRunningCommandAndDropsAQueuedOne() throws {
        let h = try AgentHarness()
        _ = try h.next()
        h.cmd("slow", #"{"sleep":true}"#)
        h.cmd("queued", "{}")
        h.send(#"{"type":"CANCEL","data":{"command_id":"queued"}}"#)
        h.send(#"{"type":"CANCEL","data":{"command_id":"slow"}}"#)
        let first = try h.answer()
        #expect(first.data["command_id"] == .string("slow"))
        #expect(first.data["code"] == .string("CANCELLED"))
        let second = try h.answer()
        #expect(second.data["command_id"] == .string("queued"))
        #expect(second.data["code"] == .string("CANCELLED"), "a queued command is dropped without running")
    }

    @Test func runIfSucceededSkipsAfterAFailure() throws {
        let h = try AgentHarness()
        _ = try h.next()
        h.cmd("a", #"{"exit_code":3}"#)
        h.cmd("b", "{}", extra: #","metadata":{"run_if_succeeded":"a"}"#)
        h.cmd("c", "{}", extra: #","metadata":{"run_if_succeeded":"b"}"#)
        #expect(try h.answer().type == .done)
        for id in ["b", "c"] {
            let a = try h.answer()
            #expect(a.data["command_id"] == .string(id))
            #expect(a.data["code"] == .string("CANCELLED"))
        }
    }

    @Test func ttlEndsAnIdleAgentAndStopsABusyOne() throws {
        let idle = try AgentHarness(ttl: 0.3)
        _ = try idle.next()
        let exit = try idle.next()
        #expect(exit.type == .exit)
        #expect(exit.data["reason"] == .string("ttl_expired"))
        #expect(exit.data["exit_code"] == .number("124"))

        let busy = try AgentHarness(ttl: 0.3)
        _ = try busy.next()
        busy.cmd("long", #"{"sleep":true}"#)
        let stopped = try busy.answer()
        #expect(stopped.data["code"] == .string("TIMEOUT"))
        #expect(try busy.next().data["reason"] == .string("ttl_expired"))
    }

    @Test func errorsKeepTheirDetailsAndRetryability() throws {
        let h = try AgentHarness()
        _ = try h.next()
        h.cmd("e", #"{"fail":"CONFLICT"}"#)
        let e = try h.answer()
        #expect(e.data["code"] == .string("CONFLICT"))
        #expect(e.data["message"] == .string("scripted failure"))
        #expect(e.data["details"]?["why"] == .string("asked"))
        #expect(e.data["retryable"] == .bool(false))
    }

    @Test func idempotencyReplaysSuccessesOnly() throws {
        let h = try AgentHarness()
        _ = try h.next()
        h.cmd("a", #"{"v":1}"#, extra: #","idempotency_key":"k""#)
        #expect(try h.answer().type == .done)
        h.cmd("b", #"{"v":1}"#, extra: #","idempotency_key":"k""#)
        let replay = try h.answer()
        #expect(replay.data["metadata"]?["idempotent_replay"] == .string("true"))
        h.cmd("c", #"{"v":2}"#, extra: #","idempotency_key":"k""#)
        #expect(try h.answer().data["code"] == .string("CONFLICT"))
        h.cmd("d", #"{"exit_code":1}"#, extra: #","idempotency_key":"f""#)
        #expect(try h.answer().type == .done)
        h.cmd("e", #"{"exit_code":1}"#, extra: #","idempotency_key":"f""#)
        #expect(try h.answer().data["metadata"]?["idempotent_replay"] == nil, "a failure is not remembered")
    }
}
