/// A JSON text that is not valid RFC 8259, with where it went wrong.
public struct JSONParseError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What is wrong.
    public var reason: String
    /// Byte offset into the input where the problem was found.
    public var offset: Int

    /// `reason at byte N`.
    public var description: String { "\(reason) at byte \(offset)" }
}

/// A strict RFC 8259 parser with a nesting limit and a limit on the number of values.
///
/// It accepts exactly the grammar of RFC 8259 over UTF-8 input: no comments, no trailing commas,
/// no leading zeros, no byte order mark, no unescaped control characters, no invalid UTF-8.
/// An escaped lone surrogate (`"\uD800"`) becomes U+FFFD, as Go's decoder does.
public struct JSONReader: Sendable {
    /// The deepest nesting of arrays and objects accepted.
    public var maxDepth: Int
    /// The most values (of any kind, containers included) in one document. The parsed tree costs up to ~24
    /// bytes per value (measured: a line of `[0,0,...]` takes 12x its wire size), so without this bound a
    /// 16 MiB line could take 200 MB; 262,144 values keep any document under ~30 MB, far above what a CMD
    /// or an answer needs (a file's content is one string).
    public var maxValues: Int

    /// Creates a reader.
    /// - Parameters:
    ///   - maxDepth: the deepest nesting accepted (default 128; the wire never needs more than a few levels).
    ///   - maxValues: the most values in one document (default 262,144).
    public init(maxDepth: Int = 128, maxValues: Int = 1 << 18) {
        self.maxDepth = maxDepth
        self.maxValues = maxValues
    }

    /// Parses one JSON text.
    /// - Parameter bytes: the UTF-8 text.
    /// - Returns: the value.
    /// - Throws: `JSONParseError` when the text is not one valid JSON value.
    public func parse(_ bytes: some Collection<UInt8>) throws(JSONParseError) -> JSONValue {
        try parse(bytes, capturing: []).value
    }

    /// Parses one JSON text and reports where the value at `path` lies in the input.
    ///
    /// The wire keeps the raw bytes of `data.params` so that a signature can cover them exactly as sent.
    /// - Parameters:
    ///   - bytes: the UTF-8 text.
    ///   - path: object member names from the top, e.g. `["data", "params"]`; empty captures nothing.
    /// - Returns: the value and the byte range (relative to the start of `bytes`) of the last value found at `path`.
    /// - Throws: `JSONParseError` when the text is not one valid JSON value.
    public func parse(
        _ bytes: some Collection<UInt8>,
        capturing path: [String]
    ) throws(JSONParseError) -> (value: JSONValue, captured: Range<Int>?) {
        let result: Result<(JSONValue, Range<Int>?), JSONParseError>? = bytes.withContiguousStorageIfAvailable {
            buffer in
            var parser = Parser(buffer: buffer, maxDepth: maxDepth, maxValues: maxValues, capturePath: path)
            return Result { () throws(JSONParseError) in try parser.parseDocument() }
        }
        if let result { return try result.get() }
        let array = Array(bytes)
        return try array.withUnsafeBufferPointer { buffer throws(JSONParseError) in
            var parser = Parser(buffer: buffer, maxDepth: maxDepth, maxValues: maxValues, capturePath: path)
            return try parser.parseDocument()
        }
    }
}

private struct Parser {
    let buffer: UnsafeBufferPointer<UInt8>
    let maxDepth: Int
    let maxValues: Int
    let capturePath: [String]
    var index = 0
    var depth = 0
    var values = 0
    /// Member names on the way down, only while they still match `capturePath`.
    var matchedPrefix = 0
    var captured: Range<Int>?
    var scratch: [UInt8] = []

    init(buffer: UnsafeBufferPointer<UInt8>, maxDepth: Int, maxValues: Int, capturePath: [String]) {
        self.buffer = buffer
        self.maxDepth = maxDepth
        self.maxValues = maxValues
        self.capturePath = capturePath
    }

    mutating func parseDocument() throws(JSONParseError) -> (JSONValue, Range<Int>?) {
        skipWhitespace()
        let value = try parseValue(pathMatch: capturePath.isEmpty ? -1 : 0)
        skipWhitespace()
        if index != buffer.count { throw fail("unexpected data after the JSON value") }
        return (value, captured)
    }

    func fail(_ reason: String) -> JSONParseError {
        JSONParseError(reason: reason, offset: index)
    }

