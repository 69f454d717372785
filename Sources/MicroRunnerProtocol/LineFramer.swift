/// Splits a byte stream into `\n`-terminated lines with a hard length limit.
///
/// A line longer than the limit is never held in memory: the framer drops its bytes as they come and
/// reports `.oversized` once its end arrives, so a hostile peer cannot grow the buffer past the limit.
public struct LineFramer: Sendable {
    /// One framed unit.
    public enum Frame: Sendable, Equatable {
        /// A complete line, without `\n` (a trailing `\r` is left for the envelope parser to drop).
        case line([UInt8])
        /// A line of `byteCount` bytes (without `\n`) that exceeded the limit and was discarded.
        case oversized(byteCount: Int)
    }

    /// The longest line accepted, in bytes, `\n` excluded.
    public let maxLineBytes: Int
    private var buffer: [UInt8] = []
    private var discarding = false
    private var discarded = 0

    /// Creates a framer.
    public init(maxLineBytes: Int) {
        self.maxLineBytes = maxLineBytes
    }

    /// Whether a partial line is pending (at end of input it is a line without its `\n`).
    public var hasPartialLine: Bool { !buffer.isEmpty || discarding }

    /// Feeds bytes; returns the frames they complete, in order.
    public mutating func append(_ bytes: some Collection<UInt8>) -> [Frame] {
        var frames: [Frame] = []
        var rest = bytes[...]
        while !rest.isEmpty {
            if discarding {
                if let nl = rest.firstIndex(of: 0x0A) {
                    discarded += rest.distance(from: rest.startIndex, to: nl)
                    frames.append(.oversized(byteCount: discarded))
                    discarding = false
                    discarded = 0
                    rest = rest[rest.index(after: nl)...]
                } else {
                    discarded += rest.count
                    rest = rest[rest.endIndex...]
                }
                continue
            }
            if let nl = rest.firstIndex(of: 0x0A) {
                let piece = rest[rest.startIndex..<nl]
                if buffer.count + piece.count > maxLineBytes {
                    frames.append(.oversized(byteCount: buffer.count + piece.count))
                } else {
                    buffer.append(contentsOf: piece)
                    frames.append(.line(buffer))
                }
                buffer = []
                rest = rest[rest.index(after: nl)...]
            } else {
                if buffer.count + rest.count > maxLineBytes {
                    discarding = true
                    discarded = buffer.count + rest.count
                    buffer = []
                } else {
                    buffer.append(contentsOf: rest)
                }
                rest = rest[rest.endIndex...]
            }
        }
        return frames
    }

    /// Ends the stream: a pending partial line becomes a last frame.
    public mutating func finish() -> Frame? {
        defer {
            buffer = []
            discarding = false
            discarded = 0
        }
        if discarding { return .oversized(byteCount: discarded) }
        if !buffer.isEmpty { return .line(buffer) }
        return nil
    }
}
