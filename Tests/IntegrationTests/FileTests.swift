import Foundation
import MicroRunnerProtocol
import MicroRunnerTestSupport
import Testing

let isRoot = geteuid() == 0

/// A scratch directory, removed (and unmounted, if a test mounted it) at the end.
final class Scratch {
    let path: String
    var mounted = false

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("mr-files-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit {
        if mounted { _ = shell("umount \(path)") }
        try? FileManager.default.removeItem(atPath: path)
    }

    func file(_ name: String) -> String { path + "/" + name }

    func write(_ name: String, _ text: String, mode: Int = 0o644) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: file(name)))
        chmod(file(name), mode_t(mode))
    }

    func read(_ name: String) -> String? {
        FileManager.default.contents(atPath: file(name)).map { String(decoding: $0, as: UTF8.self) }
    }

    func entries() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted()
    }
}

/// A real unprivileged user for owner and permission tests (created once, kept).
enum TestUser {
    static let name = "mr-test-owner"
    static let ready: Bool = {
        guard isRoot else { return false }
        return ensureTestUser(name)
    }()
    static var uid: String { shell("id -u \(name)").output.trimmingCharacters(in: .whitespacesAndNewlines) }
    static var gid: String { shell("id -g \(name)").output.trimmingCharacters(in: .whitespacesAndNewlines) }
}

func sha256(_ path: String) -> String {
    String(shell("sha256sum \(path)").output.prefix(64))
}

func statLine(_ path: String) -> String {
    shell("stat -c '%a %u %g %i' \(path)").output.trimmingCharacters(in: .whitespacesAndNewlines)
}

@Suite(.serialized) struct FileWriteTests {
    @Test(.enabled(if: isRoot, "sets a non-root owner")) func createsWithModeOwnerAndGroup() throws {
        #expect(TestUser.ready)
        let s = try Scratch()
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        let target = s.file("app.conf")
        r.sendCommand(
            "w",
            "file.write",
            params: [
                "path": target, "content": "key=1\n", "mode": "0640", "owner": TestUser.name, "group": TestUser.name,
                "create": true,
            ]
        )
        let done = try r.answer()
        #expect(done.type == .done, "\(done.data)")
        #expect(done.result["created"] == .bool(true))
        #expect(done.result["changed"] == .bool(true))
        #expect(done.result["bytes_written"]?.intValue == 6)
        #expect(done.result["checksum"] == .string(sha256(target)))
        #expect(statLine(target).hasPrefix("640 \(TestUser.uid) \(TestUser.gid) "))
        #expect(s.read("app.conf") == "key=1\n")
        #expect(s.entries() == ["app.conf"])  // no temporary files left behind

        // Numeric ids work too, and the same content+mode+owner is not written again.
        let inode = statLine(target)
        r.sendCommand(
            "again",
            "file.write",
            params: [
                "path": target, "content": "key=1\n", "mode": "0640", "owner": TestUser.uid, "group": TestUser.gid,
            ]
        )
        let again = try r.answer()
        #expect(again.result["changed"] == .bool(false))
        #expect(again.result["bytes_written"]?.intValue == 0)
        #expect(statLine(target) == inode)  // same inode: nothing was replaced

        // A mode change alone is a change.
        r.sendCommand("mode", "file.write", params: ["path": target, "content": "key=1\n", "mode": "0600"])
        #expect(try r.answer().result["changed"] == .bool(true))
        #expect(statLine(target).hasPrefix("600 \(TestUser.uid) "))  // the owner is kept when not given

        r.sendCommand("nouser", "file.write", params: ["path": target, "content": "x", "owner": "no-such-user-xyz"])
        let nouser = try r.answer()
        #expect(nouser.code == "INVALID_CMD")
        #expect(nouser.message.contains("no-such-user-xyz"))
    }

    @Test func missingFileNeedsCreateAndMissingParentIsNamed() throws {
        let s = try Scratch()
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        r.sendCommand("a", "file.write", params: ["path": s.file("new"), "content": "x"])
        let a = try r.answer()
        #expect(a.code == "NOT_FOUND")
        #expect(a.message.contains("create"))
        #expect(s.entries().isEmpty)
        r.sendCommand("b", "file.write", params: ["path": s.file("no/such/dir/f"), "content": "x"])
        let b = try r.answer()
        #expect(b.code == "NOT_FOUND")
        #expect(b.message.contains("does not exist"), "\(b.message)")
        #expect(s.entries().isEmpty, "nothing is created without create: true")
        // PROTOCOL.md: with create, missing parents are made (0755), as the Go runner does.
        r.sendCommand("b2", "file.write", params: ["path": s.file("no/such/dir/f"), "content": "x", "create": true])
        #expect(try r.answer().type == .done)
        #expect(try String(contentsOfFile: s.file("no/such/dir/f"), encoding: .utf8) == "x")
        #expect(statLine(s.file("no/such")).hasPrefix("755 "))
        r.sendCommand("c", "file.write", params: ["path": s.path, "content": "x", "create": true])
        #expect(try r.answer().code == "INVALID_CMD")
        r.sendCommand("d", "file.write", params: ["path": s.file("m"), "content": "x", "mode": "0999", "create": true])
        #expect(try r.answer().code == "INVALID_CMD")
    }

