/// An attribute's registered type (User.com: string, number, date, boolean, JSON).
public enum AttributeType: String, Sendable, CaseIterable {
    case string, number, date, boolean, json
}

/// The attribute types an app has registered, by attribute name.
///
/// A registered attribute is coerced on ingest, and a value that cannot be coerced rejects
/// the event. An unregistered attribute is kept as a string, unless it is a JSON object or
/// array, which stays JSON (docs/formats.md, "User.com").
public struct AttributeRegistry: Sendable, Equatable {
    public var types: [String: AttributeType]

    public init(types: [String: AttributeType] = [:]) {
        self.types = types
    }

    /// Coerces every attribute of `attributes`; the error names the first that fails.
    public func coerce(_ attributes: JSONObject, fieldPrefix: String) throws(EventError) -> JSONObject {
        var result = JSONObject()
        for (name, value) in attributes {
            result.append(name, try coerce(value, name: name, field: fieldPrefix + "." + name))
        }
        return result
    }

    public func coerce(_ value: JSON, name: String, field: String) throws(EventError) -> JSON {
        if case .null = value { return .null }
        guard let type = types[name] else {
            switch value {
            case .object, .array: return value
            case .string: return value
            default: return .string(TextForm.of(value))
            }
        }
        switch type {
        case .string:
            switch value {
            case .string: return value
            case .int, .double, .number, .bool: return .string(TextForm.of(value))
            default: throw EventError(.invalidField, field: field, "is registered as a string, found \(value.typeName)")
            }
        case .number:
            switch value {
            case .int, .double, .number: return value
            case .string(let text):
                let trimmed = text.trimmingWhitespace()
                if let integer = Int64(trimmed) { return .int(integer) }
                // An integer beyond 64 bits keeps every digit, as a JSON number would.
                let digits = trimmed.first == "-" ? trimmed.dropFirst() : Substring(trimmed)
                if let first = digits.first, first != "0", digits.allSatisfy({ $0.isASCII && $0.isNumber }) { return .number(trimmed) }
                if let number = Double(trimmed), number.isFinite, trimmed.first?.isLetter == false { return .double(number) }
                throw EventError(.invalidField, field: field, "is registered as a number, found '\(text)'")
            default: throw EventError(.invalidField, field: field, "is registered as a number, found \(value.typeName)")
            }
        case .date:
            guard case .string(let text) = value, let timestamp = Timestamp(parsing: text) else {
                throw EventError(.invalidField, field: field, "is registered as a date (RFC 3339), found \(value.serializedString())")
            }
            return .string(timestamp.description)
        case .boolean:
            switch value {
            case .bool: return value
            case .string(let text) where ["true", "false"].contains(text.lowercased()): return .bool(text.lowercased() == "true")
            case .int(let number) where number == 0 || number == 1: return .bool(number == 1)
            default: throw EventError(.invalidField, field: field, "is registered as a boolean, found \(value.serializedString())")
            }
        case .json:
            return value
        }
    }
}

/// How a scalar reads as text when an unregistered attribute is stored as a string.
enum TextForm {
    static func of(_ value: JSON) -> String {
        switch value {
        case .string(let text): return text
        case .bool(let flag): return flag ? "true" : "false"
        case .null: return ""
        default: return value.serializedString()
        }
    }
}
