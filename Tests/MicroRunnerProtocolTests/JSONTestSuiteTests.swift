import Foundation
import MicroRunnerProtocol
import Testing

/// Nicolas Seriot's JSONTestSuite, read in place from ../shared/testdata (the suite is not copied into the repo).
enum JSONTestSuite {
    static let directory: URL = {
        if let env = ProcessInfo.processInfo.environment["JSON_TEST_SUITE"] {
            return URL(fileURLWithPath: env)
        }
        // Tests/MicroRunnerProtocolTests/ -> repo root -> ../shared/testdata
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return repo.deletingLastPathComponent().appendingPathComponent("shared/testdata/JSONTestSuite/test_parsing")
    }()

    static func cases(_ prefix: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { $0.hasPrefix(prefix) && $0.hasSuffix(".json") }.sorted()
    }

    static func bytes(_ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: directory.appendingPathComponent(name)))
    }
}

@Suite struct JSONTestSuiteTests {
    @Test func suiteIsPresent() {
        // Guards the parameterized tests below against silently running on an empty list.
        #expect(JSONTestSuite.cases("y_").count >= 90)
        #expect(JSONTestSuite.cases("n_").count >= 180)
        #expect(JSONTestSuite.cases("i_").count >= 30)
    }

    @Test(arguments: JSONTestSuite.cases("y_"))
    func accepts(_ name: String) throws {
        let bytes = try JSONTestSuite.bytes(name)
        let value = try JSONReader().parse(bytes)
        // What was accepted re-serializes to JSON that parses to the same tree.
        #expect(try JSONReader().parse(JSONWriter.serialize(value)) == value)
    }

    @Test(arguments: JSONTestSuite.cases("n_"))
    func rejects(_ name: String) throws {
        let bytes = try JSONTestSuite.bytes(name)
        #expect(throws: JSONParseError.self) { try JSONReader().parse(bytes) }
    }

    @Test(arguments: JSONTestSuite.cases("i_"))
    func survives(_ name: String) throws {
        let bytes = try JSONTestSuite.bytes(name)
        // Implementation-defined: either answer is fine, but an accepted value must round-trip.
        if let value = try? JSONReader().parse(bytes) {
            #expect(try JSONReader().parse(JSONWriter.serialize(value)) == value)
        }
    }
}