    @Test func backupKeepsTheOldFileExactly() throws {
        let s = try Scratch()
        try s.write("motd", "old text\n", mode: 0o604)
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        r.sendCommand("b", "file.write", params: ["path": s.file("motd"), "content": "new text\n", "backup": true])
        let done = try r.answer()
        let backup = try #require(done.result["backup_path"]?.stringValue)
        #expect(backup.hasPrefix(s.file("motd.")))
        #expect(backup.hasSuffix("~"))
        #expect(FileManager.default.contents(atPath: backup) == Data("old text\n".utf8))
        #expect(statLine(backup).hasPrefix("604 "))
        #expect(s.read("motd") == "new text\n")
        #expect(statLine(s.file("motd")).hasPrefix("604 "))  // mode kept when not given
        // Unchanged content: no second backup.
        r.sendCommand("b2", "file.write", params: ["path": s.file("motd"), "content": "new text\n", "backup": true])
        let unchanged = try r.answer()
        #expect(unchanged.result["changed"] == .bool(false))
        #expect(unchanged.result["backup_path"] == nil)
        #expect(s.entries().count == 2)
    }

    @Test func dryRunShowsADiffAndWritesNothing() throws {
        let s = try Scratch()
        try s.write("cfg", "a\nb\nc\n")
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        r.sendCommand(
            "d",
            "file.write",
            params: ["path": s.file("cfg"), "content": "a\nB\nc\nd\n"],
            extra: ["dry_run": true]
        )
        let done = try r.answer()
        #expect(done.result["changed"] == .bool(true))
        let diff = try #require(done.result["diff"]?.stringValue)
        #expect(
            diff.contains("-b\n") && diff.contains("+B\n") && diff.contains("+d\n") && diff.contains("@@ -1,3 +1,4 @@")
        )
        #expect(s.read("cfg") == "a\nb\nc\n")
        #expect(s.entries() == ["cfg"])
        r.sendCommand(
            "same",
            "file.write",
            params: ["path": s.file("cfg"), "content": "a\nb\nc\n"],
            extra: ["dry_run": true]
        )
        #expect(try r.answer().result["changed"] == .bool(false))
    }

    @Test func binaryContentRoundTripsThroughBase64() throws {
        let s = try Scratch()
        let bytes = (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        r.sendCommand(
            "w",
            "file.write",
            params: ["path": s.file("bin"), "content_base64": Data(bytes).base64EncodedString(), "create": true]
        )
        #expect(try r.answer().type == .done)
        #expect(FileManager.default.contents(atPath: s.file("bin")) == Data(bytes))
        r.sendCommand("r", "file.read", params: ["path": s.file("bin")])
        let read = try r.answer()
        #expect(read.result["encoding"] == .string("base64"))
        #expect(Data(base64Encoded: read.result["content"]?.stringValue ?? "") == Data(bytes))
        r.sendCommand("bad", "file.write", params: ["path": s.file("bin"), "content_base64": "!!notbase64"])
        #expect(try r.answer().code == "INVALID_CMD")
        #expect(FileManager.default.contents(atPath: s.file("bin")) == Data(bytes))
    }

    @Test(.enabled(if: isRoot, "mounts a tmpfs")) func fullDiskLeavesTheOldFileIntact() throws {
        let s = try Scratch()
        #expect(shell("mount -t tmpfs -o size=64k tmpfs \(s.path)").status == 0)
        s.mounted = true
        try s.write("data", "the old content\n")
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        r.sendCommand(
            "big",
            "file.write",
            params: ["path": s.file("data"), "content": String(repeating: "z", count: 200_000)]
        )
        let error = try r.answer()
        #expect(error.type == .error, "\(error.data)")
        #expect(error.message.contains("No space left"))
        #expect(error.message.contains("untouched"))
        #expect(s.read("data") == "the old content\n")
        #expect(s.entries() == ["data"])  // the temporary file is gone too
        // The runner still serves, and a write that fits still works.
        r.sendCommand("small", "file.write", params: ["path": s.file("data"), "content": "new\n"])
        #expect(try r.answer().type == .done)
        #expect(s.read("data") == "new\n")
    }

    /// Inode numbers above 2^32 (overlayfs with xino across two filesystems; XFS, btrfs and container roots give
    /// them too): the 32-bit ARM runner once trapped turning one into its 32-bit UInt (file.write died, SIGILL).
    @Test(.enabled(if: isRoot, "mounts an overlay")) func aFileWithA64BitInodeNumberIsWrittenAndRead() throws {
        let s = try Scratch()
        // The lower layer on this machine's disk, the upper on a tmpfs: two filesystems, so xino sets high bits.
        let lower = "/var/tmp/mr-lower-\(UUID().uuidString.prefix(8))"
        defer { shell("umount \(s.path)/m; umount \(s.path)/u; rm -rf \(lower)") }
        let setUp = shell(
            "mkdir -p \(lower) \(s.path)/u \(s.path)/m && echo old > \(lower)/data && mount -t tmpfs tmpfs \(s.path)/u "
                + "&& mkdir \(s.path)/u/u \(s.path)/u/w && mount -t overlay overlay -o lowerdir=\(lower),"
                + "upperdir=\(s.path)/u/u,workdir=\(s.path)/u/w,xino=on \(s.path)/m 2>&1"
        )
        try #require(setUp.status == 0, "\(setUp.output)")
        let inode = UInt64(
            shell("stat -c %i \(s.file("m/data"))").output.trimmingCharacters(in: .whitespacesAndNewlines)
        )
        try #require((inode ?? 0) > UInt64(UInt32.max), "overlayfs gave inode \(inode ?? 0)")
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        r.sendCommand("w", "file.write", params: ["path": s.file("m/data"), "content": "new\n"])
        let written = try r.answer()
        #expect(written.type == .done, "\(written.data)")
        r.sendCommand("r", "file.read", params: ["path": s.file("m/data")])
        #expect(try r.answer().result["content"] == .string("new\n"))
        #expect(s.read("m/data") == "new\n")
    }

    @Test func writesThroughASymlinkKeepTheLink() throws {
        let s = try Scratch()
        try s.write("real", "one\n")
        try FileManager.default.createSymbolicLink(atPath: s.file("link"), withDestinationPath: s.file("real"))
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        r.sendCommand("l", "file.write", params: ["path": s.file("link"), "content": "two\n"])
        #expect(try r.answer().type == .done)
        #expect(s.read("real") == "two\n")
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: s.file("link"))) == s.file("real"))
    }

    @Test func chunkedUploadIsAtomicAndChecksOffsets() throws {
        let s = try Scratch()
        try s.write("big", "previous\n")
        let chunks = (0..<3).map { i in Data((0..<100_000).map { UInt8(truncatingIfNeeded: $0 + i) }) }
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        func send(_ id: String, _ i: Int, offset: Int, final: Bool) {
            r.sendCommand(
                id,
                "file.write",
                params: [
                    "path": s.file("big"), "upload_id": "up1", "offset": offset, "final": final,
                    "content_base64": chunks[i].base64EncodedString(), "mode": "0600",
                ]
            )
        }
        send("c0", 0, offset: 0, final: false)
        #expect(try r.answer().result["bytes_staged"]?.intValue == 100_000)
        #expect(s.read("big") == "previous\n")  // nothing visible until the final chunk
        send("c1-wrong", 1, offset: 5, final: false)
        let conflict = try r.answer()
        #expect(conflict.code == "CONFLICT")
        #expect(conflict["details"]?["bytes_staged"] == .string("100000"))
        send("c1", 1, offset: 100_000, final: false)
        #expect(try r.answer().result["bytes_staged"]?.intValue == 200_000)
        send("c2", 2, offset: 200_000, final: true)
        let done = try r.answer()
        #expect(done.result["bytes_written"]?.intValue == 300_000)
        #expect(done.result["changed"] == .bool(true))
        let whole = chunks[0] + chunks[1] + chunks[2]
        #expect(FileManager.default.contents(atPath: s.file("big")) == whole)
        #expect(done.result["checksum"] == .string(sha256(s.file("big"))))
        #expect(statLine(s.file("big")).hasPrefix("600 "))
        #expect(s.entries() == ["big"])
    }

    /// A neighbour need only fill a shared directory: reading its entries once read past musl's DIR buffer, and
    /// the runner died of SIGSEGV on the 10th write here (CI found it through the symlink-swap attack).
    @Test func aCrowdedDirectoryIsWrittenInAndTheRunnerKeepsServing() throws {
        let s = try Scratch()
        for i in 0..<3000 {
            close(open(s.file(String(i, radix: 16)), O_WRONLY | O_CREAT, 0o644))
        }
        // A leftover of a runner that is gone (no such pid) is still tidied up among them.
        let leftover = ".target.mr-tmp-\(Int32.max - 1)-abcdef"
        try s.write(leftover, "half")
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        for i in 0..<40 {
            r.sendCommand(
                "w\(i)",
                "file.write",
                params: ["path": s.file("target"), "content": "\(i)\n", "create": true]
            )
            let answer = try r.answer()
            #expect(answer.type == .done, "write \(i): \(answer.data)")
        }
        #expect(s.read("target") == "39\n")
        #expect(!s.entries().contains(leftover))
        #expect(s.entries().count == 3001)
    }

    @Test func unfinishedUploadIsRemovedAtExit() throws {
        let s = try Scratch()
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        r.sendCommand(
            "c0",
            "file.write",
            params: ["path": s.file("f"), "upload_id": "u", "offset": 0, "final": false, "content_base64": "aGVsbG8="]
        )
        #expect(try r.answer().type == .done)
        #expect(s.entries().count == 1)
        #expect(s.entries()[0].contains("mr-upload"))
        r.closeStdin()
        _ = try r.next(.exit)
        _ = try r.waitForExit()
        #expect(s.entries().isEmpty)
    }
}