    mutating func skipWhitespace() {
        while index < buffer.count {
            switch buffer[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    /// - Parameter pathMatch: how many names of `capturePath` the path to this value matches, or -1 when it left the path.
    mutating func parseValue(pathMatch: Int) throws(JSONParseError) -> JSONValue {
        guard index < buffer.count else { throw fail("unexpected end of input, expected a value") }
        values += 1
        if values > maxValues { throw fail("more than \(maxValues) values in one document") }
        let start = index
        let value: JSONValue
        switch buffer[index] {
        case UInt8(ascii: "{"): value = try parseObject(pathMatch: pathMatch)
        case UInt8(ascii: "["): value = try parseArray()
        case UInt8(ascii: "\""): value = .string(try parseString())
        case UInt8(ascii: "t"):
            try expectLiteral("true")
            value = .bool(true)
        case UInt8(ascii: "f"):
            try expectLiteral("false")
            value = .bool(false)
        case UInt8(ascii: "n"):
            try expectLiteral("null")
            value = .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): value = .number(try parseNumber())
        default: throw fail("unexpected character, expected a value")
        }
        if pathMatch >= 0 && pathMatch == capturePath.count {
            captured = start..<index
        }
        return value
    }

    mutating func expectLiteral(_ literal: StaticString) throws(JSONParseError) {
        let count = literal.utf8CodeUnitCount
        guard buffer.count - index >= count else { throw fail("invalid literal") }
        let base = literal.utf8Start
        for i in 0..<count where buffer[index + i] != base[i] {
            throw fail("invalid literal")
        }
        index += count
    }

    mutating func enter() throws(JSONParseError) {
        depth += 1
        if depth > maxDepth { throw fail("nesting deeper than \(maxDepth) levels") }
    }

    mutating func parseObject(pathMatch: Int) throws(JSONParseError) -> JSONValue {
        try enter()
        index += 1
        var members: [(key: String, value: JSONValue)] = []
        skipWhitespace()
        if index < buffer.count && buffer[index] == UInt8(ascii: "}") {
            index += 1
            depth -= 1
            return .object(JSONObject(members))
        }
        while true {
            skipWhitespace()
            guard index < buffer.count, buffer[index] == UInt8(ascii: "\"") else {
                throw fail("expected a string as object member name")
            }
            let key = try parseString()
            skipWhitespace()
            guard index < buffer.count, buffer[index] == UInt8(ascii: ":") else {
                throw fail("expected ':' after object member name")
            }
            index += 1
            skipWhitespace()
            var childMatch = -1
            if pathMatch >= 0 && pathMatch < capturePath.count && capturePath[pathMatch] == key {
                childMatch = pathMatch + 1
            }
            let value = try parseValue(pathMatch: childMatch)
            members.append((key, value))
            skipWhitespace()
            guard index < buffer.count else { throw fail("unexpected end of input in object") }
            switch buffer[index] {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "}"):
                index += 1
                depth -= 1
                return .object(JSONObject(members))
            default: throw fail("expected ',' or '}' in object")
            }
        }
    }

    mutating func parseArray() throws(JSONParseError) -> JSONValue {
        try enter()
        index += 1
        var elements: [JSONValue] = []
        skipWhitespace()
        if index < buffer.count && buffer[index] == UInt8(ascii: "]") {
            index += 1
            depth -= 1
            return .array(elements)
        }
        while true {
            skipWhitespace()
            elements.append(try parseValue(pathMatch: -1))
            skipWhitespace()
            guard index < buffer.count else { throw fail("unexpected end of input in array") }
            switch buffer[index] {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "]"):
                index += 1
                depth -= 1
                return .array(elements)
            default: throw fail("expected ',' or ']' in array")
            }
        }
    }

