/// One wire line: `{"type": T, "timestamp": "...", "data": {...}}`.
public struct Envelope: Sendable {
    /// The message type.
    public var type: MessageType
    /// RFC 3339 UTC time of sending; optional on received envelopes.
    public var timestamp: String?
    /// The payload.
    public var data: JSONValue
    /// The bytes of `data.params` exactly as received (signatures hash them), when present.
    public var rawParams: [UInt8]?

    /// Creates an envelope.
    public init(type: MessageType, timestamp: String? = nil, data: JSONValue, rawParams: [UInt8]? = nil) {
        self.type = type
        self.timestamp = timestamp
        self.data = data
        self.rawParams = rawParams
    }

    /// Parses one received line (without its `\n`; a trailing `\r` is ignored).
    /// - Parameters:
    ///   - line: the bytes of the line.
    ///   - reader: the JSON reader.
    ///   - keepRawParams: keep a copy of the bytes of `data.params` (signature checking needs them; a
    ///     runner without signatures saves the copy).
    /// - Throws: `RunnerError` `INVALID_CMD` naming what is wrong.
    public static func parse(
        line: [UInt8],
        reader: JSONReader = JSONReader(),
        keepRawParams: Bool = true
    )
        throws(RunnerError) -> Envelope
    {
        var bytes = line[...]
        if bytes.last == 0x0D { bytes = bytes.dropLast() }
        let value: JSONValue
        let captured: Range<Int>?
        do {
            (value, captured) = try reader.parse(bytes, capturing: keepRawParams ? ["data", "params"] : [])
        } catch {
            throw RunnerError.invalid("line is not valid JSON: \(error)")
        }
        guard case .object(let object) = value else {
            throw RunnerError.invalid("line is a JSON \(value.kindName), expected an object envelope")
        }
        guard let typeValue = object["type"] else { throw RunnerError.invalid("envelope has no \"type\"") }
        guard case .string(let type) = typeValue else {
            throw RunnerError.invalid("envelope \"type\" is a \(typeValue.kindName), expected a string")
        }
        var timestamp: String?
        switch object["timestamp"] {
        case nil, .null?: break
        case .string(let t)?:
            guard Timestamp.parse(t) != nil else {
                throw RunnerError.invalid("envelope \"timestamp\" is not RFC 3339: \(RunnerError.echo(t))")
            }
            timestamp = t
        case let other?:
            throw RunnerError.invalid("envelope \"timestamp\" is a \(other.kindName), expected a string")
        }
        var rawParams: [UInt8]?
        if let captured {
            let start = bytes.startIndex + captured.lowerBound
            rawParams = Array(bytes[start..<(start + captured.count)])
        }
        return Envelope(
            type: MessageType(rawValue: type),
            timestamp: timestamp,
            data: object["data"] ?? .null,
            rawParams: rawParams
        )
    }

    /// Serializes an outgoing message as one line, `\n` included.
    public static func line(type: MessageType, timestamp: String, data: JSONValue) -> [UInt8] {
        var out: [UInt8] = []
        // Sized up front: a multi-megabyte answer must not be copied through doubling reallocations. The estimate
        // counts no escapes; an eighth more covers text's (a `\n` every 80 bytes is 1.25%), where a batch of
        // streamed lines that overshot it was copied once more and its buffer doubled past 128 KiB, which musl
        // maps and unmaps on every EVENT.
        let estimate = JSONWriter.estimatedSize(of: data)
        out.reserveCapacity(estimate + estimate / 8 + 96)
        out.append(contentsOf: #"{"type":"#.utf8)
        JSONWriter.writeString(type.rawValue, into: &out)
        out.append(contentsOf: #","timestamp":"#.utf8)
        JSONWriter.writeString(timestamp, into: &out)
        out.append(contentsOf: #","data":"#.utf8)
        JSONWriter.write(data, into: &out)
        out.append(contentsOf: "}\n".utf8)
        return out
    }
}
