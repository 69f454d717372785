import Foundation
import MicroRunnerHandlers
import MicroRunnerProtocol
import MicroRunnerSystem
import MicroRunnerTestSupport
import Testing

@Suite struct UnifiedDiffTests {
    @Test func smallEdit() {
        let old = Array("a\nb\nc\nd\ne\nf\ng\nh\n".utf8)
        let new = Array("a\nb\nc\nD\ne\nf\ng\nh\ni\n".utf8)
        let diff = UnifiedDiff.make(old: old, new: new, path: "/x", limit: 1 << 20)
        #expect(diff == "--- /x\n+++ /x\n@@ -1,8 +1,9 @@\n a\n b\n c\n-d\n+D\n e\n f\n g\n h\n+i\n")
    }

    @Test func separateHunksAndNewFile() {
        let old = (1...20).map { "\($0)" }.joined(separator: "\n") + "\n"
        let new = old.replacingFirst("2\n", "two\n").replacingFirst("19\n", "nineteen\n")
        let diff = UnifiedDiff.make(old: Array(old.utf8), new: Array(new.utf8), path: "/f", limit: 1 << 20)
        #expect(diff.components("@@ ") == 2)
        #expect(
            UnifiedDiff.make(old: [], new: Array("x\n".utf8), path: "/n", limit: 100)
                == "--- /n\n+++ /n\n@@ -0,0 +1,1 @@\n+x\n"
        )
        #expect(UnifiedDiff.make(old: [0, 1], new: [2], path: "/b", limit: 100).contains("binary"))
        #expect(UnifiedDiff.make(old: Array("same\n".utf8), new: Array("same\n".utf8), path: "/s", limit: 100) == "")
    }
}

extension String {
    func replacingFirst(_ a: String, _ b: String) -> String {
        guard let r = range(of: a) else { return self }
        return replacingCharacters(in: r, with: b)
    }

    func components(_ separator: String) -> Int {
        var count = 0
        var rest = self[...]
        while let r = rest.range(of: separator) {
            count += 1
            rest = rest[r.upperBound...]
        }
        return count
    }
}

@Suite struct FileSystemTests {
    @Test(arguments: [("0644", 0o644), ("644", 0o644), ("0o755", 0o755), ("4755", 0o4755), ("07777", 0o7777)])
    func parsesModes(_ text: String, _ mode: Int) {
        #expect(FileSystem.parseMode(text) == mode_t(mode))
    }

    @Test(arguments: ["", "8", "0999", "rwx", "-644", "777777", "0o"])
    func rejectsModes(_ text: String) {
        #expect(FileSystem.parseMode(text) == nil)
    }

    @Test func resolvesUsersAndGroupsFromFiles() {
        #expect(FileSystem.userID("root") == 0)
        #expect(FileSystem.userID("1234") == 1234)
        #expect(FileSystem.userID("no-such-user-xyz") == nil)
        #expect(FileSystem.groupID("root") == 0)
        #expect(FileSystem.octalMode(0o100644) == "0644")
    }
}
@Suite struct LeftoverNameTests {
    @Test(
        arguments: [
            (".f.mr-tmp-123-0a1b2c3d4e5f", 123),
            (".sshd_config.mr-bak-4194304-ff", 4_194_304),
            (".a.mr-b.mr-upload-7-1", 7),  // NAME may itself contain .mr-: the last one counts
            (".x.mr-journal-9-ab", 9),  // a killed runner's journal rewrite is swept like any staged file
            ("f.mr-tmp-1-ab", nil),  // not a dot name
            (".f.mr-tmp-1-", nil),
            (".f.mr-tmp--ab", nil),
            (".f.mr-tmp-0-ab", nil),
            (".f.mr-tmp-1-AB", nil),
            (".f.mr-tmp-1-ab.conf", nil),
            (".f.mr-tmp-99999999999-ab", nil),  // no pid: too many digits
            (".f.mr-tmp-2147483648-ab", nil),  // above Int32.max
            (".mr-tmp-1-ab", nil),  // no NAME
            (".f.mr-", nil),
            ("", nil),
        ] as [(String, Int32?)]
    )
    func leftoverNamesAndTheirPIDs(_ name: String, _ pid: Int32?) {
        let bytes = Array(name.utf8)
        #expect(bytes.withUnsafeBufferPointer { StagedFile.leftoverPID($0) } == pid)
    }
}
