/// The wire types' JSON mapping, without Codable: the same source compiles for the Embedded runner (which has no
/// Codable and no existentials) and for the client and the tests.
///
/// Semantics follow Go's `encoding/json` where a Go peer could tell the difference. Decoding: unknown members are
/// ignored; a member that is absent or `null` takes Go's zero value (`""`, `false`, `0`, an empty list or map) or
/// stays `nil` when the Swift field is optional; integers must be integer literals that fit `Int`; a value of the
/// wrong JSON kind is an error naming the member. Encoding: members come out in the order the type writes them,
/// `nil` optionals are left out, maps come out with sorted keys (as Go writes them: stable lines, stable hashes).
/// Those zero values are stated once, in `WireFields`.

/// A value that does not fit the type it is decoded as: where, and what was found.
public struct WireError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The member's path from the decoded value, e.g. `progress.current` (empty: the value itself).
    public var path: String
    /// What is wrong, e.g. `expected an integer, found string`.
    public var reason: String

    /// Creates an error.
    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }

    /// `path: reason`, or the reason alone at the top.
    public var description: String { path.isEmpty ? reason : path + ": " + reason }
}

/// A type read from a JSON object on the wire.
public protocol WireDecodable {
    /// Reads the value from the members of one object.
    init(fields: WireFields) throws(WireError)
}

/// A type written as a JSON object on the wire.
public protocol WireEncodable {
    /// Writes the value's members, in wire order.
    func encode(to object: inout WireObject)
}

/// A type that crosses the wire both ways.
public typealias WireCodable = WireDecodable & WireEncodable

/// Read access to one JSON object's members, with Go's zero values for absent or `null` members.
public struct WireFields {
    /// The object read.
    public let object: JSONObject
    /// Its path, for errors.
    public let path: String

    /// Wraps `value`, which must be an object.
    /// - Throws: `WireError` when it is not.
    public init(_ value: JSONValue, path: String = "") throws(WireError) {
        guard case .object(let object) = value else {
            throw WireError(path: path, reason: "expected an object, found \(value.kindName)")
        }
        self.object = object
        self.path = path
    }

    func at(_ key: String) -> String { path.isEmpty ? key : path + "." + key }

    func mismatch(_ key: String, _ expected: String, _ found: JSONValue) -> WireError {
        WireError(path: at(key), reason: "expected \(expected), found \(found.kindName)")
    }

    /// The member's value, or `nil` when it is absent or `null`.
    public func present(_ key: String) -> JSONValue? {
        guard let value = object[key] else { return nil }
        if case .null = value { return nil }
        return value
    }

    /// A string member; `""` when absent.
    public func string(_ key: String) throws(WireError) -> String { try optionalString(key) ?? "" }

    /// A string member, or `nil` when absent.
    public func optionalString(_ key: String) throws(WireError) -> String? {
        guard let value = present(key) else { return nil }
        guard case .string(let s) = value else { throw mismatch(key, "a string", value) }
        return s
    }

    /// A string member, or `nil` when absent or empty (Go's `omitempty` strings read back as optionals).
    public func nonEmptyString(_ key: String) throws(WireError) -> String? {
        guard let s = try optionalString(key), !s.isEmpty else { return nil }
        return s
    }

    /// A boolean member; `false` when absent.
    public func bool(_ key: String) throws(WireError) -> Bool { try optionalBool(key) ?? false }

    /// A boolean member, or `nil` when absent.
    public func optionalBool(_ key: String) throws(WireError) -> Bool? {
        guard let value = present(key) else { return nil }
        guard case .bool(let b) = value else { throw mismatch(key, "a boolean", value) }
        return b
    }

    /// An integer member; `0` when absent.
    public func int(_ key: String) throws(WireError) -> Int { try optionalInt(key) ?? 0 }

    /// An integer member, or `nil` when absent.
    /// - Throws: `WireError` for a fraction, an exponent or a value out of `Int`'s range.
    public func optionalInt(_ key: String) throws(WireError) -> Int? {
        guard let value = present(key) else { return nil }
        guard case .number(let literal) = value else { throw mismatch(key, "an integer", value) }
        guard let i = Int(literal) else {
            throw WireError(path: at(key), reason: "expected an integer in range of Int, found \(literal)")
        }
        return i
    }