    mutating func parseNumber() throws(JSONParseError) -> String {
        let start = index
        if buffer[index] == UInt8(ascii: "-") { index += 1 }
        guard index < buffer.count, isDigit(buffer[index]) else { throw fail("invalid number") }
        if buffer[index] == UInt8(ascii: "0") {
            index += 1
            if index < buffer.count && isDigit(buffer[index]) { throw fail("leading zero in number") }
        } else {
            while index < buffer.count && isDigit(buffer[index]) { index += 1 }
        }
        if index < buffer.count && buffer[index] == UInt8(ascii: ".") {
            index += 1
            guard index < buffer.count, isDigit(buffer[index]) else { throw fail("expected digits after '.'") }
            while index < buffer.count && isDigit(buffer[index]) { index += 1 }
        }
        if index < buffer.count && (buffer[index] == UInt8(ascii: "e") || buffer[index] == UInt8(ascii: "E")) {
            index += 1
            if index < buffer.count && (buffer[index] == UInt8(ascii: "+") || buffer[index] == UInt8(ascii: "-")) {
                index += 1
            }
            guard index < buffer.count, isDigit(buffer[index]) else { throw fail("expected digits in exponent") }
            while index < buffer.count && isDigit(buffer[index]) { index += 1 }
        }
        return String(decoding: UnsafeBufferPointer(rebasing: buffer[start..<index]), as: UTF8.self)
    }

    func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }

    mutating func parseString() throws(JSONParseError) -> String {
        index += 1
        let start = index
        // Fast path: no escapes.
        while index < buffer.count {
            index = ByteScan.firstSpecial(in: buffer, from: index, to: buffer.count, orE2: false)
            guard index < buffer.count else { break }
            let b = buffer[index]
            if b == UInt8(ascii: "\"") {
                let slice = UnsafeBufferPointer(rebasing: buffer[start..<index])
                guard let s = String(validating: slice, as: UTF8.self) else {
                    index = start
                    throw fail("invalid UTF-8 in string")
                }
                index += 1
                return s
            }
            if b == UInt8(ascii: "\\") { break }
            if b < 0x20 { throw fail("unescaped control character in string") }
            index += 1
        }
        scratch.removeAll(keepingCapacity: true)
        scratch.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[start..<index]))
        while index < buffer.count {
            let b = buffer[index]
            switch b {
            case UInt8(ascii: "\""):
                index += 1
                guard let s = String(validating: scratch, as: UTF8.self) else {
                    throw fail("invalid UTF-8 in string")
                }
                return s
            case UInt8(ascii: "\\"):
                index += 1
                guard index < buffer.count else { throw fail("unexpected end of input in escape") }
                let e = buffer[index]
                index += 1
                switch e {
                case UInt8(ascii: "\""): scratch.append(0x22)
                case UInt8(ascii: "\\"): scratch.append(0x5C)
                case UInt8(ascii: "/"): scratch.append(0x2F)
                case UInt8(ascii: "b"): scratch.append(0x08)
                case UInt8(ascii: "f"): scratch.append(0x0C)
                case UInt8(ascii: "n"): scratch.append(0x0A)
                case UInt8(ascii: "r"): scratch.append(0x0D)
                case UInt8(ascii: "t"): scratch.append(0x09)
                case UInt8(ascii: "u"): try appendUnicodeEscape()
                default:
                    index -= 1
                    throw fail("invalid escape in string")
                }
            default:
                if b < 0x20 { throw fail("unescaped control character in string") }
                // The plain run up to the next quote, backslash or control byte, in one append.
                let plainEnd = ByteScan.firstSpecial(in: buffer, from: index + 1, to: buffer.count, orE2: false)
                scratch.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[index..<plainEnd]))
                index = plainEnd
            }
        }
        throw fail("unterminated string")
    }

    mutating func readHex4() throws(JSONParseError) -> UInt32 {
        guard buffer.count - index >= 4 else { throw fail("truncated \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = buffer[index]
            let d: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = c - UInt8(ascii: "A") + 10
            default: throw fail("invalid hex digit in \\u escape")
            }
            v = v << 4 | UInt32(d)
            index += 1
        }
        return v
    }

    mutating func appendUnicodeEscape() throws(JSONParseError) {
        var scalar = try readHex4()
        if scalar >= 0xD800 && scalar <= 0xDBFF {
            // A high surrogate: a low one must follow to make a pair.
            if buffer.count - index >= 6 && buffer[index] == UInt8(ascii: "\\")
                && buffer[index + 1] == UInt8(ascii: "u")
            {
                let save = index
                index += 2
                let low = try readHex4()
                if low >= 0xDC00 && low <= 0xDFFF {
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else {
                    index = save
                    scalar = 0xFFFD
                }
            } else {
                scalar = 0xFFFD
            }
        } else if scalar >= 0xDC00 && scalar <= 0xDFFF {
            scalar = 0xFFFD
        }
        let unicode = Unicode.Scalar(scalar) ?? "\u{FFFD}"
        for unit in UTF8.encode(unicode)! { scratch.append(unit) }
    }
}
