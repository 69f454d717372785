import Foundation
import MicroRunnerClient
import MicroRunnerTestSupport
import Testing

/// `put` of large files: streamed from disk in chunks with a bounded window, verified by size and SHA-256, and
/// not sent at all when the host already has the bytes (asked with `file.digest` first).
@Suite(.serialized) struct BulkPutTests {
    /// A runner that logs every line it is sent to `log` (a copy of the real runner behind `tee`), so a test can
    /// see what crossed the wire.
    static func loggingRunner(in dir: String) throws -> (runner: String, log: String) {
        let log = dir + "/sent.log"
        // Its own copy, kept (--keep): the runner deletes the file it runs from at exit.
        try BuiltRunner.copy(to: dir + "/real-runner")
        try "#!/bin/sh\ntee -a \(log) | \(dir)/real-runner --keep \"$@\"\n".write(
            toFile: dir + "/runner",
            atomically: true,
            encoding: .utf8
        )
        chmod(dir + "/runner", 0o755)
        return (dir + "/runner", log)
    }

    /// Changes one byte of `path` for certain: writing a fixed letter over random bytes left the file as it was
    /// once in 256 runs (a fresh-clone run met it: "unchanged", and nothing was sent).
    static func flipByte(_ path: String, at offset: Int) {
        let fd = open(path, O_RDWR)
        defer { close(fd) }
        var byte: UInt8 = 0
        _ = pread(fd, &byte, 1, off_t(offset))
        byte ^= 0xFF
        _ = pwrite(fd, &byte, 1, off_t(offset))
    }

    static func sentWrites(_ log: String) -> Int {
        // Raw content (ext file.raw_content) follows its line in the log: ~100 MB of binary here, searched as
        // bytes (as a String it took this test ~10 minutes in a debug build).
        guard let data = FileManager.default.contents(atPath: log) else { return 0 }
        let pattern = Data(#""type":"file.write""#.utf8)
        var count = 0
        var from = data.startIndex
        while let found = data.range(of: pattern, in: from..<data.endIndex) {
            count += 1
            from = found.upperBound
        }
        return count
    }

    @Test func aLargeFileIsStreamedVerifiedAndNotResentWhenUnchanged() throws {
        let dir = NSTemporaryDirectory() + "mr-bulk-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (runner, log) = try Self.loggingRunner(in: dir)
        let source = dir + "/source.bin"
        let target = dir + "/target.bin"
        // 48 MiB of random bytes: 12 chunks of 4 MiB, more than the window of 4.
        shell("head -c \(48 << 20) /dev/urandom > \(source)")

        let (first, rss, _) = try mrctlMeasured(["put", "--runner", runner, "--host", "local", source, target])
        #expect(first.status == 0, "\(first.stdout) \(first.stderr)")
        #expect(shell("cmp \(source) \(target)").status == 0, "the host's copy is byte for byte the file")
        #expect(Self.sentWrites(log) == 12, "12 chunks: \(Self.sentWrites(log))")
        // The file is never held whole: 48 MiB as base64 lines would be ~130 MB with copies.
        #expect(rss < 96 << 10, "peak RSS \(rss >> 10) MiB")

        // Same bytes, new mtime: asked, not sent.
        shell("touch \(source)")
        let before = Self.sentWrites(log)
        let again = try mrctl(["put", "--runner", runner, "--host", "local", source, target])
        #expect(again.status == 0 && again.stdout.contains("unchanged"), "\(again.stdout)")
        #expect(Self.sentWrites(log) == before, "nothing was sent for an unchanged file")
        #expect(shell("grep -c digest_only \(log)").output.trimmingCharacters(in: .whitespacesAndNewlines) == "2")

        // One byte changed in the middle: sent again, and the host has it.
        Self.flipByte(source, at: 24 << 20)
        let changed = try mrctl(["put", "--runner", runner, "--host", "local", source, target])
        #expect(changed.status == 0 && changed.stdout.contains("wrote \(48 << 20) bytes"), "\(changed.stdout)")
        #expect(shell("cmp \(source) \(target)").status == 0)
        #expect(Self.sentWrites(log) == before + 12)

        // A dry run of a large changed file answers from the digest: nothing sent, nothing changed.
        Self.flipByte(source, at: 24 << 20)
        let dry = try mrctl(["put", "--dry-run", "--runner", runner, "--host", "local", source, target])
        #expect(dry.status == 0 && dry.stdout.contains("would write"), "\(dry.stdout)")
        #expect(Self.sentWrites(log) == before + 12, "a dry run sent no content")
        #expect(shell("cmp -s \(source) \(target)").status != 0, "the host's file was not changed")
        #expect(
            (try? FileManager.default.contentsOfDirectory(atPath: dir))?.filter { $0.contains(".mr-") }.isEmpty == true,
            "no staging file left"
        )
    }

