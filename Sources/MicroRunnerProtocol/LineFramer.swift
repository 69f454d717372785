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
    public mutating func append(_ bytes: [UInt8]) -> [Frame] {
        bytes.withUnsafeBufferPointer { append($0) }
    }

    /// Feeds bytes; returns the frames they complete, in order.
    ///
    /// Takes contiguous memory on purpose: a generic `Collection` parameter is not specialized across
    /// modules, and a per-byte witness call made an 8 MiB line cost ~300 ms.
    public mutating func append(_ bytes: UnsafeBufferPointer<UInt8>) -> [Frame] {
        var frames: [Frame] = []
        var start = 0
        let count = bytes.count
        while start < count {
            var newline = start
            while newline < count && bytes[newline] != 0x0A { newline += 1 }
            let found = newline < count
            let piece = UnsafeBufferPointer(rebasing: bytes[start..<newline])
            if discarding {
                discarded += piece.count
                if found {
                    frames.append(.oversized(byteCount: discarded))
                    discarding = false
                    discarded = 0
                }
            } else if buffer.count + piece.count > maxLineBytes {
                if found {
                    frames.append(.oversized(byteCount: buffer.count + piece.count))
                } else {
                    discarding = true
                    discarded = buffer.count + piece.count
                }
                buffer = []
            } else if found {
                if buffer.isEmpty {
                    frames.append(.line(Array(piece)))
                } else {
                    buffer.append(contentsOf: piece)
                    frames.append(.line(buffer))
                    buffer = []
                }
            } else {
                buffer.append(contentsOf: piece)
            }
            start = found ? newline + 1 : count
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
