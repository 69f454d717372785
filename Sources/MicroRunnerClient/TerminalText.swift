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
        let plain = text.utf8.withContiguousStorageIfAvailable { bytes in
            bytes.allSatisfy { ($0 >= 0x20 && $0 < 0x7F) || $0 == 0x09 || $0 == 0x0A }
        }
        if plain == true { return text }
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
