import MicroRunnerProtocol
import Testing

/// Each named set holds exactly the bytes its validator allowed when it was a hand-written predicate: checked for
/// all 256 byte values against those predicates, kept here as the reference.
@Suite struct ByteSetTests {
    static func alnum(_ b: UInt8) -> Bool { (48...57).contains(b) || (65...90).contains(b) || (97...122).contains(b) }

    static let references: [(String, ByteSet, @Sendable (UInt8) -> Bool)] = [
        ("packageVersion", .packageVersion, { alnum($0) || [0x2E, 0x2B, 0x7E, 0x3A, 0x5F, 0x2D].contains($0) }),
        (
            "packageOptionValue", .packageOptionValue,
            { alnum($0) || [0x2E, 0x5F, 0x2D, 0x2B, 0x7E, 0x3A, 0x2A, 0x2C].contains($0) }
        ),
        ("unitName", .unitName, { alnum($0) || [0x3A, 0x5F, 0x2E, 0x40, 0x2D, 0x5C].contains($0) }),
        (
            "sshdUserPattern", .sshdUserPattern,
            { alnum($0) || [0x2E, 0x5F, 0x2D, 0x40, 0x2A, 0x3F, 0x3A].contains($0) }
        ),
        (
            "sudoersUser", .sudoersUser,
            { (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x5F || $0 == 0x2D }
        ),
        ("sudoersCommand", .sudoersCommand, { alnum($0) || [0x2F, 0x2E, 0x5F, 0x2D, 0x2B, 0x40, 0x20].contains($0) }),
        ("uploadID", .uploadID, { alnum($0) || $0 == 0x2D || $0 == 0x5F || $0 == 0x2E }),
        ("portableUserName", .portableUserName, { alnum($0) || [0x2E, 0x5F, 0x2D].contains($0) }),
    ]

    @Test(arguments: 0..<references.count)
    func eachSetIsItsGrammarForEveryByte(_ i: Int) {
        let (name, set, reference) = Self.references[i]
        for b in UInt8.min...UInt8.max {
            #expect(set.contains(b) == reference(b), "\(name): byte \(b)")
        }
    }

    @Test func containsAllNeedsEveryByte() {
        #expect(ByteSet.unitName.containsAll(Array("sshd@1.service".utf8)))
        #expect(!ByteSet.unitName.containsAll(Array("a b.service".utf8)))
        #expect(ByteSet.unitName.containsAll([UInt8]()))
        #expect(!ByteSet.uploadID.containsAll([0x41, 0xC3, 0xA9]))  // no byte above 0x7F, ever
    }
}