    /// The host is asked for its copy while the local file is still being hashed, so that for an unchanged file
    /// the two hashes run side by side: the local digest here finishes only once the runner has been sent the
    /// digest request (and fails the put if that never happens).
    @Test func theHostIsAskedWhileTheLocalFileIsStillBeingHashed() async throws {
        let dir = NSTemporaryDirectory() + "mr-overlap-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (runner, log) = try Self.loggingRunner(in: dir)
        let source = dir + "/source.bin"
        let target = dir + "/target.bin"
        shell("head -c \(9 << 20) /dev/urandom > \(source) && cp \(source) \(target)")
        let pending = Task { () async throws -> LocalFileDigest in
            for _ in 0..<1000 {
                if let sent = FileManager.default.contents(atPath: log), sent.range(of: Data("digest_only".utf8)) != nil
                {
                    return try LocalFileDigest(path: source)
                }
                try await Task.sleep(for: .milliseconds(10))
            }
            throw TestFailure("the host was not asked for its copy while the local digest was pending")
        }
        let result = try await RunnerClient.withRunner(
            transport: LocalTransport(),
            runner: try RunnerBinary(path: runner)
        ) { client in
            try await client.putFile(contentsOf: PendingFileDigest(path: source, digest: pending), to: target)
        }
        #expect(result.changed == false)
        #expect(Self.sentWrites(log) == 0, "nothing sent for an unchanged file")

        Self.flipByte(source, at: 4 << 20)
        let changed = try await RunnerClient.withRunner(
            transport: LocalTransport(),
            runner: try RunnerBinary(path: runner)
        ) { client in
            try await client.putFile(contentsOf: LocalFileDigest.start(path: source), to: target)
        }
        #expect(changed.changed != false && changed.bytesWritten == 9 << 20)
        #expect(shell("cmp \(source) \(target)").status == 0)
    }
}

extension BulkPutTests {
    /// A digest that finishes only once the log shows a file.write on its way to the host (then runs `then`):
    /// a put that waited for the whole local hash before sending would never let it finish.
    static func digestAfterTheFirstWrite(
        of source: String,
        log: String,
        then: @escaping @Sendable () -> Void = {}
    ) -> PendingFileDigest {
        let task = Task { () async throws -> LocalFileDigest in
            for _ in 0..<1000 {
                if sentWrites(log) > 0 {
                    then()
                    return try LocalFileDigest(path: source)
                }
                try await Task.sleep(for: .milliseconds(10))
            }
            throw TestFailure("no chunk was sent while the local digest was pending")
        }
        return PendingFileDigest(path: source, digest: task)
    }

    @Test func aFileMissingOnTheHostIsSentWhileItIsStillBeingHashed() async throws {
        let dir = NSTemporaryDirectory() + "mr-early-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (runner, log) = try Self.loggingRunner(in: dir)
        let source = dir + "/source.bin"
        shell("head -c \(9 << 20) /dev/urandom > \(source)")
        for target in [dir + "/missing.bin", dir + "/shorter.bin"] {
            if target.hasSuffix("shorter.bin") { shell("head -c \(5 << 20) \(source) > \(target)") }
            let result = try await RunnerClient.withRunner(
                transport: LocalTransport(),
                runner: try RunnerBinary(path: runner)
            ) { client in
                try await client.putFile(contentsOf: Self.digestAfterTheFirstWrite(of: source, log: log), to: target)
            }
            #expect(result.changed != false && result.bytesWritten == 9 << 20, "\(target)")
            #expect(shell("cmp \(source) \(target)").status == 0, "\(target)")
            try FileManager.default.removeItem(atPath: log)
        }
    }

