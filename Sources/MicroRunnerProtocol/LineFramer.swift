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
        while start < bytes.count {
            let (frame, next) = self.next(bytes, from: start)
            if let frame { frames.append(frame) }
            start = next
        }
        return frames
    }

    /// Feeds bytes from `start` up to the end of the first frame they complete, and no further: the bytes after
    /// a line may not be lines (a CMD with `content_length` is followed by raw content), so the caller decides
    /// what comes next.
    /// - Returns: the frame, or `nil` when all of `bytes` was taken without completing one; and the index of the
    ///   first byte not taken.
    public mutating func next(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int) -> (Frame?, next: Int) {
        let count = bytes.count
        guard start < count else { return (nil, count) }
        var newline = start
        while newline < count && bytes[newline] != 0x0A { newline += 1 }
        let found = newline < count
        let piece = UnsafeBufferPointer(rebasing: bytes[start..<newline])
        let next = found ? newline + 1 : count
        if discarding {
            discarded += piece.count
            guard found else { return (nil, next) }
            defer {
                discarding = false
                discarded = 0
            }
            return (.oversized(byteCount: discarded), next)
        }
        if buffer.count + piece.count > maxLineBytes {
            let total = buffer.count + piece.count
            buffer = []
            guard found else {
                discarding = true
                discarded = total
                return (nil, next)
            }
            return (.oversized(byteCount: total), next)
        }
        guard found else {
            buffer.append(contentsOf: piece)
            return (nil, next)
        }
        if buffer.isEmpty { return (.line(Array(piece)), next) }
        buffer.append(contentsOf: piece)
        defer { buffer = [] }
        return (.line(buffer), next)
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
