/// Go's `time.Duration` text form, which the Go controller expects in READY's `ttl` (`"10m0s"`).
public enum GoDuration {
    /// Formats whole and fractional seconds the way Go's `Duration.String` does for values of a
    /// millisecond or more: `"1h2m3s"`, `"10m0s"`, `"1.5s"`, `"0s"`.
    public static func format(seconds: Double) -> String {
        guard seconds.isFinite, seconds > 0 else { return "0s" }
        if seconds > maxSeconds { return format(seconds: maxSeconds) }
        if seconds < 1 {
            let ms = (seconds * 1000).rounded()
            return ms == ms.rounded(.towardZero) ? "\(Int(ms))ms" : "\(ms)ms"
        }
        var total = seconds
        let hours = Int(total / 3600)
        total -= Double(hours) * 3600
        let minutes = Int(total / 60)
        total -= Double(minutes) * 60
        let secs: String
        if total == total.rounded(.towardZero) {
            secs = String(Int(total))
        } else {
            var text = String((total * 1000).rounded() / 1000)
            while text.hasSuffix("0") { text.removeLast() }
            secs = text
        }
        if hours > 0 { return "\(hours)h\(minutes)m\(secs)s" }
        if minutes > 0 { return "\(minutes)m\(secs)s" }
        return "\(secs)s"
    }

    /// Go's longest duration, in seconds (`math.MaxInt64` nanoseconds: about 292 years).
    public static let maxSeconds = 9_223_372_036.0

    /// Parses Go's duration syntax (`"10m"`, `"1h30m"`, `"2.5s"`, `"500ms"`); a bare number is seconds.
    /// - Returns: seconds, or `nil` when the text is not a positive duration of at most `maxSeconds` (Go's
    ///   limit; `inf`, `nan` and overflowing values are refused).
    public static func parse(_ text: String) -> Double? {
        guard let seconds = parseUnbounded(text), seconds.isFinite, seconds > 0, seconds <= maxSeconds else {
            return nil
        }
        return seconds
    }

    private static func parseUnbounded(_ text: String) -> Double? {
        guard let first = text.utf8.first, (first >= 0x30 && first <= 0x39) || first == 0x2E else { return nil }
        if let plain = Double(text) { return plain }
        var total = 0.0
        var rest = Substring(text)
        guard !rest.isEmpty else { return nil }
        while !rest.isEmpty {
            let numberText = rest.prefix { ($0 >= "0" && $0 <= "9") || $0 == "." }
            guard !numberText.isEmpty, let value = Double(numberText) else { return nil }
            rest = rest.dropFirst(numberText.count)
            let unit = rest.prefix { !($0 >= "0" && $0 <= "9") && $0 != "." }
            rest = rest.dropFirst(unit.count)
            switch unit {
            case "h": total += value * 3600
            case "m": total += value * 60
            case "s": total += value
            case "ms": total += value / 1000
            case "us", "µs": total += value / 1_000_000
            case "ns": total += value / 1_000_000_000
            default: return nil
            }
        }
        return total > 0 ? total : nil
    }
}