    /// A file that shrinks while its chunks go from the page cache into ssh's pipe (splice): the chunk that
    /// announced more bytes than are left is made up with zeros, so the stream stays in step (the same session
    /// runs the next command), the put fails as changed, and the target is left as it was.
    @Test func aFileThatShrinksWhileItIsSentFailsAndTheSessionGoesOn() async throws {
        let dir = NSTemporaryDirectory() + "mr-shrunk-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let source = dir + "/source.bin"
        let target = dir + "/target"
        shell("head -c \(13 << 20) /dev/urandom > \(source)")
        try "the old content\n".write(toFile: target, atomically: true, encoding: .utf8)
        // Measured at 13 MiB, then cut to 5 MiB before anything is sent: the second 4 MiB chunk finds 1 MiB.
        let pending = PendingFileDigest(path: source, digest: Task { try LocalFileDigest(path: source) })
        #expect(truncate(source, off_t(5 << 20)) == 0)
        let (failure, after): (String, String) = try await RunnerClient.withRunner(
            transport: LocalTransport(),
            runner: try RunnerBinary(path: runnerPath)
        ) { client in
            var failure = "it succeeded"
            do {
                _ = try await client.putFile(contentsOf: pending, to: target, window: 1)
            } catch {
                failure = "\(error)"
            }
            return (failure, try await client.exec(ExecParams(command: "echo still in step")).stdout)
        }
        #expect(failure.contains("the file ended before the bytes announced were sent"), "\(failure)")
        #expect(after == "still in step\n")
        #expect((try? String(contentsOfFile: target, encoding: .utf8)) == "the old content\n")
        let left = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.contains(".mr-") }
        #expect(left.isEmpty, "left behind: \(left)")
    }

    /// fetch checks the whole file's digest itself, so it asks the host not to hash each window again
    /// (ext `file.skip_checksum`), and the file still lands verified.
    @Test func fetchAsksTheHostNotToHashEachWindow() async throws {
        let dir = NSTemporaryDirectory() + "mr-skip-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (runner, log) = try Self.loggingRunner(in: dir)
        shell("head -c \(9 << 20) /dev/urandom > \(dir)/source.bin")
        let r = try await RunnerClient.withRunner(transport: LocalTransport(), runner: try RunnerBinary(path: runner)) {
            client in try await client.fetchFile(dir + "/source.bin", to: dir + "/back.bin")
        }
        let local = try LocalFileDigest(path: dir + "/source.bin")
        #expect(r.size == 9 << 20 && r.fileChecksum == local.sha256)
        #expect(shell("cmp \(dir)/source.bin \(dir)/back.bin").status == 0)
        let asked = shell("grep -c skip_checksum \(log)").output.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(asked == "3", "three windows of 4 MiB, each asked without its checksum: \(asked)")
        let running = shell("grep -c running_checksum \(log)").output.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(running == "3", "the sum kept across them instead: \(running)")
        #expect(shell("grep -c digest_only \(log)").output.hasPrefix("0"), "no separate pass over the file there")
    }

    /// A file written to while it is fetched window by window fails (its identity changes between windows)
    /// and nothing is saved; two fetches at once on one session (each breaking the other's running sum) both
    /// land whole, verified by a digest asked afterwards.
    @Test func fetchCatchesAFileChangedBetweenWindowsAndSurvivesInterleavedReads() async throws {
        let dir = NSTemporaryDirectory() + "mr-fetch-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (runner, log) = try Self.loggingRunner(in: dir)
        shell("head -c \(64 << 20) /dev/urandom > \(dir)/growing.bin")
        let source = dir + "/growing.bin"
        // 1,024 windows of 64 KiB: the file grows once the second is asked for (the client asks for more only
        // after the first answer said the size, so the first window saw the file before it grew), long before
        // the last.
        let writer = Thread {
            func asked() -> Int {
                let text = FileManager.default.contents(atPath: log).map { String(decoding: $0, as: UTF8.self) } ?? ""
                return text.components(separatedBy: "running_checksum").count - 1
            }
            while asked() < 2 { usleep(200) }
            let fd = open(source, O_WRONLY | O_APPEND)
            _ = write(fd, "more", 4)
            close(fd)
        }
        writer.start()
        let failure: String = try await RunnerClient.withRunner(
            transport: LocalTransport(),
            runner: try RunnerBinary(path: runner)
        ) { client in
            do {
                _ = try await client.fetchFile(source, to: dir + "/back.bin", windowBytes: 64 << 10)
                return "it succeeded"
            } catch {
                return "\(error)"
            }
        }
        #expect(failure.contains("changed while it was read"), "\(failure)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/back.bin"))
        let staged = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter {
            $0.contains("mrctl-fetch")
        }
        #expect(staged.isEmpty, "\(staged)")

        shell("head -c \(3 << 20) /dev/urandom > \(dir)/a.bin; head -c \(3 << 20) /dev/urandom > \(dir)/b.bin")
        let (a, b) = try await RunnerClient.withRunner(
            transport: LocalTransport(),
            runner: try RunnerBinary(path: runner)
        ) {
            client in
            async let a = client.fetchFile(dir + "/a.bin", to: dir + "/a.back", windowBytes: 64 << 10)
            async let b = client.fetchFile(dir + "/b.bin", to: dir + "/b.back", windowBytes: 64 << 10)
            return try await (a, b)
        }
        #expect(shell("cmp \(dir)/a.bin \(dir)/a.back && cmp \(dir)/b.bin \(dir)/b.back").status == 0)
        #expect(a.fileChecksum == (try LocalFileDigest(path: dir + "/a.bin")).sha256)
        #expect(b.fileChecksum == (try LocalFileDigest(path: dir + "/b.bin")).sha256)
        let digests = shell("grep -c digest_only \(log)").output.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(digests != "0", "the running sums were broken by the other read and asked for afterwards")
    }

    @Test func aFileThatGrowsWhileItIsSentNeverLands() async throws {
        let dir = NSTemporaryDirectory() + "mr-grown-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (runner, log) = try Self.loggingRunner(in: dir)
        let source = dir + "/source.bin"
        let target = dir + "/target"
        shell("head -c \(9 << 20) /dev/urandom > \(source)")
        try "the old content\n".write(toFile: target, atomically: true, encoding: .utf8)
        // Measured at 9 MiB, sent as 9 MiB, hashed at 9 MiB and 1 byte: the hash is not of what was sent.
        let pending = Self.digestAfterTheFirstWrite(of: source, log: log) { shell("printf x >> \(source)") }
        let failure: String = try await RunnerClient.withRunner(
            transport: LocalTransport(),
            runner: try RunnerBinary(path: runner)
        ) { client in
            do {
                _ = try await client.putFile(contentsOf: pending, to: target)
                return "it succeeded"
            } catch {
                return "\(error)"
            }
        }
        #expect(failure.contains("changed while it was sent"), "\(failure)")
        #expect((try? String(contentsOfFile: target, encoding: .utf8)) == "the old content\n")
        let left = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.contains(".mr-") }
        #expect(left.isEmpty, "left behind: \(left)")
    }
}

