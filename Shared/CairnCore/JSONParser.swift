/// Parses JSON text (RFC 8259) strictly: UTF-8 is validated, nesting is capped, and
/// `NaN`, `Infinity`, comments and trailing commas are refused.
public struct JSONParser {
    /// How deep arrays and objects may nest before the input is refused. Defaults to `256`.
    public static let defaultMaximumDepth = 256

    /// Parses one JSON document from `bytes`.
    /// - Throws: ``JSONParseError`` naming the byte offset and what was expected.
    public static func parse<Bytes: Collection<UInt8>>(_ bytes: Bytes, maximumDepth: Int = defaultMaximumDepth) throws(JSONParseError) -> JSON {
        let result =
            bytes.withContiguousStorageIfAvailable { parseResult(UnsafeRawBufferPointer($0), maximumDepth) }
            ?? Array(bytes).withUnsafeBytes { parseResult($0, maximumDepth) }
        return try result.get()
    }

    /// Parses one JSON document from a string.
    public static func parse(_ text: String, maximumDepth: Int = defaultMaximumDepth) throws(JSONParseError) -> JSON {
        var text = text
        return try text.withUTF8 { parseResult(UnsafeRawBufferPointer($0), maximumDepth) }.get()
    }

    /// Parses one JSON document from raw bytes.
    public static func parse(_ buffer: UnsafeRawBufferPointer, maximumDepth: Int = defaultMaximumDepth) throws(JSONParseError) -> JSON {
        try parseBuffer(buffer, maximumDepth: maximumDepth)
    }

    private static func parseResult(_ buffer: UnsafeRawBufferPointer, _ maximumDepth: Int) -> Result<JSON, JSONParseError> {
        do {
            return .success(try parseBuffer(buffer, maximumDepth: maximumDepth))
        } catch {
            return .failure(error)
        }
    }

    static func parseBuffer(_ buffer: UnsafeRawBufferPointer, maximumDepth: Int) throws(JSONParseError) -> JSON {
        var parser = JSONParser(buffer: buffer, maximumDepth: maximumDepth)
        do throws(JSONParseError) {
            parser.skipWhitespace()
            let value = try parser.parseValue(depth: 0)
            parser.skipWhitespace()
            if parser.index != buffer.count {
                throw parser.error("unexpected data after the JSON value")
            }
            return value
        } catch {
            // Strings are checked as they are read; a document whose other bytes are not UTF-8
            // is named as such too, not as a syntax error (checked only once it has failed).
            if !error.isInvalidUTF8, !error.isDepthExceeded, String(validating: buffer, as: UTF8.self) == nil {
                throw JSONParseError(offset: error.offset, message: "invalid UTF-8 in the document")
            }
            throw error
        }
    }

    private let buffer: UnsafeRawBufferPointer
    private let maximumDepth: Int
    private var index = 0

    private init(buffer: UnsafeRawBufferPointer, maximumDepth: Int) {
        self.buffer = buffer
        self.maximumDepth = maximumDepth
    }

    private func error(_ message: String) -> JSONParseError {
        JSONParseError(offset: index, message: message)
    }

