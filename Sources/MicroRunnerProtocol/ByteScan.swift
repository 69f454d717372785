/// Finding the next byte of a JSON string that is not plain text, eight bytes at a time. Byte by byte, these
/// scans over an 8 MiB file.read answer were the runner's main cost in Embedded mode: file.read of 8 MiB took
/// 144-150 ms with them and 87-98 ms without, same machine, same run.
enum ByteScan {
    /// The index of the first byte in `p[start..<end]` that is a control byte (< 0x20), `"` or `\`, or with
    /// `orE2` 0xE2 (the lead byte of U+2028/U+2029, which the writer escapes); `end` when there is none.
    @inline(__always)
    static func firstSpecial(in p: UnsafeBufferPointer<UInt8>, from start: Int, to end: Int, orE2: Bool) -> Int {
        guard let base = p.baseAddress else { return end }
        let raw = UnsafeRawPointer(base)
        let ones: UInt64 = 0x0101_0101_0101_0101
        let high: UInt64 = 0x8080_8080_8080_8080
        var i = start
        while i + 8 <= end {
            let w = raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            // Non-zero exactly when some byte is < 0x20 or equals one of the others (the has-less-than and
            // has-zero-byte tests: exact about whether such a byte exists, not about which one it is).
            let quote = w ^ (ones &* 0x22)
            let backslash = w ^ (ones &* 0x5C)
            var flagged = ((w &- ones &* 0x20) & ~w) | ((quote &- ones) & ~quote) | ((backslash &- ones) & ~backslash)
            if orE2 {
                let e2 = w ^ (ones &* 0xE2)
                flagged |= (e2 &- ones) & ~e2
            }
            if flagged & high != 0 { break }
            i += 8
        }
        while i < end {
            let b = p[i]
            if b < 0x20 || b == 0x22 || b == 0x5C || (orE2 && b == 0xE2) { return i }
            i += 1
        }
        return end
    }
}
