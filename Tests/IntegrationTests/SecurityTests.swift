import Foundation
import MicroRunnerClient
import MicroRunnerCrypto
import MicroRunnerProtocol
import MicroRunnerSignatures
import MicroRunnerTestSupport
import Testing

/// A key pair for the tests and a helper that writes signed CMD lines the way a controller would.
struct TestKey {
    let seed = Crypto.randomBytes(32)
    var signer: Ed25519Signer { try! Ed25519Signer(seed: seed) }
    var publicKey: String { signer.publicKeyBase64 }

    /// A signed CMD line. `paramsText` goes on the wire exactly as given.
    func line(
        id: String,
        type: String = "exec",
        timeout: Int = 10,
        paramsText: String,
        nonce: String,
        idempotencyKey: String = "",
        dryRun: Bool = false,
        signWith other: TestKey? = nil
    ) -> String {
        let key = other ?? self
        let pair = Crypto.ed25519KeyPair(seed: key.seed)!
        let input = signingInput(
            nonce: nonce,
            id: id,
            type: type,
            timeout: timeout,
            idempotencyKey: idempotencyKey,
            dryRun: dryRun,
            paramsBytes: Array(paramsText.utf8)
        )
        let sig = Crypto.base64Encode(Crypto.ed25519Sign(message: input, secretKey: pair.secretKey)!)
        var data =
            #""id":"\#(id)","type":"\#(type)","timeout":\#(timeout),"params":\#(paramsText),"signature":"\#(sig)""#
        if !idempotencyKey.isEmpty { data += #","idempotency_key":"\#(idempotencyKey)""# }
        if dryRun { data += #","dry_run":true"# }
        return #"{"type":"CMD","data":{\#(data)}}"#
    }
}

@Suite(.serialized) struct SignatureTests {
    @Test func signedCommandsRunAndEverythingElseIsRefused() throws {
        let key = TestKey()
        let marker = "/tmp/mr-sig-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: marker) }
        let r = try RunnerProcess(arguments: ["--verify-key", key.publicKey])
        let readyLine = try r.next(.ready)
        let nonce = try #require(readyLine["metadata"]?["nonce"]?.stringValue)
        #expect(nonce.count == 32)
        #expect(nonce.allSatisfy { $0.isHexDigit })
        #expect(readyLine["metadata"]?["signatures"] == .string("required"))
        #expect(!r.allRawLines[0].contains(key.publicKey), "READY must not reveal the key")

        let touch = #"{"command":"touch \#(marker)"}"#
        // Signed, with params bytes that are not in any canonical form: the signature covers them as sent.
        r.send(key.line(id: "ok1", paramsText: #"{ "command" : "echo signed",  "capture_out":true }"#, nonce: nonce))
        let ok = try r.answer()
        #expect(ok.type == .done)
        #expect(ok.result["stdout"] == .string("signed\n"))

        r.send(#"{"type":"CMD","data":{"id":"u1","type":"exec","timeout":10,"params":\#(touch)}}"#)
        #expect(try r.answer().code == "SIGNATURE_INVALID")

        // Tampered: signed "true", sent "touch".
        let signedTrue = key.line(id: "t1", paramsText: #"{"command":"true"}"#, nonce: nonce)
        r.send(signedTrue.replacingOccurrences(of: #"{"command":"true"}"#, with: touch))
        #expect(try r.answer().code == "SIGNATURE_INVALID")

        // Tampered envelope fields: timeout and dry_run are signed too.
        r.send(
            key.line(id: "t2", paramsText: touch, nonce: nonce).replacingOccurrences(
                of: #""timeout":10"#,
                with: #""timeout":11"#
            )
        )
        #expect(try r.answer().code == "SIGNATURE_INVALID")

        r.send(key.line(id: "w1", paramsText: touch, nonce: nonce, signWith: TestKey()))
        #expect(try r.answer().code == "SIGNATURE_INVALID")

        r.send(key.line(id: "n1", paramsText: touch, nonce: String(repeating: "0", count: 32)))
        #expect(try r.answer().code == "SIGNATURE_INVALID")

        r.send(
            key.line(id: "g1", paramsText: touch, nonce: nonce).replacingOccurrences(
                of: #""signature":""#,
                with: #""signature":"!!"#
            )
        )
        #expect(try r.answer().code == "SIGNATURE_INVALID")
        #expect(!FileManager.default.fileExists(atPath: marker), "a refused command ran")

        // A valid line sent twice: the second is a replay.
        let once = key.line(id: "r1", paramsText: #"{"command":"echo once","capture_out":true}"#, nonce: nonce)
        r.send(once)
        #expect(try r.answer().type == .done)
        r.send(once)
        let replay = try r.answer()
        #expect(replay.code == "SIGNATURE_INVALID")
        #expect(replay.message.contains("already used"))

        // Still serving.
        r.send(key.line(id: "last", paramsText: #"{"command":"echo alive","capture_out":true}"#, nonce: nonce))
        #expect(try r.answer().result["stdout"] == .string("alive\n"))
    }

    @Test func signatureFromAnotherStartIsRefused() throws {
        let key = TestKey()
        let first = try RunnerProcess(arguments: ["--verify-key", key.publicKey])
        let nonce1 = try #require(try first.next(.ready)["metadata"]?["nonce"]?.stringValue)
        let second = try RunnerProcess(arguments: ["--verify-key", key.publicKey])
        let nonce2 = try #require(try second.next(.ready)["metadata"]?["nonce"]?.stringValue)
        #expect(nonce1 != nonce2)
        second.send(key.line(id: "x", paramsText: #"{"command":"true"}"#, nonce: nonce1))
        #expect(try second.answer().code == "SIGNATURE_INVALID")
    }

    @Test func clientSignedCommandsVerifyInTheRunner() async throws {
        let key = TestKey()
        let runner = try RunnerBinary(path: BuiltRunner.path)
        let out = try await RunnerClient.withRunner(
            transport: LocalTransport(),
            runner: runner,
            arguments: ["--verify-key", key.publicKey],
            signer: key.signer
        ) { client in
            let a = try await client.exec(ExecParams(command: "echo from client", captureOut: true)).stdout
            var p = FileWriteParams(path: "/tmp/mr-signed-\(getpid())", content: "x")
            p.create = true
            let w = try await client.writeFile(p, dryRun: true)
            // run_if_succeeded and CANCEL are signed too: a signed batch still stops at its first failure.
            let marker = "/tmp/mr-signed-batch-\(getpid())"
            let batch = try await client.sendBatch(
                [
                    CommandMessage(
                        id: "b1",
                        type: .exec,
                        timeout: 10,
                        params: .object(JSONObject([("command", .string("false"))]))
                    ),
                    CommandMessage(
                        id: "b2",
                        type: .exec,
                        timeout: 10,
                        params: .object(JSONObject([("command", .string("touch \(marker)"))]))
                    ),
                ],
                stopOnFailure: true
            )
            #expect(batch.last?.commandID == "b2")
            if case .error(let e) = batch.last { #expect(e.code == .cancelled) } else { Issue.record("b2 ran") }
            #expect(!FileManager.default.fileExists(atPath: marker))
            return a + String(w.changed ?? false)
        }
        #expect(out == "from client\ntrue")
        // The same client without a signer is refused by the same kind of runner.
        do {
            _ = try await RunnerClient.withRunner(
                transport: LocalTransport(),
                runner: runner,
                arguments: ["--verify-key", key.publicKey]
            ) { client in try await client.exec(ExecParams(command: "true")) }
            Issue.record("unsigned command ran")
        } catch let e as CommandError {
            #expect(e.code == .signatureInvalid)
        }
    }
}

@Suite(.serialized) struct IdempotencyTests {
    func cmd(_ id: String, _ command: String, key: String) -> String {
        #"{"type":"CMD","data":{"id":"\#(id)","type":"exec","timeout":10,"idempotency_key":"\#(key)","params":{"command":"\#(command)","capture_out":true}}}"#
    }

    @Test func sameKeyReplaysDifferentParamsConflict() throws {
        let file = "/tmp/mr-idem-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: file) }
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        r.send(cmd("a", "echo run >> \(file); echo first", key: "k1"))
        let first = try r.answer()
        #expect(first.type == .done)
        #expect(first["metadata"] == nil)
        r.send(cmd("b", "echo run >> \(file); echo first", key: "k1"))
        let replay = try r.answer()
        #expect(replay.type == .done)
        #expect(replay.commandID == "b")
        #expect(replay["metadata"]?["idempotent_replay"] == .string("true"))
        #expect(replay["metadata"]?["original_command_id"] == .string("a"))
        #expect(replay.result == first.result)
        #expect(try String(contentsOfFile: file, encoding: .utf8) == "run\n", "the command ran twice")
        r.send(cmd("c", "echo something else", key: "k1"))
        let conflict = try r.answer()
        #expect(conflict.code == "CONFLICT")
        #expect(conflict.message.contains("k1"))
        // A failed command is not remembered: its retry runs.
        r.send(
            #"{"type":"CMD","data":{"id":"f1","type":"file.read","timeout":5,"idempotency_key":"k2","params":{"path":"\#(file).missing"}}}"#
        )
        #expect(try r.answer().code == "NOT_FOUND")
        try "now\n".write(toFile: file + ".missing", atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file + ".missing") }
        r.send(
            #"{"type":"CMD","data":{"id":"f2","type":"file.read","timeout":5,"idempotency_key":"k2","params":{"path":"\#(file).missing"}}}"#
        )
        #expect(try r.answer().result["content"] == .string("now\n"))
    }

    @Test func journalSurvivesAKilledRunner() throws {
        let dir = "/tmp/mr-state-\(UUID().uuidString.prefix(8))"
        let file = dir + ".out"
        defer {
            try? FileManager.default.removeItem(atPath: dir)
            try? FileManager.default.removeItem(atPath: file)
        }
        let first = try RunnerProcess(arguments: ["--state-dir", dir])
        #expect(try first.next(.ready)["metadata"]?["idempotency"] == .string("journal"))
        first.send(cmd("a", "echo run >> \(file); echo done", key: "deploy-42"))
        let original = try first.answer()
        #expect(original.type == .done)
        kill(first.process.processIdentifier, SIGKILL)
        _ = try first.waitForExit()
        #expect((try FileManager.default.attributesOfItem(atPath: dir)[.posixPermissions] as? Int) == 0o700)
        #expect(
            (try FileManager.default.attributesOfItem(atPath: dir + "/journal.jsonl")[.posixPermissions] as? Int)
                == 0o600
        )
        // A torn last line, as a crash mid-append would leave it.
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: dir + "/journal.jsonl"))
        handle.seekToEndOfFile()
        handle.write(Data(#"{"key":"torn","fingerp"#.utf8))
        try handle.close()

        let second = try RunnerProcess(arguments: ["--state-dir", dir])
        _ = try second.next(.ready)
        second.send(cmd("retry", "echo run >> \(file); echo done", key: "deploy-42"))
        let replay = try second.answer()
        #expect(replay["metadata"]?["idempotent_replay"] == .string("true"))
        #expect(replay.result == original.result)
        #expect(try String(contentsOfFile: file, encoding: .utf8) == "run\n")

        // One runner per state directory.
        let third = try RunnerProcess(arguments: ["--state-dir", dir])
        #expect(try third.waitForExit() == 3)
        #expect(third.stderrText().contains("another runner"))
    }

    /// What a runner killed in the middle of rewriting its journal leaves (the staging file, named as StagedFile
    /// names the journal's) is removed by the next runner of that state directory as it starts; a staging file of a
    /// process that still runs is left alone.
    @Test func aKilledRunnersJournalRewriteIsSweptByTheNext() throws {
        let dir = "/tmp/mr-state-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let first = try RunnerProcess(arguments: ["--state-dir", dir])
        _ = try first.next(.ready)
        let dead = first.process.processIdentifier
        kill(dead, SIGKILL)
        _ = try first.waitForExit()
        let leftover = dir + "/.journal.jsonl.mr-journal-\(dead)-9f86d081884c7d65"
        let alive = dir + "/.journal.jsonl.mr-journal-\(getpid())-9f86d081884c7d65"
        for path in [leftover, alive] {
            #expect(FileManager.default.createFile(atPath: path, contents: Data("{\"key\":".utf8)))
        }

        let second = try RunnerProcess(arguments: ["--state-dir", dir])
        _ = try second.next(.ready)
        #expect(!FileManager.default.fileExists(atPath: leftover))
        #expect(FileManager.default.fileExists(atPath: alive))
        second.send(cmd("a", "echo served", key: "k"))
        #expect(try second.answer().result["stdout"] == .string("served\n"))
    }

    @Test func withoutStateDirNothingIsRemembered() throws {
        let file = "/tmp/mr-idem2-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: file) }
        for _ in 0..<2 {
            let r = try RunnerProcess()
            #expect(try r.next(.ready)["metadata"]?["idempotency"] == .string("memory"))
            r.send(cmd("a", "echo run >> \(file)", key: "k"))
            #expect(try r.answer()["metadata"] == nil)
            r.closeStdin()
            _ = try r.waitForExit()
        }
        #expect(try String(contentsOfFile: file, encoding: .utf8) == "run\nrun\n")
    }
}

@Suite(.serialized) struct LeastPrivilegeTests {
    @Test func allowListRestrictsCommandTypes() throws {
        let r = try RunnerProcess(arguments: ["--allow", "exec"])
        let ready = try r.next(.ready)
        #expect(ready["capabilities"]?["exec"] == .bool(true))
        #expect(ready["capabilities"]?["file.read"] == .bool(false))
        r.sendCommand("r", "file.read", params: ["path": "/etc/hostname"])
        #expect(try r.answer().code == "UNSUPPORTED")
        r.sendCommand("e", "exec", params: ["command": "true"])
        #expect(try r.answer().type == .done)
    }

    @Test func rootDirConfinesFileCommands() throws {
        let root = "/tmp/mr-root-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: root + "/sub", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        try "inside\n".write(toFile: root + "/sub/in.txt", atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: root + "/escape", withDestinationPath: "/etc")
        let r = try RunnerProcess(arguments: ["--root-dir", root])
        #expect(try r.next(.ready)["metadata"]?["root_dir"] == .string("confined"))
        r.sendCommand("in", "file.read", params: ["path": root + "/sub/in.txt"])
        #expect(try r.answer().result["content"] == .string("inside\n"))
        for path in ["/etc/hostname", root + "/escape/hostname", root + "/sub/../../etc/hostname", root + "-other/x"] {
            r.sendCommand("out", "file.read", params: ["path": path])
            let a = try r.answer()
            #expect(a.code == "PERMISSION_DENIED", "\(path): \(a.data)")
        }
        r.sendCommand("w", "file.write", params: ["path": root + "/sub/new.txt", "content": "x", "create": true])
        #expect(try r.answer().type == .done)
        r.sendCommand("w2", "file.write", params: ["path": root + "/escape/mr-nope", "content": "x", "create": true])
        #expect(try r.answer().code == "PERMISSION_DENIED")
        #expect(!FileManager.default.fileExists(atPath: "/etc/mr-nope"))
    }
}

@Suite struct VerifyKeyFlagTests {
    @Test func keyAsTextOrFileEvenWhenItStartsWithASlash() throws {
        // Find a key whose base64 starts with "/" (about 1 in 64).
        var key = TestKey()
        while !key.publicKey.hasPrefix("/") { key = TestKey() }
        let r = try RunnerProcess(arguments: ["--verify-key", key.publicKey])
        #expect(try r.next(.ready)["metadata"]?["signatures"] == .string("required"))
        let file = "/tmp/mr-pub-\(UUID().uuidString.prefix(8))"
        try (key.publicKey + "\n").write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let f = try RunnerProcess(arguments: ["--verify-key", file])
        #expect(try f.next(.ready)["metadata"]?["signatures"] == .string("required"))
        let bad = try RunnerProcess(arguments: ["--verify-key", "not-a-key"])
        #expect(try bad.waitForExit() == 2)
    }

    /// Round 2: a command running as the runner's own (non-root) user wrote a forged DONE to the controller
    /// through /proc/RUNNER/fd/1, and it arrived before the real one. The runner is not dumpable now: its
    /// descriptors cannot be opened by its own user's other processes.
    @Test(.enabled(if: geteuid() == 0, "runs the runner as nobody")) func aCommandCannotWriteToTheProtocol() throws {
        let dir = "/tmp/mr-forge-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        chmod(dir, 0o755)
        try BuiltRunner.copy(to: dir + "/micro-runner")
        // stdout through a pipe that nobody's own shell made (as sshd makes one for the login user): a pipe the
        // test made would be root's 0600 inode, which nobody could not open through /proc in any case.
        let r = try RunnerProcess(
            arguments: ["-u", "nobody", "--", "/bin/sh", "-c", "\(dir)/micro-runner --keep | cat"],
            binary: "/usr/sbin/runuser"
        )
        _ = try r.next(.ready)
        let forged =
            #"{"type":"DONE","data":{"command_id":"forge","result":{"exit_code":0,"stdout":"forged"},"duration":0}}"#
        r.sendCommand(
            "forge",
            "exec",
            params: [
                "command": "printf '%s\\n' '\(forged)' > /proc/$PPID/fd/1 && echo written || echo blocked",
                "capture_out": true, "capture_err": true,
            ]
        )
        let answer = try r.answer()
        #expect(answer.result["stdout"] == .string("blocked\n"), "\(answer.data)")
        #expect(!r.allRawLines.contains { $0.contains(#""stdout":"forged""#) }, "no forged line reached the controller")
    }
}
