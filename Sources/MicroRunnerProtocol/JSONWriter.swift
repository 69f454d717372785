/// Serializes `JSONValue` to compact UTF-8 JSON (no insignificant whitespace).
///
/// Strings escape `"`, `\`, control characters, and U+2028/U+2029 (as Go's encoder does), so a line
/// never contains a raw newline and the output is one wire line.
public enum JSONWriter {
    /// Serializes a value.
    /// - Parameter value: the value to write.
    /// - Returns: compact JSON text.
    public static func serialize(_ value: JSONValue) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        write(value, into: &out)
        return out
    }

    /// Appends the serialization of `value` to `out`.
    public static func write(_ value: JSONValue, into out: inout [UInt8]) {
        switch value {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case .number(let n): out.append(contentsOf: n.utf8)
        case .string(let s): writeString(s, into: &out)
        case .array(let elements):
            out.append(UInt8(ascii: "["))
            for (i, element) in elements.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                write(element, into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let object):
            out.append(UInt8(ascii: "{"))
            for (i, member) in object.members.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                writeString(member.key, into: &out)
                out.append(UInt8(ascii: ":"))
                write(member.value, into: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// The serialized size of `value` when no string needs escaping (a lower bound otherwise); used to
    /// size output buffers once.
    public static func estimatedSize(of value: JSONValue) -> Int {
        switch value {
        case .null, .bool: return 5
        case .number(let n): return n.utf8.count
        case .string(let s): return s.utf8.count + 2
        case .array(let a): return a.reduce(2) { $0 + estimatedSize(of: $1) + 1 }
        case .object(let o): return o.members.reduce(2) { $0 + $1.key.utf8.count + 4 + estimatedSize(of: $1.value) }
        }
    }

    /// Appends `s` as a quoted, escaped JSON string.
    public static func writeString(_ s: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var s = s
        s.withUTF8 { utf8 in
            var runStart = 0
            var i = 0
            while i < utf8.count {
                // Fast scan: most bytes need no escape.
                i = ByteScan.firstSpecial(in: utf8, from: i, to: utf8.count, orE2: true)
                if i == utf8.count { break }
                let b = utf8[i]
                if b == 0xE2 {
                    guard i + 2 < utf8.count && utf8[i + 1] == 0x80 && (utf8[i + 2] == 0xA8 || utf8[i + 2] == 0xA9)
                    else {
                        i += 1
                        continue
                    }
                }
                out.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<i]))
                out.append(0x5C)
                switch b {
                case 0x22: out.append(0x22)
                case 0x5C: out.append(0x5C)
                case 0x0A: out.append(UInt8(ascii: "n"))
                case 0x0D: out.append(UInt8(ascii: "r"))
                case 0x09: out.append(UInt8(ascii: "t"))
                case 0xE2:
                    out.append(contentsOf: [UInt8(ascii: "u"), 0x32, 0x30, 0x32, utf8[i + 2] == 0xA8 ? 0x38 : 0x39])
                    i += 2
                default:
                    out.append(contentsOf: [UInt8(ascii: "u"), 0x30, 0x30, hexDigit(b >> 4), hexDigit(b & 0xF)])
                }
                i += 1
                runStart = i
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<utf8.count]))
        }
        out.append(UInt8(ascii: "\""))
    }

    @inline(__always)
    static func hexDigit(_ v: UInt8) -> UInt8 { v < 10 ? 0x30 + v : 0x57 + v }

    /// The number of bytes `bytes` takes inside a JSON string once escaped (quotes excluded).
    ///
    /// Used to cut output so that a wire line stays under the peer's limit.
    public static func escapedLength(of bytes: some Sequence<UInt8>) -> Int {
        var n = 0
        for b in bytes {
            switch b {
            case 0x22, 0x5C, 0x0A, 0x0D, 0x09: n += 2
            case 0x00..<0x20: n += 6
            default: n += 1
            }
        }
        return n
    }

    /// The longest prefix of the UTF-8 text `bytes` whose escaped length fits in `budget`, cut on a
    /// character boundary.
    /// - Returns: the number of bytes of that prefix.
    public static func prefixLength(of bytes: [UInt8], fittingEscaped budget: Int) -> Int {
        // Each byte escapes to at most 6: anything up to budget/6 fits without counting.
        if bytes.count * 6 <= budget { return bytes.count }
        var i = bytes.withUnsafeBufferPointer { p -> Int in
            var n = 0
            var i = 0
            while i < p.count {
                // Bytes that escape to themselves, as many as the budget has room for.
                let plainEnd = ByteScan.firstSpecial(
                    in: p,
                    from: i,
                    to: min(p.count, i + max(0, budget - n)),
                    orE2: true
                )
                n += plainEnd - i
                i = plainEnd
                if i == p.count { break }
                let cost: Int
                switch p[i] {
                case 0x22, 0x5C, 0x0A, 0x0D, 0x09: cost = 2
                case 0x00..<0x20: cost = 6
                case 0xE2: cost = 6  // worst case: U+2028/9 become 6 bytes; never under-count
                default: cost = 1
                }
                if n + cost > budget { break }
                n += cost
                i += 1
            }
            return i
        }
        // Back up to a UTF-8 boundary.
        while i > 0 && i < bytes.count && (bytes[i] & 0xC0) == 0x80 { i -= 1 }
        return i
    }
}
