/// A parsed JSON document, kept close to the wire.
///
/// Numbers keep their literal text so that integers of any size and floats round-trip
/// exactly; objects keep their members in wire order (a repeated key: the last one wins
/// on lookup, as in Go's `encoding/json`).
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    /// A number as its RFC 8259 literal text, e.g. `"-12"`, `"3.5e2"`.
    case number(String)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    /// The member named `key` when this is an object, else `nil`.
    public subscript(key: String) -> JSONValue? {
        if case .object(let object) = self { return object[key] }
        return nil
    }

    /// The string payload, when this is a string.
    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// The integer value, when this is a number literal without fraction or exponent that fits `Int`.
    public var intValue: Int? {
        if case .number(let literal) = self { return Int(literal) }
        return nil
    }

    /// The boolean payload, when this is a boolean.
    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    /// The bytes this parsed value keeps in memory, estimated from its shape: 24 per value (an enum with a
    /// String payload; measured: `[0,0,...]` takes 12x its 2 wire bytes per element), plus heap storage for
    /// strings longer than 15 bytes (they are not stored inline) and for arrays and objects. Queues that hold
    /// parsed commands are bounded with this, not with wire bytes.
    public var retainedBytesEstimate: Int {
        switch self {
        case .null, .bool: return 24
        case .number(let n): return 24 + (n.utf8.count > 15 ? n.utf8.count + 32 : 0)
        case .string(let s): return 24 + (s.utf8.count > 15 ? s.utf8.count + 32 : 0)
        case .array(let items):
            var total = 56
            for item in items { total += item.retainedBytesEstimate }
            return total
        case .object(let object):
            var total = 56
            for member in object.members {
                total += 16 + (member.key.utf8.count > 15 ? member.key.utf8.count + 32 : 0)
                total += member.value.retainedBytesEstimate
            }
            return total
        }
    }

    /// A short name of the JSON kind, for error messages.
    public var kindName: String {
        switch self {
        case .null: "null"
        case .bool: "boolean"
        case .number: "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }
}

/// A JSON object: members in wire order.
public struct JSONObject: Sendable, Hashable {
    /// The members as received (or as built), in order.
    public var members: [(key: String, value: JSONValue)]

    /// Creates an object from ordered members.
    public init(_ members: [(key: String, value: JSONValue)] = []) {
        self.members = members
    }

    /// The value of the last member named `key`.
    public subscript(key: String) -> JSONValue? {
        get {
            var i = members.count
            while i > 0 {
                i -= 1
                if members[i].key == key { return members[i].value }
            }
            return nil
        }
        set {
            members.removeAll { $0.key == key }
            if let newValue { members.append((key, newValue)) }
        }
    }

    /// Same members, in the same order.
    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        guard lhs.members.count == rhs.members.count else { return false }
        for (l, r) in zip(lhs.members, rhs.members) where l.key != r.key || l.value != r.value {
            return false
        }
        return true
    }

    /// Hashes the members in order.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(members.count)
        for member in members {
            hasher.combine(member.key)
            hasher.combine(member.value)
        }
    }
}