    /// A number member; `0` when absent.
    public func double(_ key: String) throws(WireError) -> Double {
        guard let value = present(key) else { return 0 }
        guard case .number(let literal) = value, let d = Double(literal) else {
            throw mismatch(key, "a number", value)
        }
        return d
    }

    /// A list of strings; empty when absent.
    public func strings(_ key: String) throws(WireError) -> [String] {
        guard let value = present(key) else { return [] }
        guard case .array(let items) = value else { throw mismatch(key, "an array", value) }
        var out: [String] = []
        out.reserveCapacity(items.count)
        for (i, item) in items.enumerated() {
            guard case .string(let s) = item else {
                throw WireError(path: at(key) + "[\(i)]", reason: "expected a string, found \(item.kindName)")
            }
            out.append(s)
        }
        return out
    }

    /// A string-to-string map; empty when absent.
    public func stringMap(_ key: String) throws(WireError) -> [String: String] { try optionalStringMap(key) ?? [:] }

    /// A string-to-string map, or `nil` when absent.
    public func optionalStringMap(_ key: String) throws(WireError) -> [String: String]? {
        guard let value = present(key) else { return nil }
        guard case .object(let members) = value else { throw mismatch(key, "an object", value) }
        var out: [String: String] = [:]
        for member in members.members {
            guard case .string(let s) = member.value else {
                throw mismatch(key + "." + member.key, "a string", member.value)
            }
            out[member.key] = s
        }
        return out
    }

    /// A string-to-boolean map; empty when absent.
    public func boolMap(_ key: String) throws(WireError) -> [String: Bool] {
        guard let value = present(key) else { return [:] }
        guard case .object(let members) = value else { throw mismatch(key, "an object", value) }
        var out: [String: Bool] = [:]
        for member in members.members {
            guard case .bool(let b) = member.value else {
                throw mismatch(key + "." + member.key, "a boolean", member.value)
            }
            out[member.key] = b
        }
        return out
    }

    /// Any JSON value; `null` when absent.
    public func value(_ key: String) -> JSONValue { object[key] ?? .null }

    /// An open wire name; empty when absent.
    public func name<N: WireName>(_ key: String) throws(WireError) -> N { N(rawValue: try string(key)) }

    /// A nested object, or `nil` when absent.
    public func nested<T: WireDecodable>(_ key: String, as type: T.Type = T.self) throws(WireError) -> T? {
        guard let value = present(key) else { return nil }
        return try T(fields: WireFields(value, path: at(key)))
    }
}

/// A JSON object under construction, members in the order they are written.
public struct WireObject {
    /// The members written so far.
    public private(set) var members: [(key: String, value: JSONValue)] = []

    /// Creates an empty object.
    public init() {}

    /// The object written.
    public var value: JSONValue { .object(JSONObject(members)) }

    /// Writes any JSON value; a `nil` one is left out.
    public mutating func set(_ key: String, _ value: JSONValue?) {
        if let value { members.append((key, value)) }
    }

    /// Writes a string; a `nil` one is left out.
    public mutating func set(_ key: String, _ value: String?) { set(key, value.map { JSONValue.string($0) }) }

    /// Writes a boolean; a `nil` one is left out.
    public mutating func set(_ key: String, _ value: Bool?) { set(key, value.map { JSONValue.bool($0) }) }

    /// Writes an integer; a `nil` one is left out.
    public mutating func set(_ key: String, _ value: Int?) { set(key, value.map { JSONValue.number(String($0)) }) }

    /// Writes a number; a `nil` one is left out.
    public mutating func set(_ key: String, _ value: Double?) { set(key, value.map { JSONValue.number(double: $0) }) }

    /// Writes a list of strings; a `nil` one is left out.
    public mutating func set(_ key: String, _ value: [String]?) {
        set(key, value.map { list in JSONValue.array(list.map { .string($0) }) })
    }

    /// Writes a string map with sorted keys; a `nil` one is left out.
    public mutating func set(_ key: String, _ value: [String: String]?) {
        guard let value else { return }
        set(key, JSONValue.object(JSONObject(value.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })))
    }

    /// Writes a boolean map with sorted keys.
    public mutating func set(_ key: String, _ value: [String: Bool]) {
        set(key, JSONValue.object(JSONObject(value.sorted { $0.key < $1.key }.map { ($0.key, .bool($0.value)) })))
    }

    /// Writes an open wire name; a `nil` one is left out.
    public mutating func set<N: WireName>(_ key: String, _ value: N?) { set(key, value.map { $0.rawValue }) }

    /// Writes a nested object; a `nil` one is left out.
    public mutating func set<T: WireEncodable>(_ key: String, _ value: T?) {
        guard let value else { return }
        var nested = WireObject()
        value.encode(to: &nested)
        set(key, nested.value)
    }
}

