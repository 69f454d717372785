import Foundation
import MicroRunnerSystem
import MicroRunnerTestSupport
import Testing

/// `Sys.forEachName`: every entry of a directory, read through a descriptor of its own.
@Suite struct DirectoryListingTests {
    /// Every name from 1 to 255 bytes, in a directory large enough to need many getdents reads.
    @Test func everyNameComesBackWhole() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mr-list-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var made: Set<String> = [".", ".."]
        for length in 1...255 {
            for variant in 0..<8 {
                let name = String(repeating: "x", count: length - 1) + String(variant)
                close(open(dir + "/" + name, O_WRONLY | O_CREAT, 0o644))
                made.insert(name)
            }
        }
        let fd = open(dir, O_RDONLY | O_DIRECTORY)
        try #require(fd >= 0)
        defer { close(fd) }
        var seen: [String] = []
        try Sys.forEachName(inDirectory: fd) { seen.append(String(decoding: $0, as: UTF8.self)) }
        #expect(seen.count == made.count)
        #expect(Set(seen) == made)
        // The caller's descriptor is not used for the listing: a second pass sees everything again.
        var again = 0
        try Sys.forEachName(inDirectory: fd) { _ in again += 1 }
        #expect(again == made.count)
    }

    @Test func aFileIsNoDirectory() throws {
        let fd = open("/proc/self/status", O_RDONLY)
        try #require(fd >= 0)
        defer { close(fd) }
        #expect(throws: SystemError(ENOTDIR)) { try Sys.forEachName(inDirectory: fd) { _ in } }
    }
}
