/// A file's permission bits (`0o644`), checked when made rather than on the host.
public struct FileMode: Sendable, Hashable, ExpressibleByIntegerLiteral, CustomStringConvertible {
    /// The bits, 0...0o7777 (permissions, setuid, setgid, sticky).
    public let bits: Int

    /// A mode from its bits, or `nil` outside 0...0o7777.
    public init?(bits: Int) {
        guard (0...0o7777).contains(bits) else { return nil }
        self.bits = bits
    }

    /// A mode from an octal literal: `0o644`. A literal outside 0...0o7777 is a programming error.
    public init(integerLiteral value: Int) {
        precondition((0...0o7777).contains(value), "file mode \(value) is outside 0...0o7777")
        bits = value
    }

    /// A mode from octal text, `644` or `0644` (as `chmod` takes it), or `nil` when it is not one.
    public init?(_ text: String) {
        guard (1...5).contains(text.count), text.allSatisfy({ ("0"..."7").contains($0) }), let v = Int(text, radix: 8)
        else { return nil }
        self.init(bits: v)
    }

    /// Four octal digits, as the wire carries it: `0644`.
    public var description: String {
        let digits = String(bits, radix: 8)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }
}