/// A wire type that lists its members once, in `members(_:)`, for both directions: that list is the only place a
/// member's key is spelled, so decoding and encoding cannot drift apart.
///
/// ```swift
/// extension ServiceReloadParams: WireMapped {
///     public init(fields: WireFields) throws(WireError) {
///         self.init(name: "")
///         try read(fields)
///     }
///     public mutating func members(_ wire: inout WireMembers) throws(WireError) {
///         try wire("name", &name)
///         try wire("action", &action)
///     }
/// }
/// ```
public protocol WireMapped: WireCodable {
    /// Visits every member in wire order as `try wire(key, &member)`. Reading sets each one (an absent or `null`
    /// member to Go's zero value, see `WireFields`); writing appends each one (a `nil` optional left out).
    mutating func members(_ wire: inout WireMembers) throws(WireError)
}

extension WireMapped {
    /// Sets every member from `fields`.
    /// - Throws: `WireError` naming the first member that does not fit.
    public mutating func read(_ fields: WireFields) throws(WireError) {
        var wire = WireMembers(reading: fields)
        try members(&wire)
    }

    /// Writes the members in the order `members(_:)` lists them.
    public func encode(to object: inout WireObject) {
        var copy = self
        var wire = WireMembers(writing: object)
        object = WireObject()  // the members' storage stays uniquely owned while they are appended
        do {
            try copy.members(&wire)
        } catch {
            fatalError("writing a wire object cannot fail")
        }
        object = wire.object
    }
}

/// One direction of a `WireMapped` type's member list: reading from `WireFields` or writing to a `WireObject`.
/// Each member kind reads and writes with the rules of `WireFields` and `WireObject`.
public struct WireMembers {
    private let fields: WireFields?
    /// What has been written (writing only).
    public private(set) var object: WireObject

    init(reading fields: WireFields) {
        self.fields = fields
        object = WireObject()
    }

    init(writing object: WireObject) {
        fields = nil
        self.object = object
    }

    /// Whether members are being read (a type with a read-side rule, such as a default for 0, applies it then).
    public var isReading: Bool { fields != nil }

    /// A string; `""` when absent.
    public mutating func callAsFunction(_ key: String, _ value: inout String) throws(WireError) {
        if let fields { value = try fields.string(key) } else { object.set(key, value) }
    }

    /// A string, or `nil` when absent.
    public mutating func callAsFunction(_ key: String, _ value: inout String?) throws(WireError) {
        if let fields { value = try fields.optionalString(key) } else { object.set(key, value) }
    }

    /// A string read as `nil` when absent or empty (Go's `omitempty` strings).
    public mutating func nonEmpty(_ key: String, _ value: inout String?) throws(WireError) {
        if let fields { value = try fields.nonEmptyString(key) } else { object.set(key, value) }
    }

    /// A boolean; `false` when absent.
    public mutating func callAsFunction(_ key: String, _ value: inout Bool) throws(WireError) {
        if let fields { value = try fields.bool(key) } else { object.set(key, value) }
    }

    /// A boolean written only when true: an extension an older peer never sees unless it is asked for.
    public mutating func flag(_ key: String, _ value: inout Bool) throws(WireError) {
        if let fields { value = try fields.bool(key) } else if value { object.set(key, true) }
    }

    /// A boolean, or `nil` when absent.
    public mutating func callAsFunction(_ key: String, _ value: inout Bool?) throws(WireError) {
        if let fields { value = try fields.optionalBool(key) } else { object.set(key, value) }
    }

    /// An integer; `0` when absent.
    public mutating func callAsFunction(_ key: String, _ value: inout Int) throws(WireError) {
        if let fields { value = try fields.int(key) } else { object.set(key, value) }
    }

    /// An integer, or `nil` when absent.
    public mutating func callAsFunction(_ key: String, _ value: inout Int?) throws(WireError) {
        if let fields { value = try fields.optionalInt(key) } else { object.set(key, value) }
    }

