import Foundation
import MicroRunnerClient
import MicroRunnerCrypto
import MicroRunnerTestSupport
import Testing

/// Where the client caches `runner` gzipped: the user's own `~/.cache/micro-runner` (found through the password
/// database, not $HOME), created if missing.
func cacheEntry(of runner: RunnerBinary) throws -> URL {
    let cache = FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/micro-runner")
    try FileManager.default.createDirectory(at: cache, withIntermediateDirectories: true)
    return cache.appendingPathComponent("\(runner.sha256).gz")
}

/// The gzip cache is a place someone else may have written: a poisoned entry is never uploaded.
@Suite(.serialized) struct RunnerBinaryCacheTests {
    @Test func aPoisonedCacheEntryIsReplacedNotUploaded() throws {
        let runner = try RunnerBinary(path: runnerPath)
        let entry = try cacheEntry(of: runner).path
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mr-cache-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // What an attacker would put there: a script, compressed, under the runner's own name.
        try "#!/bin/sh\necho pwned\n".write(toFile: dir + "/evil", atomically: true, encoding: .utf8)
        #expect(shell("gzip -6 -c \(dir)/evil > \(entry)") == 0)
        // Through the disk cache itself (gzipped() keeps what it checked once per process, so in a test process
        // that already used the runner it would not even look at the file).
        let data = try runner.gzippedUncached()
        try data.write(to: URL(fileURLWithPath: dir + "/got.gz"))
        #expect(shell("gzip -dc \(dir)/got.gz > \(dir)/got") == 0)
        let got = try Data(contentsOf: URL(fileURLWithPath: dir + "/got"))
        var h = Crypto.SHA256()
        got.withUnsafeBytes { h.update($0) }
        let uploadedIsRunner = h.finalizeHex() == runner.sha256
        #expect(uploadedIsRunner, "what is uploaded decompresses to the runner itself")
        let cached = try Data(contentsOf: URL(fileURLWithPath: entry))
        // Compared as a Bool: a failed #expect on two 3 MB collections makes the test library diff them for minutes.
        let replaced = cached == data
        #expect(replaced, "the poisoned entry was replaced by a good one")
    }

    /// A cache entry that is not gzip at all (a torn write, a full disk): gzip stops reading at once, and the
    /// client, still writing the rest into its input, gets EPIPE, replaces the entry and goes on.
    @Test func aCorruptCacheEntryIsReplaced() throws {
        let runner = try RunnerBinary(path: runnerPath)
        let entry = try cacheEntry(of: runner)
        try Data(repeating: 0x5A, count: 4 << 20).write(to: entry)
        let data = try runner.gzippedUncached()
        #expect(data.starts(with: [0x1F, 0x8B]), "a gzip stream")
        let replaced = try Data(contentsOf: entry) == data
        #expect(replaced, "the corrupt entry was replaced by the checked one")
    }

    @discardableResult
    func shell(_ command: String) -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", command]
        try? p.run()
        p.waitUntilExit()
        return p.terminationStatus
    }
}