@Suite(.serialized) struct FileReadTests {
    @Test func readsWindowsWithHonestTruncation() throws {
        let s = try Scratch()
        try s.write("t", "0123456789")
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        r.sendCommand("all", "file.read", params: ["path": s.file("t")])
        let all = try r.answer()
        #expect(all.result["content"] == .string("0123456789"))
        #expect(all.result["truncated"] == .bool(false))
        #expect(all.result["size"]?.intValue == 10)
        #expect(all.result["mode"] == .string("0644"))
        #expect(all.result["owner"] == .string(String(geteuid())))
        #expect(all.result["encoding"] == .string("utf8"))
        #expect(all.result["checksum"] == .string(sha256(s.file("t"))))
        r.sendCommand("w", "file.read", params: ["path": s.file("t"), "offset": 3, "max_bytes": 4])
        let w = try r.answer()
        #expect(w.result["content"] == .string("3456"))
        #expect(w.result["truncated"] == .bool(true))
        #expect(w.result["size"]?.intValue == 10)
        r.sendCommand("end", "file.read", params: ["path": s.file("t"), "offset": 6, "max_bytes": 4])
        #expect(try r.answer().result["truncated"] == .bool(false))  // exactly to the end: nothing left
    }

    @Test func errorsNameThePathAndCode() throws {
        let s = try Scratch()
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        r.sendCommand("m", "file.read", params: ["path": s.file("missing")])
        let m = try r.answer()
        #expect(m.code == "NOT_FOUND")
        #expect(m.message.contains(s.file("missing")))
        r.sendCommand("d", "file.read", params: ["path": s.path])
        let d = try r.answer()
        #expect(d.code == "INVALID_CMD")
        #expect(d.message.contains("directory"))
        r.sendCommand("f", "file.read", params: ["path": "/dev/null"])
        #expect(try r.answer().code == "INVALID_CMD")
    }