    /// A number; `0` when absent.
    public mutating func callAsFunction(_ key: String, _ value: inout Double) throws(WireError) {
        if let fields { value = try fields.double(key) } else { object.set(key, value) }
    }

    /// A list of strings; empty when absent.
    public mutating func callAsFunction(_ key: String, _ value: inout [String]) throws(WireError) {
        if let fields { value = try fields.strings(key) } else { object.set(key, value) }
    }

    /// A string map (written with sorted keys); empty when absent.
    public mutating func callAsFunction(_ key: String, _ value: inout [String: String]) throws(WireError) {
        if let fields { value = try fields.stringMap(key) } else { object.set(key, value) }
    }

    /// A string map (written with sorted keys), or `nil` when absent.
    public mutating func callAsFunction(_ key: String, _ value: inout [String: String]?) throws(WireError) {
        if let fields { value = try fields.optionalStringMap(key) } else { object.set(key, value) }
    }

    /// A boolean map (written with sorted keys); empty when absent.
    public mutating func callAsFunction(_ key: String, _ value: inout [String: Bool]) throws(WireError) {
        if let fields { value = try fields.boolMap(key) } else { object.set(key, value) }
    }

    /// Any JSON value, kept as it is; `null` when absent.
    public mutating func callAsFunction(_ key: String, _ value: inout JSONValue) throws(WireError) {
        if let fields { value = fields.value(key) } else { object.set(key, value) }
    }

    /// An open wire name; empty when absent.
    public mutating func callAsFunction<N: WireName>(_ key: String, _ value: inout N) throws(WireError) {
        if let fields { value = try fields.name(key) } else { object.set(key, value) }
    }

    /// An open wire name, or `nil` when absent.
    public mutating func callAsFunction<N: WireName>(_ key: String, _ value: inout N?) throws(WireError) {
        if let fields { value = try fields.optionalString(key).map { N(rawValue: $0) } } else { object.set(key, value) }
    }

    /// A nested object, or `nil` when absent.
    public mutating func callAsFunction<T: WireCodable>(_ key: String, _ value: inout T?) throws(WireError) {
        if let fields { value = try fields.nested(key) } else { object.set(key, value) }
    }
}

extension JSONValue {
    /// A JSON number for `d`: integral values below 1e15 without a fraction (`2`, as Go writes them), others
    /// in Swift's shortest round-trip form. JSON has no NaN or infinity: NaN is written as 0 and the infinities
    /// as the largest finite values (a duration or size is never either; the wire must still stay valid JSON).
    public static func number(double d: Double) -> JSONValue {
        if d.isNaN { return .number("0") }
        if d.isInfinite { return .number(d < 0 ? "-1.7976931348623157e+308" : "1.7976931348623157e+308") }
        if d == d.rounded(.towardZero) && abs(d) < 1e15 { return .number(String(Int64(d))) }
        return .number(d.description)
    }
}

/// Decodes wire types from JSON values or text.
public struct WireDecoder: Sendable {
    /// The reader used for text input.
    public var reader: JSONReader

    /// Creates a decoder.
    public init(reader: JSONReader = JSONReader()) {
        self.reader = reader
    }

    /// Decodes `type` from a parsed value.
    /// - Throws: `WireError` naming the member that does not fit.
    public func decode<T: WireDecodable>(_ type: T.Type, from value: JSONValue) throws(WireError) -> T {
        try T(fields: WireFields(value))
    }

    /// Parses and decodes `type` from JSON text.
    /// - Throws: `WireError` (a parse error reads `not valid JSON: ...`).
    public func decode<T: WireDecodable>(_ type: T.Type, from bytes: some Collection<UInt8>) throws(WireError) -> T {
        let value: JSONValue
        do {
            value = try reader.parse(bytes)
        } catch {
            throw WireError(path: "", reason: "not valid JSON: \(error)")
        }
        return try decode(type, from: value)
    }
}

/// Encodes wire types to JSON values or text.
public struct WireEncoder: Sendable {
    /// Creates an encoder.
    public init() {}

    /// Encodes `value` to a JSON tree.
    public func encodeToValue<T: WireEncodable>(_ value: T) -> JSONValue {
        var object = WireObject()
        value.encode(to: &object)
        return object.value
    }

    /// Encodes `value` to compact JSON text.
    public func encode<T: WireEncodable>(_ value: T) -> [UInt8] {
        JSONWriter.serialize(encodeToValue(value))
    }
}
