/// Decodes `Decodable` values from JSON with this module's strict reader, without Foundation.
///
/// Semantics follow Go's `encoding/json` where a Go peer could tell the difference: unknown members
/// are ignored, `null` counts as absent for optional members, integers must be integer literals
/// that fit the type.
public struct WireDecoder: Sendable {
    /// The reader used for byte input.
    public var reader: JSONReader

    /// Creates a decoder.
    public init(reader: JSONReader = JSONReader()) {
        self.reader = reader
    }

    /// Decodes `type` from a parsed value.
    /// - Throws: `DecodingError` when the value does not fit the type.
    public func decode<T: Decodable>(_ type: T.Type, from value: JSONValue) throws -> T {
        try T(from: WireDecoderImpl(value: value, codingPath: []))
    }

    /// Parses and decodes `type` from JSON text.
    /// - Throws: `JSONParseError` or `DecodingError`.
    public func decode<T: Decodable>(_ type: T.Type, from bytes: some Collection<UInt8>) throws -> T {
        try decode(type, from: try reader.parse(bytes))
    }
}

/// Describes a decoding error in one line for a wire ERROR message, e.g. `params.timeout: expected an integer, found string`.
public func describeDecodingError(_ error: any Error) -> String {
    func path(_ codingPath: [any CodingKey]) -> String {
        let p = codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        return p.isEmpty ? "" : p + ": "
    }
    switch error {
    case let DecodingError.keyNotFound(key, context):
        return "\(path(context.codingPath + [key]))required field is missing"
    case let DecodingError.typeMismatch(_, context),
        let DecodingError.valueNotFound(_, context),
        let DecodingError.dataCorrupted(context):
        return "\(path(context.codingPath))\(context.debugDescription)"
    case let e as JSONParseError:
        return "not valid JSON: \(e)"
    default:
        return "\(error)"
    }
}

struct WireCodingKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(stringValue: String) { self.stringValue = stringValue }
    init(intValue: Int) {
        self.stringValue = String(intValue)
        self.intValue = intValue
    }
}

final class WireDecoderImpl: Decoder {
    let value: JSONValue
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    init(value: JSONValue, codingPath: [any CodingKey]) {
        self.value = value
        self.codingPath = codingPath
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .object(let object) = value else {
            throw DecodingError.typeMismatch(
                [String: JSONValue].self,
                .init(codingPath: codingPath, debugDescription: "expected an object, found \(value.kindName)")
            )
        }
        return KeyedDecodingContainer(WireKeyedDecoder<Key>(object: object, codingPath: codingPath))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        switch value {
        case .array(let elements): return WireUnkeyedDecoder(elements: elements, codingPath: codingPath)
        case .null: return WireUnkeyedDecoder(elements: [], codingPath: codingPath)  // Go encodes a nil slice as null
        default:
            throw DecodingError.typeMismatch(
                [JSONValue].self,
                .init(codingPath: codingPath, debugDescription: "expected an array, found \(value.kindName)")
            )
        }
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        WireSingleValueDecoder(value: value, codingPath: codingPath)
    }
}

private func mismatch(_ expected: String, _ value: JSONValue, _ path: [any CodingKey]) -> DecodingError {
    DecodingError.typeMismatch(
        Any.self,
        .init(codingPath: path, debugDescription: "expected \(expected), found \(value.kindName)")
    )
}

private func decodeScalar<T: Decodable>(_ type: T.Type, _ value: JSONValue, _ path: [any CodingKey]) throws -> T {
    switch type {
    case is String.Type:
        guard case .string(let s) = value else { throw mismatch("a string", value, path) }
        return s as! T
    case is Bool.Type:
        guard case .bool(let b) = value else { throw mismatch("a boolean", value, path) }
        return b as! T
    case is Double.Type:
        guard case .number(let n) = value, let d = Double(n) else { throw mismatch("a number", value, path) }
        return d as! T
    case is Float.Type:
        guard case .number(let n) = value, let d = Float(n) else { throw mismatch("a number", value, path) }
        return d as! T
    case is Int.Type: return try decodeInteger(Int.self, value, path) as! T
    case is Int64.Type: return try decodeInteger(Int64.self, value, path) as! T
    case is Int32.Type: return try decodeInteger(Int32.self, value, path) as! T
    case is UInt.Type: return try decodeInteger(UInt.self, value, path) as! T
    case is UInt64.Type: return try decodeInteger(UInt64.self, value, path) as! T
    case is UInt32.Type: return try decodeInteger(UInt32.self, value, path) as! T
    case is JSONValue.Type: return value as! T
    default:
        return try T(from: WireDecoderImpl(value: value, codingPath: path))
    }
}

