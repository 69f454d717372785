/// Encodes `Encodable` values to compact JSON without Foundation.
///
/// Members come out in the order the type encodes them; `nil` optionals are omitted.
public struct WireEncoder: Sendable {
    /// Creates an encoder.
    public init() {}

    /// Encodes `value` to a JSON tree.
    /// - Throws: `EncodingError` when the value encodes nothing.
    public func encodeToValue<T: Encodable>(_ value: T) throws -> JSONValue {
        if let v = value as? JSONValue { return v }
        let encoder = WireEncoderImpl(codingPath: [])
        try value.encode(to: encoder)
        return try encoder.finish()
    }

    /// Encodes `value` to JSON text.
    /// - Throws: `EncodingError` when the value encodes nothing.
    public func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        JSONWriter.serialize(try encodeToValue(value))
    }
}

/// A value under construction: containers hand out references so nested containers can fill in later.
final class EncodingNode {
    enum Content {
        case value(JSONValue)
        case object([(String, EncodingNode)])
        case array([EncodingNode])
        case encoder(WireEncoderImpl)
    }
    var content: Content

    init(_ content: Content) { self.content = content }

    func finish() throws -> JSONValue {
        switch content {
        case .value(let v): return v
        case .object(let members): return .object(JSONObject(try members.map { ($0.0, try $0.1.finish()) }))
        case .array(let elements): return .array(try elements.map { try $0.finish() })
        case .encoder(let e): return try e.finish()
        }
    }
}

final class WireEncoderImpl: Encoder {
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }
    var node: EncodingNode?
    /// Set by `JSONValue.encode(to:)` to place a tree directly.
    var storage: JSONValue? {
        get { nil }
        set { node = newValue.map { EncodingNode(.value($0)) } }
    }

    init(codingPath: [any CodingKey]) {
        self.codingPath = codingPath
    }

    func finish() throws -> JSONValue {
        guard let node else {
            throw EncodingError.invalidValue(
                Any.self,
                .init(codingPath: codingPath, debugDescription: "value encoded nothing")
            )
        }
        return try node.finish()
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        if node == nil { node = EncodingNode(.object([])) }
        return KeyedEncodingContainer(WireKeyedEncoder<Key>(node: node!, codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        if node == nil { node = EncodingNode(.array([])) }
        return WireUnkeyedEncoder(node: node!, codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        WireSingleValueEncoder(encoder: self)
    }
}

private func encodeScalar<T: Encodable>(_ value: T, _ path: [any CodingKey]) throws -> EncodingNode {
    switch value {
    case let s as String: return EncodingNode(.value(.string(s)))
    case let b as Bool: return EncodingNode(.value(.bool(b)))
    case let i as Int: return EncodingNode(.value(.number(String(i))))
    case let i as Int64: return EncodingNode(.value(.number(String(i))))
    case let i as Int32: return EncodingNode(.value(.number(String(i))))
    case let i as UInt64: return EncodingNode(.value(.number(String(i))))
    case let i as UInt32: return EncodingNode(.value(.number(String(i))))
    case let d as Double: return EncodingNode(.value(try number(d, path)))
    case let v as JSONValue: return EncodingNode(.value(v))
    // Maps come out with sorted keys, as Go's encoder writes them: stable lines, stable hashes.
    case let m as [String: String]:
        return EncodingNode(
            .value(.object(JSONObject(m.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })))
        )
    case let m as [String: Bool]:
        return EncodingNode(.value(.object(JSONObject(m.sorted { $0.key < $1.key }.map { ($0.key, .bool($0.value)) }))))
    default:
        let nested = WireEncoderImpl(codingPath: path)
        try value.encode(to: nested)
        return EncodingNode(.encoder(nested))
    }
}

/// Formats a Double as a JSON number (JSON has no NaN or infinity).
private func number(_ d: Double, _ path: [any CodingKey]) throws -> JSONValue {
    guard d.isFinite else {
        throw EncodingError.invalidValue(d, .init(codingPath: path, debugDescription: "JSON has no \(d)"))
    }
    if d == d.rounded(.towardZero) && abs(d) < 1e15 { return .number(String(Int64(d))) }
    return .number(d.description)
}

private struct WireKeyedEncoder<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let node: EncodingNode
    let codingPath: [any CodingKey]

    func append(_ key: Key, _ child: EncodingNode) {
        guard case .object(var members) = node.content else { return }
        members.removeAll { $0.0 == key.stringValue }
        members.append((key.stringValue, child))
        node.content = .object(members)
    }

    mutating func encodeNil(forKey key: Key) throws { append(key, EncodingNode(.value(.null))) }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        append(key, try encodeScalar(value, codingPath + [key]))
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type,
        forKey key: Key
    ) -> KeyedEncodingContainer<NestedKey> {
        let child = EncodingNode(.object([]))
        append(key, child)
        return KeyedEncodingContainer(WireKeyedEncoder<NestedKey>(node: child, codingPath: codingPath + [key]))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        let child = EncodingNode(.array([]))
        append(key, child)
        return WireUnkeyedEncoder(node: child, codingPath: codingPath + [key])
    }

    mutating func superEncoder() -> any Encoder {
        let e = WireEncoderImpl(codingPath: codingPath)
        append(Key(stringValue: "super")!, EncodingNode(.encoder(e)))
        return e
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        let e = WireEncoderImpl(codingPath: codingPath + [key])
        append(key, EncodingNode(.encoder(e)))
        return e
    }
}

private struct WireUnkeyedEncoder: UnkeyedEncodingContainer {
    let node: EncodingNode
    let codingPath: [any CodingKey]

    var count: Int {
        if case .array(let elements) = node.content { return elements.count }
        return 0
    }

    func append(_ child: EncodingNode) {
        guard case .array(var elements) = node.content else { return }
        elements.append(child)
        node.content = .array(elements)
    }

    mutating func encodeNil() throws { append(EncodingNode(.value(.null))) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        append(try encodeScalar(value, codingPath + [WireCodingKey(intValue: count)]))
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type
    ) -> KeyedEncodingContainer<NestedKey> {
        let child = EncodingNode(.object([]))
        append(child)
        return KeyedEncodingContainer(WireKeyedEncoder<NestedKey>(node: child, codingPath: codingPath))
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let child = EncodingNode(.array([]))
        append(child)
        return WireUnkeyedEncoder(node: child, codingPath: codingPath)
    }

    mutating func superEncoder() -> any Encoder {
        let e = WireEncoderImpl(codingPath: codingPath)
        append(EncodingNode(.encoder(e)))
        return e
    }
}

private struct WireSingleValueEncoder: SingleValueEncodingContainer {
    let encoder: WireEncoderImpl
    var codingPath: [any CodingKey] { encoder.codingPath }

    mutating func encodeNil() throws { encoder.node = EncodingNode(.value(.null)) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        encoder.node = try encodeScalar(value, codingPath)
    }
}
