/// Host-controlled text made safe to print on a terminal: a host must not be able to rewrite what the
/// operator sees (a carriage return or CSI sequence turning `FAILED` into `OK`, `ESC[8m` hiding the summary),
/// set the window title or write the clipboard (OSC 52).
///
/// Every control character but tab and newline becomes visible as `\xHH` (C0 and DEL) or `\u{HHHH}` (C1, and
/// the bidirectional overrides and isolates U+202A-U+202E, U+2066-U+2069 that can reorder a line as shown,
/// "Trojan Source"), as `git`, `ls` and `journalctl` show such bytes. A backslash stays a backslash: the
/// escapes are for reading, not for decoding back. Text that needs none of it is returned as it is.
///
/// ```swift
/// print(TerminalText.visible(result.stdout))  // "\u{1B}]0;pwned\u{07}" is shown as text, not obeyed
/// ```
public enum TerminalText {
    /// `text` with its control characters made visible, tabs and newlines kept.
    public static func visible(_ text: String) -> String {
        // Printable ASCII, tabs and newlines (nearly all output) pass in one byte scan: a 100 MB stream of lines
        // spent ~0.3 s decoding scalars only to find nothing to escape.
        if text.utf8.withContiguousStorageIfAvailable(isPlain) == true { return text }
        guard text.unicodeScalars.contains(where: needsEscape) else { return text }
        var out = ""
        out.reserveCapacity(text.utf8.count + 16)
        for scalar in text.unicodeScalars {
            guard needsEscape(scalar) else {
                out.unicodeScalars.append(scalar)
                continue
            }
            if scalar.value < 0x80 {
                out += "\\x" + hex(scalar.value, digits: 2)
            } else {
                out += "\\u{" + hex(scalar.value, digits: 4) + "}"
            }
        }
        return out
    }

    /// Whether every byte is printable ASCII, a tab or a newline: eight bytes at a time, and byte by byte only in
    /// a word that may hold something else (the newline of each line). `allSatisfy` byte by byte was 10% of
    /// mrctl's time on a 100 MB stream.
    static func isPlain(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let base = bytes.baseAddress else { return true }
        let raw = UnsafeRawPointer(base)
        let ones: UInt64 = 0x0101_0101_0101_0101
        let high: UInt64 = 0x8080_8080_8080_8080
        var i = 0
        while i < bytes.count {
            if i + 8 <= bytes.count {
                let w = raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                // Some byte >= 0x80, < 0x20 or == 0x7F (has-less-than and has-zero-byte tests).
                let del = w ^ (ones &* 0x7F)
                if (w | ((w &- ones &* 0x20) & ~w) | ((del &- ones) & ~del)) & high == 0 {
                    i += 8
                    continue
                }
            }
            for b in bytes[i..<min(i + 8, bytes.count)] where !((b >= 0x20 && b < 0x7F) || b == 0x09 || b == 0x0A) {
                return false
            }
            i += 8
        }
        return true
    }

    /// Whether `scalar` is shown escaped: C0 but tab and newline, DEL, C1, and the bidi controls.
    public static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        let v = scalar.value
        if v < 0x20 { return v != 0x09 && v != 0x0A }
        if v < 0x7F { return false }
        if v <= 0x9F { return true }  // DEL and C1 (CSI as U+009B, OSC as U+009D on some terminals)
        return (0x202A...0x202E).contains(v) || (0x2066...0x2069).contains(v)
    }

    static func hex(_ value: UInt32, digits: Int) -> String {
        let text = String(value, radix: 16)
        return String(repeating: "0", count: max(0, digits - text.count)) + text
    }
}