    @Test func bigFileComesBackInLinesAGoClientCanRead() throws {
        let s = try Scratch()
        // 12 MiB of text with quotes: escaped, it cannot fit one 10 MiB line.
        let size = 12 << 20
        try Data(repeating: UInt8(ascii: "\""), count: size).write(to: URL(fileURLWithPath: s.file("q")))
        let r = try RunnerProcess()
        _ = try r.next(.ready)
        var offset = 0
        var total = Data()
        while true {
            r.sendCommand("r\(offset)", "file.read", params: ["path": s.file("q"), "offset": offset])
            let a = try r.answer(timeout: 30)
            let content = Data((a.result["content"]?.stringValue ?? "").utf8)
            #expect(!content.isEmpty)
            total += content
            offset += content.count
            if a.result["truncated"] != .bool(true) { break }
            #expect(offset < size)
        }
        #expect(total.count == size)
        #expect(r.allRawLines.allSatisfy { $0.utf8.count < 10 << 20 })
    }

    @Test(.enabled(if: isRoot, "runs the runner as an unprivileged user")) func permissionDeniedAsAnotherUser() throws {
        #expect(TestUser.ready)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mr-perm-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let binary = dir + "/micro-runner"
        try BuiltRunner.copy(to: binary)
        shell("chown -R \(TestUser.name) \(dir)")
        let r = try RunnerProcess(
            arguments: ["-u", TestUser.name, "--", binary],
            binary: "/usr/sbin/runuser"
        )
        _ = try r.next(.ready)
        r.sendCommand("s", "file.read", params: ["path": "/etc/shadow"])
        let a = try r.answer()
        #expect(a.code == "PERMISSION_DENIED")
        #expect(a.message.contains("/etc/shadow"))
        r.sendCommand("w", "file.write", params: ["path": "/etc/mr-nope", "content": "x", "create": true])
        #expect(try r.answer().code == "PERMISSION_DENIED")
        r.closeStdin()
        #expect(try r.next(.exit)["self_deleted"] == .bool(true))
    }
}
