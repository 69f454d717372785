/// Byte-level text helpers for parsing tool output.
///
/// The runner avoids `lowercased()` and `Substring`-to-`String` comparisons: each pulls Unicode case or
/// normalization tables (~1.3 MB) into the static binary. Tool output here is ASCII where it matters.
package enum ASCII {
    /// `text` with A-Z lowered.
    package static func lower(_ text: [UInt8]) -> [UInt8] {
        text.map { $0 >= 0x41 && $0 <= 0x5A ? $0 + 0x20 : $0 }
    }

    /// Whether `haystack` contains `needle`.
    package static func contains(_ haystack: [UInt8], _ needle: String) -> Bool {
        let n = Array(needle.utf8)
        guard !n.isEmpty, haystack.count >= n.count else { return n.isEmpty }
        for i in 0...(haystack.count - n.count) where haystack[i] == n[0] {
            if Array(haystack[i..<(i + n.count)]) == n { return true }
        }
        return false
    }

    /// Whether `bytes` starts with `prefix`.
    package static func starts(_ bytes: ArraySlice<UInt8>, _ prefix: String) -> Bool {
        bytes.starts(with: prefix.utf8)
    }

    /// Lines of `bytes` (split on `\n`).
    package static func lines(_ bytes: [UInt8]) -> [ArraySlice<UInt8>] {
        bytes.split(separator: 0x0A)
    }

    /// `bytes` without leading and trailing white space (space, tab, CR, LF).
    package static func trim(_ bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        let space: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D || $0 == 0x0A }
        var s = bytes
        while let f = s.first, space(f) { s = s.dropFirst() }
        while let l = s.last, space(l) { s = s.dropLast() }
        return s
    }

    /// Bytes as a String.
    package static func string(_ bytes: ArraySlice<UInt8>) -> String {
        String(decoding: bytes, as: UTF8.self)
    }
}