private func decodeInteger<I: FixedWidthInteger>(
    _ type: I.Type,
    _ value: JSONValue,
    _ path: [any CodingKey]
) throws -> I {
    guard case .number(let literal) = value else { throw mismatch("an integer", value, path) }
    guard let i = I(literal) else {
        throw DecodingError.dataCorrupted(
            .init(codingPath: path, debugDescription: "expected an integer in range of \(I.self), found \(literal)")
        )
    }
    return i
}

private struct WireKeyedDecoder<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let object: JSONObject
    let codingPath: [any CodingKey]

    var allKeys: [Key] { object.members.compactMap { Key(stringValue: $0.key) } }

    func contains(_ key: Key) -> Bool { object[key.stringValue] != nil }

    func present(_ key: Key) -> JSONValue? {
        guard let v = object[key.stringValue], v != .null else { return nil }
        return v
    }

    func required(_ key: Key) throws -> JSONValue {
        guard let v = object[key.stringValue] else {
            throw DecodingError.keyNotFound(key, .init(codingPath: codingPath, debugDescription: "missing"))
        }
        return v
    }

    func decodeNil(forKey key: Key) throws -> Bool { present(key) == nil }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try decodeScalar(type, try required(key), codingPath + [key])
    }

    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        guard let v = present(key) else { return nil }
        return try decodeScalar(type, v, codingPath + [key])
    }

    func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type,
        forKey key: Key
    ) throws -> KeyedDecodingContainer<NestedKey> {
        try WireDecoderImpl(value: try required(key), codingPath: codingPath + [key]).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try WireDecoderImpl(value: try required(key), codingPath: codingPath + [key]).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder {
        WireDecoderImpl(value: .object(object), codingPath: codingPath)
    }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        WireDecoderImpl(value: object[key.stringValue] ?? .null, codingPath: codingPath + [key])
    }
}

private struct WireUnkeyedDecoder: UnkeyedDecodingContainer {
    let elements: [JSONValue]
    let codingPath: [any CodingKey]
    var currentIndex = 0

    init(elements: [JSONValue], codingPath: [any CodingKey]) {
        self.elements = elements
        self.codingPath = codingPath
    }

    var count: Int? { elements.count }
    var isAtEnd: Bool { currentIndex >= elements.count }

    mutating func next() throws -> (JSONValue, [any CodingKey]) {
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(
                Any.self,
                .init(codingPath: codingPath, debugDescription: "array has too few elements")
            )
        }
        defer { currentIndex += 1 }
        return (elements[currentIndex], codingPath + [WireCodingKey(intValue: currentIndex)])
    }

    mutating func decodeNil() throws -> Bool {
        if !isAtEnd && elements[currentIndex] == .null {
            currentIndex += 1
            return true
        }
        return false
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let (v, path) = try next()
        return try decodeScalar(type, v, path)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type
    ) throws -> KeyedDecodingContainer<NestedKey> {
        let (v, path) = try next()
        return try WireDecoderImpl(value: v, codingPath: path).container(keyedBy: type)
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let (v, path) = try next()
        return try WireDecoderImpl(value: v, codingPath: path).unkeyedContainer()
    }

    mutating func superDecoder() throws -> any Decoder {
        let (v, path) = try next()
        return WireDecoderImpl(value: v, codingPath: path)
    }
}

private struct WireSingleValueDecoder: SingleValueDecodingContainer {
    let value: JSONValue
    let codingPath: [any CodingKey]

    func decodeNil() -> Bool { value == .null }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try decodeScalar(type, value, codingPath)
    }
}