    private mutating func skipWhitespace() {
        while index < buffer.count {
            switch buffer[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    private mutating func parseValue(depth: Int) throws(JSONParseError) -> JSON {
        guard index < buffer.count else { throw error("unexpected end of input, expected a value") }
        switch buffer[index] {
        case UInt8(ascii: "{"): return try parseObject(depth: depth + 1)
        case UInt8(ascii: "["): return try parseArray(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"):
            try expectLiteral("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try expectLiteral("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try expectLiteral("null")
            return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        case UInt8(ascii: "N"), UInt8(ascii: "I"): throw error("NaN and Infinity are not JSON numbers")
        default: throw error("unexpected character, expected a value")
        }
    }

    private mutating func expectLiteral(_ literal: StaticString) throws(JSONParseError) {
        let count = literal.utf8CodeUnitCount
        guard index + count <= buffer.count else { throw error("unexpected end of input in a literal") }
        let start = literal.utf8Start
        for offset in 0..<count where buffer[index + offset] != start[offset] {
            throw error("invalid literal")
        }
        index += count
    }

    private mutating func parseObject(depth: Int) throws(JSONParseError) -> JSON {
        guard depth <= maximumDepth else { throw error("nesting deeper than \(maximumDepth) levels") }
        index += 1
        var builder = JSONObject.KeyedBuilder()
        skipWhitespace()
        if index < buffer.count, buffer[index] == UInt8(ascii: "}") {
            index += 1
            return .object(builder.object)
        }
        while true {
            skipWhitespace()
            guard index < buffer.count, buffer[index] == UInt8(ascii: "\"") else {
                throw error("expected a string key in an object")
            }
            let key = try parseString()
            skipWhitespace()
            guard index < buffer.count, buffer[index] == UInt8(ascii: ":") else { throw error("expected ':' after an object key") }
            index += 1
            skipWhitespace()
            let value = try parseValue(depth: depth)
            // A repeated key keeps its last value, as JavaScript's JSON.parse does.
            builder.set(key, value)
            skipWhitespace()
            guard index < buffer.count else { throw error("unexpected end of input in an object") }
            if buffer[index] == UInt8(ascii: ",") {
                index += 1
                continue
            }
            if buffer[index] == UInt8(ascii: "}") {
                index += 1
                return .object(builder.object)
            }
            throw error("expected ',' or '}' in an object")
        }
    }

    private mutating func parseArray(depth: Int) throws(JSONParseError) -> JSON {
        guard depth <= maximumDepth else { throw error("nesting deeper than \(maximumDepth) levels") }
        index += 1
        var array: [JSON] = []
        skipWhitespace()
        if index < buffer.count, buffer[index] == UInt8(ascii: "]") {
            index += 1
            return .array(array)
        }
        while true {
            skipWhitespace()
            array.append(try parseValue(depth: depth))
            skipWhitespace()
            guard index < buffer.count else { throw error("unexpected end of input in an array") }
            if buffer[index] == UInt8(ascii: ",") {
                index += 1
                continue
            }
            if buffer[index] == UInt8(ascii: "]") {
                index += 1
                return .array(array)
            }
            throw error("expected ',' or ']' in an array")
        }
    }

    private mutating func parseString() throws(JSONParseError) -> String {
        index += 1
        let start = index
        // Fast path: no escapes, so the bytes are the string. ASCII needs no UTF-8 validation,
        // and skipping it avoids the generic validator on the hottest path.
        var isASCII = true
        while index < buffer.count {
            let byte = buffer[index]
            if byte == UInt8(ascii: "\"") {
                let slice = UnsafeRawBufferPointer(rebasing: buffer[start..<index])
                index += 1
                if isASCII { return String(decoding: slice, as: UTF8.self) }
                guard let string = String(validating: slice, as: UTF8.self) else {
                    index = start
                    throw error("invalid UTF-8 in a string")
                }
                return string
            }
            if byte == UInt8(ascii: "\\") { break }
            if byte < 0x20 { throw error("unescaped control character in a string") }
            if byte >= 0x80 { isASCII = false }
            index += 1
        }
        var bytes = [UInt8](UnsafeRawBufferPointer(rebasing: buffer[start..<index]))
        while index < buffer.count {
            let byte = buffer[index]
            if byte == UInt8(ascii: "\"") {
                index += 1
                guard let string = String(validating: bytes, as: UTF8.self) else {
                    throw error("invalid UTF-8 in a string")
                }
                return string
            }
            if byte < 0x20 { throw error("unescaped control character in a string") }
            if byte != UInt8(ascii: "\\") {
                bytes.append(byte)
                index += 1
                continue
            }
            index += 1
            guard index < buffer.count else { break }
            let escape = buffer[index]
            index += 1
            switch escape {
            case UInt8(ascii: "\""): bytes.append(0x22)
            case UInt8(ascii: "\\"): bytes.append(0x5C)
            case UInt8(ascii: "/"): bytes.append(0x2F)
            case UInt8(ascii: "b"): bytes.append(0x08)
            case UInt8(ascii: "f"): bytes.append(0x0C)
            case UInt8(ascii: "n"): bytes.append(0x0A)
            case UInt8(ascii: "r"): bytes.append(0x0D)
            case UInt8(ascii: "t"): bytes.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try parseHex4()
                if (0xD800...0xDBFF).contains(scalar) {
                    guard index + 1 < buffer.count, buffer[index] == UInt8(ascii: "\\"), buffer[index + 1] == UInt8(ascii: "u") else {
                        throw error("unpaired UTF-16 surrogate in a \\u escape")
                    }
                    index += 2
                    let low = try parseHex4()
                    guard (0xDC00...0xDFFF).contains(low) else { throw error("unpaired UTF-16 surrogate in a \\u escape") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00...0xDFFF).contains(scalar) {
                    throw error("unpaired UTF-16 surrogate in a \\u escape")
                }
                guard let unicode = Unicode.Scalar(scalar) else { throw error("invalid \\u escape") }
                bytes.append(contentsOf: UTF8.encode(unicode)!)
            default:
                throw error("invalid escape sequence in a string")
            }
        }
        throw error("unterminated string")
    }

    private mutating func parseHex4() throws(JSONParseError) -> UInt32 {
        guard index + 4 <= buffer.count else { throw error("truncated \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = buffer[index]
            let digit: UInt32
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
            default: throw error("invalid hex digit in a \\u escape")
            }
            value = value << 4 | digit
            index += 1
        }
        return value
    }

    private mutating func parseNumber() throws(JSONParseError) -> JSON {
        let start = index
        var isInteger = true
        // What decides whether a Double holds the literal exactly: its significant digits, the
        // digits after the point, and the exponent (counted while scanning, not re-read).
        var significant = 0
        var trailingZeros = 0
        var fractionDigits = 0
        func digit(_ byte: UInt8, inFraction: Bool) {
            if inFraction { fractionDigits += 1 }
            if byte == UInt8(ascii: "0") {
                if significant > 0 { trailingZeros += 1 }
            } else {
                significant += trailingZeros + 1
                trailingZeros = 0
            }
        }
        if buffer[index] == UInt8(ascii: "-") { index += 1 }
        guard index < buffer.count else { throw error("truncated number") }
        if buffer[index] == UInt8(ascii: "0") {
            index += 1
        } else if (UInt8(ascii: "1")...UInt8(ascii: "9")).contains(buffer[index]) {
            while index < buffer.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(buffer[index]) {
                digit(buffer[index], inFraction: false)
                index += 1
            }
        } else {
            throw error(buffer[index] == UInt8(ascii: "I") ? "NaN and Infinity are not JSON numbers" : "invalid number")
        }
        if index < buffer.count, buffer[index] == UInt8(ascii: ".") {
            isInteger = false
            index += 1
            let digitsStart = index
            while index < buffer.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(buffer[index]) {
                digit(buffer[index], inFraction: true)
                index += 1
            }
            guard index > digitsStart else { throw error("expected digits after '.' in a number") }
        }
        var exponent = 0
        if index < buffer.count, buffer[index] == UInt8(ascii: "e") || buffer[index] == UInt8(ascii: "E") {
            isInteger = false
            index += 1
            var negative = false
            if index < buffer.count, buffer[index] == UInt8(ascii: "+") || buffer[index] == UInt8(ascii: "-") {
                negative = buffer[index] == UInt8(ascii: "-")
                index += 1
            }
            let digitsStart = index
            while index < buffer.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(buffer[index]) {
                if exponent < 10_000_000 { exponent = exponent * 10 + Int(buffer[index] - UInt8(ascii: "0")) }
                index += 1
            }
            guard index > digitsStart else { throw error("expected digits in a number's exponent") }
            if negative { exponent = -exponent }
        }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: buffer[start..<index]), as: UTF8.self)
        if isInteger { return Int64(text).map(JSON.int) ?? .number(text) }
        guard let value = Double(text), value.isFinite, fractionDigits - exponent <= Self.maximumScale else {
            index = start
            throw error("number out of range")
        }
        // A Double holds 15 significant digits exactly; more, or a value too small for it, is kept as written.
        if significant > 15 || (value == 0 && significant > 0) { return .number(text) }
        return .double(value)
    }

    /// The most digits after the decimal point PostgreSQL's `numeric` (and so jsonb) holds.
    static let maximumScale = 16_383
}

/// Why a JSON document could not be parsed, and where.
public struct JSONParseError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The byte offset at which parsing failed.
    public let offset: Int
    public let message: String
    /// The document was refused for nesting deeper than the limit, not for its syntax.
    public var isDepthExceeded: Bool { message.hasPrefix("nesting deeper") }
    /// The document was refused for bytes that are not UTF-8.
    public var isInvalidUTF8: Bool { message.hasPrefix("invalid UTF-8") }

    public var description: String { "invalid JSON at byte \(offset): \(message)" }
}