/// The bytes that reach the host are the ones that were hashed, or nothing changes there: the runner checks the
/// whole upload against the hash the controller took before sending (ext `file.raw_content`'s `file_sha256`).
@Suite(.serialized) struct ChangedWhileSentTests {
    @Test func aFileThatChangedAfterItWasHashedNeverLands() async throws {
        let dir = NSTemporaryDirectory() + "mr-changed-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "the old content\n".write(toFile: dir + "/target", atomically: true, encoding: .utf8)
        shell("head -c \(10 << 20) /dev/urandom > \(dir)/source.bin")
        let digest = try LocalFileDigest(path: dir + "/source.bin")
        // Same size, one byte different: what is sent is no longer what was hashed.
        BulkPutTests.flipByte(dir + "/source.bin", at: 5 << 20)
        let runner = try RunnerBinary(path: runnerPath)
        let failure: String = try await RunnerClient.withRunner(transport: LocalTransport(), runner: runner) { client in
            let raw = await client.supports("file.raw_content")
            #expect(raw)
            do {
                _ = try await client.putFile(contentsOf: digest, to: dir + "/target")
                return "it succeeded"
            } catch {
                return "\(error)"
            }
        }
        #expect(failure.contains("file_sha256") && failure.contains("left untouched"), "\(failure)")
        #expect((try? String(contentsOfFile: dir + "/target", encoding: .utf8)) == "the old content\n")
        let left = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.contains(".mr-") }
        #expect(left.isEmpty, "left behind: \(left)")
    }
}

