import Foundation
import MicroRunnerCrypto
import MicroRunnerProtocol
import MicroRunnerSignatures
import MicroRunnerTestSupport
import Testing

/// The attacks of the adversarial review (issue 9), each performed for real against the release static runner.
/// Races run a bounded number of rounds; every test asserts that the attack really interfered (swaps or flips
/// happened) as well as that nothing outside its place changed.

/// A neighbour process: Python, since it needs inotify and renameat2, which a shell does not offer.
enum Neighbour {
    static let script = #"""
        import ctypes, os, signal, struct, sys, time
        libc = ctypes.CDLL(None, use_errno=True)
        mode = sys.argv[1]
        count = 0
        def report(*_):
            print(count, flush=True)
            os._exit(0)
        signal.signal(signal.SIGTERM, report)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])  # Foundation's Process starts children with signals blocked
        signal.alarm(300)  # never outlive a test that failed before stopping it
        if mode == "swap-temp":
            # Replace every temporary or staging file the runner creates in DIR with a symlink to TARGET.
            d, target, uid = sys.argv[2], sys.argv[3], int(sys.argv[4])
            os.setgid(uid); os.setuid(uid)
            fd = libc.inotify_init()
            libc.inotify_add_watch(fd, d.encode(), 0x100)  # IN_CREATE
            print("ready", flush=True)
            while True:
                buf = os.read(fd, 65536)
                i = 0
                while i < len(buf):
                    _, _, _, n = struct.unpack_from("iIII", buf, i)
                    name = buf[i + 16:i + 16 + n].rstrip(b"\0").decode()
                    i += 16 + n
                    if ".mr-" in name:
                        p = os.path.join(d, name)
                        try:
                            os.unlink(p); os.symlink(target, p); count += 1
                        except OSError:
                            pass
        elif mode == "flip-file":
            # PATH is, in turn, a regular file inside and a symlink to SECRET outside.
            path, secret = sys.argv[2], sys.argv[3]
            print("ready", flush=True)
            while True:
                try: os.unlink(path + ".s")
                except OSError: pass
                os.symlink(secret, path + ".s"); os.replace(path + ".s", path)
                with open(path + ".f", "w") as f: f.write("inside\n")
                os.replace(path + ".f", path)
                count += 1
        elif mode == "flip-dir":
            # PATH (a directory inside) and PATH.s (a symlink to OUTSIDE) swap places, atomically, again and again.
            path, outside = sys.argv[2], sys.argv[3]
            try: os.unlink(path + ".s")
            except OSError: pass
            os.symlink(outside, path + ".s")
            a, b = path.encode(), (path + ".s").encode()
            print("ready", flush=True)
            while True:
                if libc.renameat2(-100, a, -100, b, 2) == 0:  # AT_FDCWD, RENAME_EXCHANGE
                    count += 1
        """#

    /// Starts a neighbour and waits until it is in place.
    static func start(_ arguments: [String]) throws -> (Process, Pipe) {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("mr-neighbour-\(getpid()).py").path
        try script.write(toFile: file, atomically: true, encoding: .utf8)
        chmod(file, 0o644)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        p.arguments = [file] + arguments
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        // Only the neighbour may hold the write end, or reading to its end never ends.
        try out.fileHandleForWriting.close()
        var line: [UInt8] = []
        while true {
            let b = try out.fileHandleForReading.read(upToCount: 1) ?? Data()
            if b.isEmpty || b.first == 0x0A { break }
            line += b
        }
        guard String(decoding: line, as: UTF8.self) == "ready" else { throw TestFailure("neighbour did not start") }
        return (p, out)
    }

    /// Stops a neighbour and returns how often it struck.
    static func stop(_ neighbour: (Process, Pipe)) -> Int {
        neighbour.0.terminate()
        let data = neighbour.1.fileHandleForReading.readDataToEndOfFile()
        neighbour.0.waitUntilExit()
        return Int(String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    }
}

/// A root-owned 0600 file outside every directory the runner is asked to work in.
final class Secret {
    let path = "/var/tmp/mr-secret-\(UUID().uuidString.prefix(8))"
    let content = "secret \(UUID().uuidString)\n"
    init() throws {
        try content.write(toFile: path, atomically: false, encoding: .utf8)
        chmod(path, 0o600)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
    /// Content, mode, owner and link count as they were made.
    var untouched: Bool {
        (try? String(contentsOfFile: path, encoding: .utf8)) == content && statLine(path).hasPrefix("600 0 0 ")
    }
}

/// The answers to `count` pipelined commands, by id.
func answers(_ r: RunnerProcess, count: Int, timeout: TimeInterval = 60) throws -> [String: Received] {
    var out: [String: Received] = [:]
    while out.count < count {
        let a = try r.answer(timeout: timeout)
        out[a.commandID ?? "?\(out.count)"] = a
    }
    return out
}

@Suite(.serialized, .enabled(if: isRoot, "attacks a root runner")) struct HardeningTests {
    // MARK: 1. Temporary and staging files are reached only through descriptors.

    @Test func swappingTheTemporaryFileForASymlinkNeverTouchesItsTarget() throws {
        let s = try Scratch()
        let secret = try Secret()
        chmod(s.path, 0o1777)
        chown(s.path, 65534, 65534)  // the neighbour's own sticky directory: it may remove anything in it
        let neighbour = try Neighbour.start(["swap-temp", s.path, secret.path, "65534"])
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        let rounds = 300
        // 256 KiB a write: the window between creating the temporary file and renaming it is real work.
        let body = String(repeating: "x", count: 256 << 10)
        for i in 0..<rounds {
            r.sendCommand(
                "w\(i)",
                "file.write",
                params: [
                    "path": s.file("target"), "content": "\(i)\n" + body, "mode": "0666", "owner": "nobody",
                    "create": true,
                ]
            )
        }
        let all = try answers(r, count: rounds)
        let swaps = Neighbour.stop(neighbour)
        #expect(swaps > 0, "the neighbour must have struck at least once")
        #expect(secret.untouched, "the secret outside must keep its content, mode 0600 and owner root")
        let conflicts = all.values.filter { $0.code == "CONFLICT" }.count
        let done = all.values.filter { $0.type == .done }.count
        // A neighbour's symlink that lands on the target is never followed (it is not root's or the runner's).
        let refused = all.values.filter { $0.code == "PERMISSION_DENIED" }.count
        #expect(conflicts + done + refused == rounds, "installed or refused: \(Set(all.values.map(\.message)))")
        #expect(conflicts > 0, "a swapped temporary file is detected, not installed")
    }

    @Test func swappingAStagingFileBetweenChunksIsRefused() throws {
        let root = try Scratch()
        let secret = try Secret()
        chmod(root.path, 0o777)
        let r = try RunnerProcess(arguments: ["--root-dir", root.path])
        _ = try r.next(.ready)
        let chunk = Crypto.base64Encode(Array("0123456789".utf8))
        r.sendCommand(
            "c0",
            "file.write",
            params: ["path": root.file("big"), "content_base64": chunk, "upload_id": "u1", "offset": 0, "create": true]
        )
        #expect(try r.answer().type == .done)
        let staging = try #require(root.entries().first { $0.contains(".mr-upload-") })
        try FileManager.default.removeItem(atPath: root.file(staging))
        try FileManager.default.createSymbolicLink(atPath: root.file(staging), withDestinationPath: secret.path)
        r.sendCommand(
            "c1",
            "file.write",
            params: [
                "path": root.file("big"), "content_base64": chunk, "upload_id": "u1", "offset": 10, "final": true,
                "mode": "0666", "owner": "nobody",
            ]
        )
        let last = try r.answer()
        #expect(last.code == "CONFLICT", "\(last.data)")
        #expect(secret.untouched, "no append, chmod or chown reached the file outside")
        var st = stat()
        #expect(lstat(root.file("big"), &st) != 0, "the target was never installed, and never as a symlink")
    }

    // MARK: 2. --root-dir: resolved beneath the root's descriptor, used through what it returned.

    @Test func flippingASymlinkInsideTheRootNeverReadsOutside() throws {
        let root = try Scratch()
        let secret = try Secret()
        let neighbour = try Neighbour.start(["flip-file", root.file("x"), secret.path])
        let outsideDir = try Scratch()
        try "outside\n".write(toFile: outsideDir.file("f"), atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: root.file("d"), withIntermediateDirectories: true)
        try "inside\n".write(toFile: root.file("d/f"), atomically: true, encoding: .utf8)
        let dirFlipper = try Neighbour.start(["flip-dir", root.file("d"), outsideDir.path])
        let r = try RunnerProcess(arguments: ["--root-dir", root.path])
        _ = try r.next(.ready)
        let rounds = 2000
        for i in 0..<rounds {
            r.sendCommand("r\(i)", "file.read", params: ["path": root.file(i % 2 == 0 ? "x" : "d/f")])
        }
        let all = try answers(r, count: rounds)
        let flips = Neighbour.stop(neighbour) + Neighbour.stop(dirFlipper)
        #expect(flips > 100, "the neighbours flipped the paths while the runner read them")
        let leaked = all.values.filter {
            let c = $0.result["content"]?.stringValue ?? ""
            return c.contains("secret") || c.contains("outside")
        }
        #expect(leaked.isEmpty, "no read may return a file outside the root")
        let inside = all.values.filter { $0.result["content"] == .string("inside\n") }.count
        let refused = all.values.filter { ["PERMISSION_DENIED", "NOT_FOUND", "CONFLICT"].contains($0.code) }.count
        #expect(inside + refused == rounds, "\(Set(all.values.filter { $0.type == .error }.map(\.message)))")
        #expect(refused > 0, "some reads met the symlinks and were refused")
    }

    @Test func flippingADirectoryInsideTheRootNeverWritesOutside() throws {
        let root = try Scratch()
        let outside = try Scratch()
        try FileManager.default.createDirectory(atPath: root.file("d"), withIntermediateDirectories: true)
        let flipper = try Neighbour.start(["flip-dir", root.file("d"), outside.path])
        let r = try RunnerProcess(arguments: ["--root-dir", root.path])
        _ = try r.next(.ready)
        let rounds = 2000
        for i in 0..<rounds {
            r.sendCommand(
                "w\(i)",
                "file.write",
                params: ["path": root.file("d/f\(i % 10)"), "content": "\(i)\n", "create": i % 3 == 0]
            )
        }
        let all = try answers(r, count: rounds)
        #expect(Neighbour.stop(flipper) > 100)
        #expect(outside.entries().isEmpty, "nothing (no file, no temporary file) landed outside: \(outside.entries())")
        #expect(all.values.contains { $0.type == .done }, "writes that met the directory went through")
        #expect(all.values.contains { $0.code == "PERMISSION_DENIED" }, "writes that met the symlink were refused")
    }

    @Test func aHardLinkToAFileOutsideIsRefused() throws {
        let root = try Scratch()
        let secret = try Secret()
        #expect(link(secret.path, root.file("h")) == 0 || shell("ln \(secret.path) \(root.file("h"))").status == 0)
        let r = try RunnerProcess(arguments: ["--root-dir", root.path])
        _ = try r.next(.ready)
        r.sendCommand("r", "file.read", params: ["path": root.file("h")])
        let read = try r.answer()
        #expect(read.code == "PERMISSION_DENIED", "\(read.data)")
        r.sendCommand("w", "file.write", params: ["path": root.file("h"), "content": "x", "mode": "0666"])
        #expect(try r.answer().code == "PERMISSION_DENIED")
        #expect(secret.untouched)
        // An absolute symlink leads out of the root even when it names a place inside: refused, never followed.
        try FileManager.default.createSymbolicLink(atPath: root.file("abs"), withDestinationPath: "/etc/hostname")
        r.sendCommand("a", "file.read", params: ["path": root.file("abs")])
        #expect(try r.answer().code == "PERMISSION_DENIED")
    }

    // MARK: 3. One line never kills the runner.

    @Test func hugeTimeoutsAndTTLsAreRefusedNotCrashed() throws {
        let s = try Scratch()
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        r.send(#"{"type":"CMD","data":{"id":"big","type":"exec","timeout":9223372037,"params":{"command":"true"}}}"#)
        let big = try r.answer()
        #expect(big.code == "INVALID_CMD", "\(big.data)")
        #expect(big.commandID == "big", "\(big.data)")
        r.send(
            #"{"type":"CMD","data":{"id":"max","type":"exec","timeout":2147483647,"params":{"command":"echo ok","capture_out":true}}}"#
        )
        #expect(try r.answer().result["stdout"] == .string("ok\n"), "the largest timeout allowed still runs")
        r.sendCommand(
            "up",
            "file.write",
            params: ["path": s.file("u"), "content_base64": "eA==", "upload_id": "u", "offset": 0, "create": true]
        )
        #expect(try r.answer().type == .done)
        r.closeStdin()
        let exit = try r.next(.exit)
        #expect(exit["reason"] == .string("stdin_closed"))
        #expect(try r.waitForExit() == 0)
        #expect(!s.entries().contains { $0.contains(".mr-upload-") }, "staging files are removed at EXIT")

        for ttl in ["2562048h", "1e400s", "inf", "nan", "-1s"] {
            let t = try RunnerProcess(arguments: ["--ttl", ttl])
            #expect(try t.waitForExit() == 2, "--ttl \(ttl) is a usage error, not a crash")
            #expect(t.stderrText().contains("--ttl"))
        }
        let longest = try RunnerProcess(arguments: ["--ttl", "2562047h"])
        #expect(try longest.next(.ready)["metadata"]?["ttl"] == .string("2562047h0m0s"))
    }

    // MARK: 4. Signatures mean one thing.

    @Test func signaturesCannotBeResplitAndUnsignedControlIsRefused() throws {
        let key = TestKey()
        let s = try Scratch()
        let r = try RunnerProcess(arguments: ["--verify-key", key.publicKey])
        let nonce = try #require(try r.next(.ready)["metadata"]?["nonce"]?.stringValue)
        // A newline in id or idempotency_key could move text between the signed lines: refused before anything.
        for (id, idem) in [
            ("a\nexec", ""), ("b", "k\nfile.read"), ("c\u{7F}", ""), (String(repeating: "i", count: 257), ""),
        ] {
            let line = key.line(id: id, paramsText: #"{"command":"true"}"#, nonce: nonce, idempotencyKey: idem)
            let escaped = line.replacingOccurrences(of: "\n", with: "\\n")
            r.send(escaped)
            #expect(try r.answer().code == "INVALID_CMD")
        }
        // run_if_succeeded is signed: added by someone else, the command is refused, not skipped.
        let signed = key.line(id: "s1", paramsText: #"{"command":"touch \#(s.file("s1"))"}"#, nonce: nonce)
        r.send(
            signed.replacingOccurrences(
                of: #""signature""#,
                with: #""metadata":{"run_if_succeeded":"nope"},"signature""#
            )
        )
        #expect(try r.answer().code == "SIGNATURE_INVALID")
        // An unsigned CANCEL stops nothing; a signed one does.
        r.send(key.line(id: "slow", paramsText: #"{"command":"sleep 1; touch \#(s.file("slow"))"}"#, nonce: nonce))
        r.send(#"{"type":"CANCEL","data":{"command_id":"slow"}}"#)
        let two = [try r.answer(), try r.answer()]
        #expect(two.contains { $0.code == "SIGNATURE_INVALID" }, "\(two.map(\.data))")
        #expect(two.contains { $0.type == .done && $0.commandID == "slow" }, "the signed command ran to its end")
        #expect(FileManager.default.fileExists(atPath: s.file("slow")))
        r.send(key.line(id: "slow2", paramsText: #"{"command":"sleep 5"}"#, nonce: nonce))
        let pair = Crypto.ed25519KeyPair(seed: key.seed)!
        let sig = Crypto.base64Encode(
            Crypto.ed25519Sign(
                message: cancelSigningInput(nonce: nonce, commandID: "slow2"),
                secretKey: pair.secretKey
            )!
        )
        Thread.sleep(forTimeInterval: 0.2)
        r.send(#"{"type":"CANCEL","data":{"command_id":"slow2","signature":"\#(sig)"}}"#)
        #expect(try r.answer().code == "CANCELLED")
    }

    // MARK: 5. NUL never cuts a string short.

    @Test func nulAnywhereRefusesTheWholeCommand() throws {
        let s = try Scratch()
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        r.send(
            #"{"type":"CMD","data":{"id":"n1","type":"exec","timeout":5,"params":{"command":"echo x\u0000; touch \#(s.file("INJECTED"))"}}}"#
        )
        #expect(try r.answer().code == "INVALID_CMD")
        r.send(
            #"{"type":"CMD","data":{"id":"n2","type":"file.write","timeout":5,"params":{"path":"\#(s.file("ok.txt"))\u0000/../../x","content":"x","create":true}}}"#
        )
        let path = try r.answer()
        #expect(path.code == "INVALID_CMD", "\(path.data)")
        #expect(path.message.contains("NUL"), "\(path.data)")
        r.send(
            #"{"type":"CMD","data":{"id":"n3","type":"exec","timeout":5,"params":{"command":"true","env":{"A\u0000B":"1"}}}}"#
        )
        #expect(try r.answer().code == "INVALID_CMD")
        #expect(s.entries().isEmpty, "nothing ran, nothing was written")
    }

    // MARK: 7. pkg.ensure options cannot run programs.

    @Test func packageOptionsThatRunProgramsAreRefused() throws {
        let s = try Scratch()
        let r = try RunnerProcess()
        let ready = try r.next(.ready)
        try #require(ready["capabilities"]?["pkg.ensure"] == .bool(true), "needs apt on this host")
        let script = s.file("pwn.sh")
        try "#!/bin/sh\ntouch \(s.file("PWNED"))\n".write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        for options in [["-o", "Dir::Bin::dpkg=\(script)"], ["-o", "DPkg::Pre-Invoke::=\(script)"], ["-c", script]] {
            r.sendCommand("p", "pkg.ensure", params: ["name": "mr-test-pkg", "manager": "apt", "options": options])
            let a = try r.answer()
            #expect(a.code == "INVALID_CMD", "\(a.data)")
            #expect(a.message.contains("option"), "\(a.data)")
        }
        #expect(!FileManager.default.fileExists(atPath: s.file("PWNED")))
    }

    // MARK: 9. The state directory is refused unless it is safe.

    @Test func unsafeStateDirectoriesAreRefusedBeforeReady() throws {
        let s = try Scratch()
        let secret = try Secret()
        func refused(_ dir: String, _ words: String) throws {
            let r = try RunnerProcess(arguments: ["--state-dir", dir])
            let first = try r.next(timeout: 5)
            #expect(first.type == .error, "\(first.data)")
            #expect(first.code == "INIT_FAILED", "\(first.data)")
            #expect(first.message.contains(words), "\(first.message)")
            #expect(try r.waitForExit(timeout: 5) == 3)
        }
        // World-writable directory: refused, and left as it was (not "fixed", not used).
        try FileManager.default.createDirectory(atPath: s.file("open"), withIntermediateDirectories: true)
        chmod(s.file("open"), 0o777)
        try refused(s.file("open"), "writable by no one else")
        // journal.jsonl a symlink to a file outside: never followed.
        try FileManager.default.createDirectory(atPath: s.file("link"), withIntermediateDirectories: true)
        chmod(s.file("link"), 0o700)
        try FileManager.default.createSymbolicLink(
            atPath: s.file("link/journal.jsonl"),
            withDestinationPath: secret.path
        )
        try refused(s.file("link"), "symlink")
        #expect(secret.untouched)
        // A character device and a FIFO: refused at once, nothing read, nothing hangs.
        for (name, make) in [("dev", "mknod %@ c 1 5"), ("fifo", "mkfifo %@")] {
            try FileManager.default.createDirectory(atPath: s.file(name), withIntermediateDirectories: true)
            chmod(s.file(name), 0o700)
            #expect(shell(String(format: make, s.file(name + "/journal.jsonl"))).status == 0)
            try refused(s.file(name), "regular file")
        }
        // A journal someone else owns (and so could have forged): refused.
        try FileManager.default.createDirectory(atPath: s.file("forged"), withIntermediateDirectories: true)
        chmod(s.file("forged"), 0o700)
        try #"{"key":"k","fingerprint":"x","type":"exec","command_id":"c","result":{}}"#.write(
            toFile: s.file("forged/journal.jsonl"),
            atomically: false,
            encoding: .utf8
        )
        chown(s.file("forged/journal.jsonl"), 65534, 65534)
        try refused(s.file("forged"), "uid 0")
        // A runner waiting on a hung start still stops on SIGTERM: signals are taken from the first instruction.
        let ok = try RunnerProcess(arguments: ["--state-dir", s.file("fresh")])
        _ = try ok.next(.ready)
        #expect(statLine(s.file("fresh")).hasPrefix("700 "))
        ok.process.terminate()
        #expect(try ok.next(.exit)["reason"] == .string("error"))
    }

    // MARK: 10. Memory follows bytes, not input.

    @Test func queuedLinesAndLongCancelIdsStayBoundedInMemory() throws {
        let r = try RunnerProcess()
        let pid = try #require(try r.next(.ready)["pid"]?.intValue)
        r.sendCommand("sleeper", "exec", params: ["command": "sleep 3"])
        // 60 lines of 1 MiB each, made of small values (the parsed tree of such a line is ~12x its size).
        let numbers = Array(repeating: "0", count: 200_000).joined(separator: ",")
        let pad = String(repeating: "p", count: (1 << 20) - numbers.utf8.count - 200)
        let accepted =
            #"{"type":"CMD","data":{"id":"ID","type":"exec","timeout":5,"params":{"command":"true","n":[\#(numbers)],"p":"\#(pad)"}}}"#
        let tooMany =
            #"{"type":"CMD","data":{"id":"ID","type":"exec","timeout":5,"params":{"command":"true","n":[\#(Array(repeating: "0", count: 520_000).joined(separator: ","))]}}}"#
        for i in 0..<60 {
            r.send((i % 2 == 0 ? accepted : tooMany).replacingOccurrences(of: #""ID""#, with: #""q\#(i)""#))
        }
        let all = try answers(r, count: 61, timeout: 120)
        #expect(all["sleeper"]?.type == .done)
        #expect(all.values.filter { $0.type == .done }.count == 31)
        #expect(all.values.filter { $0.message.contains("values") }.count == 30, "too many values: refused")
        let hwm = try Self.status(pid, "VmHWM")
        #expect(hwm < 256 << 10, "peak RSS \(hwm) KiB")

        // 30 CANCELs with 10 MiB ids: each refused, none kept.
        let id = String(repeating: "c", count: 10 << 20)
        for _ in 0..<30 { r.send(#"{"type":"CANCEL","data":{"command_id":"\#(id)"}}"#) }
        for _ in 0..<30 {
            let a = try r.answer(timeout: 60)
            #expect(a.code == "INVALID_CMD")
        }
        r.sendCommand("after", "exec", params: ["command": "echo alive", "capture_out": true])
        #expect(try r.answer().result["stdout"] == .string("alive\n"))
        let rss = try Self.status(pid, "VmRSS")
        #expect(rss < 64 << 10, "RSS after the CANCELs \(rss) KiB")
    }

    @Test func cachedIdempotencyResultsAreBoundedInBytes() throws {
        let r = try RunnerProcess()
        let pid = try #require(try r.next(.ready)["pid"]?.intValue)
        // Each command turns a few bytes of input into 4 MiB of remembered output.
        for i in 0..<40 {
            r.sendCommand(
                "k\(i)",
                "exec",
                params: ["command": "head -c 4000000 /dev/zero | tr '\\0' a", "capture_out": true],
                extra: ["idempotency_key": "key-\(i)"]
            )
            #expect(try r.answer(timeout: 60).type == .done)
        }
        let rss = try Self.status(pid, "VmRSS")
        #expect(rss < 96 << 10, "RSS with 40 remembered 4 MB results: \(rss) KiB")
        r.sendCommand(
            "again",
            "exec",
            params: ["command": "head -c 4000000 /dev/zero | tr '\\0' a", "capture_out": true],
            extra: ["idempotency_key": "key-39"]
        )
        let replay = try r.answer(timeout: 60)
        #expect(replay["metadata"]?["idempotent_replay"] == .string("true"), "a large result still replays")
        #expect(replay["metadata"]?["result_truncated"] == .string("true"))
    }

    /// Round 2: the queue's bound weighed only params, so 30 queued 15 MiB commands with the bulk in metadata
    /// took the runner to 451 MB. Every byte of a queued line counts now.
    @Test func queuedLinesAreWeighedWhole() throws {
        let r = try RunnerProcess()
        let pid = try #require(try r.next(.ready)["pid"]?.intValue)
        r.sendCommand("sleeper", "exec", params: ["command": "sleep 8"])
        let bulk = String(repeating: "m", count: 15 << 20)
        for i in 0..<30 {
            r.send(
                #"{"type":"CMD","data":{"id":"m\#(i)","type":"exec","timeout":5,"params":{"command":"true"},"metadata":{"note":"\#(bulk)"}}}"#
            )
        }
        let all = try answers(r, count: 31, timeout: 120)
        #expect(all.values.filter { $0.type == .done }.count == 31)
        let hwm = try Self.status(pid, "VmHWM")
        #expect(hwm < 160 << 10, "peak RSS \(hwm >> 10) MiB (451 MB before)")
    }

    /// Round 2: answers echoed input in full (12.6 MB ERROR lines). Each kind of bad line at the largest size the
    /// runner reads gets an answer of a few KiB, and the runner goes on.
    @Test func everyKindOfBadLineAtFullSizeGetsASmallAnswer() throws {
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        let big = String(repeating: "z", count: 15 << 20)
        let lines = [
            #"{"type":"\#(big)","data":{}}"#,
            #"{"type":"CMD","timestamp":"\#(big)","data":{"id":"t","type":"exec","timeout":5,"params":{"command":"true"}}}"#,
            #"{"type":"CMD","data":{"id":"\#(big)","type":"exec","timeout":5,"params":{"command":"true"}}}"#,
            #"{"type":"CMD","data":{"id":"y","type":"\#(big)","timeout":5,"params":{"command":"true"}}}"#,
            #"{"type":"CMD","data":{"id":"k","type":"exec","timeout":5,"idempotency_key":"\#(big)","params":{"command":"true"}}}"#,
            #"{"type":"CMD","data":{"id":"s","type":"exec","timeout":5,"signature":"\#(big)","params":{"command":"true"}}}"#,
            #"{"type":"CMD","data":{"id":"o","type":"exec","timeout":"\#(big)","params":{"command":"true"}}}"#,
            #"{"type":"CMD","data":{"id":"u","type":"no.such.type","timeout":5,"params":{"command":"\#(big)"}}}"#,
            #"{"type":"CANCEL","data":{"command_id":"\#(big)"}}"#,
            #"{"type":"CMD","data":{"id":"j","type":"exec","timeout":5,"params":{"command":"\#(big)"#,
        ]
        for line in lines { r.send(line) }
        for _ in lines {
            let a = try r.answer(timeout: 60)
            #expect(a.type == .error, "\(a.data)")
        }
        let longest = r.allRawLines.map(\.utf8.count).max() ?? 0
        #expect(longest < 64 << 10, "longest answer \(longest) bytes")
        r.sendCommand("after", "exec", params: ["command": "echo alive", "capture_out": true])
        #expect(try r.answer().result["stdout"] == .string("alive\n"))
    }

    static func status(_ pid: Int, _ field: String) throws -> Int {
        let text = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        let line = try #require(text.split(separator: "\n").first { $0.hasPrefix(field + ":") })
        return Int(line.split(separator: " ").dropFirst().first { Int($0) != nil } ?? "") ?? -1
    }

    // MARK: 12-15. Owner -1, failed commands, leftovers of killed runners, env keys.

    @Test func ownerMinusOneIsRefused() throws {
        let s = try Scratch()
        try s.write("f", "old\n")
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        for owner in ["4294967295", "-1"] {
            r.sendCommand("o", "file.write", params: ["path": s.file("f"), "content": "new\n", "owner": owner])
            #expect(try r.answer().code == "INVALID_CMD")
        }
        r.sendCommand("g", "file.write", params: ["path": s.file("f"), "content": "new\n", "group": "4294967295"])
        #expect(try r.answer().code == "INVALID_CMD")
        #expect(s.read("f") == "old\n")
    }

    @Test func aFailedExecIsNotRememberedAndRunsAgain() throws {
        let s = try Scratch()
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        for id in ["first", "retry"] {
            r.sendCommand(
                id,
                "exec",
                params: ["command": "echo run >> \(s.file("log")); exit 3"],
                extra: ["idempotency_key": "deploy-1"]
            )
            let a = try r.answer()
            #expect(a.result["exit_code"] == .number("3"))
            #expect(a["metadata"]?["idempotent_replay"] == nil)
        }
        #expect(s.read("log") == "run\nrun\n")
    }

    @Test func leftoversOfAKilledRunnerAreRemovedByTheNextWrite() throws {
        let s = try Scratch()
        let killed = try RunnerProcess()
        _ = try killed.next(.ready)
        for i in 0..<3 {
            killed.sendCommand(
                "c\(i)",
                "file.write",
                params: [
                    "path": s.file("t"), "content_base64": "eA==", "upload_id": "u\(i)", "offset": 0, "create": true,
                ]
            )
            #expect(try killed.answer().type == .done)
        }
        #expect(s.entries().filter { $0.contains(".mr-upload-") }.count == 3)
        kill(killed.process.processIdentifier, SIGKILL)
        _ = try killed.waitForExit()
        #expect(s.entries().filter { $0.contains(".mr-upload-") }.count == 3, "SIGKILL leaves them behind")
        let next = try RunnerProcess()
        _ = try next.next(.ready)
        next.sendCommand("w", "file.write", params: ["path": s.file("t"), "content": "new", "create": true])
        #expect(try next.answer().type == .done)
        #expect(s.entries() == ["t"], "\(s.entries())")
    }

    @Test func envKeysWithEqualsAreRefused() throws {
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        for key in ["PATH=/tmp/evil:/bin", "", "A=B"] {
            r.sendCommand("e", "exec", params: ["command": "env", "env": [key: "x"], "capture_out": true])
            let a = try r.answer()
            #expect(a.code == "INVALID_CMD", "\(key): \(a.data)")
        }
    }
}

/// The journal's durability is reported, never assumed: a DONE whose journal write failed says so.
@Suite(.serialized, .enabled(if: isRoot, "mounts a small tmpfs")) struct JournalDurabilityTests {
    @Test func aFailedJournalWriteIsFlaggedOnTheDone() throws {
        let s = try Scratch()
        let dir = s.file("state")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        #expect(shell("mount -t tmpfs -o size=64k,mode=0700 tmpfs \(dir)").status == 0)
        // Lazily: the runner may still hold the journal open when this runs (a plain umount then failed with
        // EBUSY and left the tmpfs mounted under /tmp after every run).
        defer { shell("umount -l \(dir)") }
        let r = try RunnerProcess(arguments: ["--state-dir", dir])
        _ = try r.next(.ready)
        // Fill the file system, then ask for a keyed command whose result cannot be journaled.
        shell("dd if=/dev/zero of=\(dir)/filler bs=4k count=64 2>/dev/null")
        r.sendCommand(
            "k",
            "exec",
            params: ["command": "head -c 20000 /dev/zero | tr '\\0' x", "capture_out": true],
            extra: ["idempotency_key": "full-1"]
        )
        let done = try r.answer()
        #expect(done.type == .done)
        #expect(done["metadata"]?["idempotency_journal"] == .string("write_failed"), "\(done.data)")
        // Still remembered for this session.
        r.sendCommand(
            "again",
            "exec",
            params: ["command": "head -c 20000 /dev/zero | tr '\\0' x", "capture_out": true],
            extra: ["idempotency_key": "full-1"]
        )
        #expect(try r.answer()["metadata"]?["idempotent_replay"] == .string("true"))
    }
}