/// A gibibyte there and back (issue 22's size test): random bytes, put then fetched through mrctl and the real
/// runner, equal byte for byte, and each mrctl (with the runner it waited for) under 64 MB at its peak.
@Suite(.serialized) struct GibibyteRoundTripTests {
    @Test func aGibibyteRoundTripsThroughPutAndFetchInBoundedMemory() throws {
        let dir = NSTemporaryDirectory() + "mr-gib-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(shell("head -c \(1 << 30) /dev/urandom > \(dir)/source.bin").status == 0)
        let (put, putRSS, _) = try mrctlMeasured([
            "put", "--runner", runnerPath, "--host", "local", dir + "/source.bin", dir + "/target.bin",
        ])
        #expect(put.status == 0, "\(put.stdout) \(put.stderr)")
        let (fetch, fetchRSS, _) = try mrctlMeasured([
            "fetch", "--runner", runnerPath, "--host", "local", dir + "/target.bin", dir + "/back",
        ])
        #expect(fetch.status == 0, "\(fetch.stdout) \(fetch.stderr)")
        // cmp, not sha256sum: the same answer in a fifth of the time (coreutils hashes 1 GiB in ~4.8 s here).
        #expect(shell("cmp \(dir)/source.bin \(dir)/target.bin").status == 0, "the host's copy is the file")
        #expect(shell("cmp \(dir)/source.bin \(dir)/back/local\(dir)/target.bin").status == 0, "and back again")
        #expect(putRSS < 64 << 10, "put: peak RSS \(putRSS >> 10) MiB")
        #expect(fetchRSS < 64 << 10, "fetch: peak RSS \(fetchRSS >> 10) MiB")
        #expect(
            (try? FileManager.default.contentsOfDirectory(atPath: dir))?.filter { $0.contains(".mr-") }.isEmpty == true,
            "no staging file left"
        )
    }
}

/// Ctrl-C in the middle of a large put: the old file stays whole and no staging file is left.
@Suite(.serialized) struct InterruptedPutTests {
    @Test func anInterruptedPutLeavesTheOldFile() throws {
        let dir = NSTemporaryDirectory() + "mr-cut-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "the old content\n".write(toFile: dir + "/target", atomically: true, encoding: .utf8)
        shell("head -c \(256 << 20) /dev/urandom > \(dir)/big.bin")
        let p = try startWithSignalsUnblocked([
            mrctlPath, "put", "--runner", runnerPath, "--host", "local", dir + "/big.bin", dir + "/target",
        ]) {
            $0.standardOutput = FileHandle.nullDevice
            $0.standardError = FileHandle.nullDevice
        }
        // Wait until the upload is under way (its staging file exists beside the target), then interrupt.
        var staging = false
        for _ in 0..<600 where !staging {
            staging = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).contains {
                $0.contains(".mr-")
            }
            if !staging { usleep(20_000) }
        }
        kill(p.processIdentifier, SIGINT)
        p.waitUntilExit()
        #expect(staging, "the upload had started")
        #expect(p.terminationStatus == 130)
        #expect((try? String(contentsOfFile: dir + "/target", encoding: .utf8)) == "the old content\n")
        let left = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.contains(".mr-") }
        #expect(left.isEmpty, "left behind: \(left)")
    }
}

/// The typed calls for the system command types, through the library alone (a root runner here).
@Suite(.enabled(if: geteuid() == 0, "a root runner")) struct TypedSystemCallTests {
    @Test func packageAndSudoersAreTypedCalls() async throws {
        let runner = try RunnerBinary(path: runnerPath)
        try await RunnerClient.withRunner(transport: LocalTransport(), runner: runner) { client in
            let absent = try await client.package("mr-no-such-package-typed", state: .absent)
            #expect(absent.action == "already_absent" && !absent.changed)
            let rule = try await client.sudoers(
                user: "mr-typed-test",
                commands: ["/usr/bin/true"],
                noPassword: true,
                dryRun: true
            )
            #expect(rule.changed && rule.action == "created")
            #expect(!FileManager.default.fileExists(atPath: rule.filePath), "a dry run installs nothing")
        }
    }
}
