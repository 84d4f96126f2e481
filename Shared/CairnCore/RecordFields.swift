/// Typed, strict access to one JSON object of an input record, with errors that name the
/// field by its path (`payload.guideId`, `global_ctx.widget_id`) and say what was expected.
///
/// Every adapter reads records through this, so the same fault reads the same way in every
/// format. `null` counts as absent, as Segment's clients send it for unset fields.
struct RecordFields {
    let object: JSONObject
    /// The path of `object` inside the record, or "" for the record itself.
    let path: String

    init(_ object: JSONObject, path: String = "") {
        self.object = object
        self.path = path
    }

    func field(_ key: String) -> String { path.isEmpty ? key : path + "." + key }

    func value(_ key: String) -> JSON? {
        switch object[key] {
        case nil, .null?: return nil
        case let value?: return value
        }
    }

    /// A string field; empty strings count as absent unless `allowEmpty`.
    func string(_ key: String, required: Bool = false, allowEmpty: Bool = false) throws(EventError) -> String? {
        switch value(key) {
        case nil:
            if required { throw EventError(.missingField, field: field(key), "is required") }
            return nil
        case .string(let text)?:
            if text.isEmpty && !allowEmpty {
                if required { throw EventError(.missingField, field: field(key), "is required and must not be empty") }
                return nil
            }
            return text
        case let other?:
            throw EventError(.invalidField, field: field(key), "expected a string, found \(other.typeName)")
        }
    }

    /// An identifier that may arrive as a string or a whole number (Segment sources type ids
    /// as ints); always returned as a string.
    func identifier(_ key: String, required: Bool = false) throws(EventError) -> String? {
        switch value(key) {
        case .int(let number)?: return String(number)
        case .double(let number)? where number.rounded() == number && abs(number) < 1e15: return String(Int64(number))
        case .double?, .bool?, .array?, .object?:
            throw EventError(.invalidField, field: field(key), "expected a string or whole-number id, found \(value(key)!.typeName)")
        default: return try string(key, required: required)
        }
    }

    /// A whole number (JSON integer, or a float with no fraction); with `acceptingDigitStrings`,
    /// also a string that writes one exactly (`"4"`, `"-2"`: no sign `+`, no leading zero, no
    /// spaces), a lossless coercion where two seeds type a field differently.
    func integer(
        _ key: String,
        required: Bool = false,
        range: ClosedRange<Int64>? = nil,
        acceptingDigitStrings: Bool = false
    ) throws(EventError) -> Int64? {
        guard let value = value(key) else {
            if required { throw EventError(.missingField, field: field(key), "is required") }
            return nil
        }
        var whole = value.intValue
        if whole == nil, acceptingDigitStrings, let text = value.stringValue, let parsed = Int64(text), String(parsed) == text { whole = parsed }
        guard let number = whole else {
            throw EventError(.invalidField, field: field(key), "expected an integer, found \(value.serializedString())")
        }
        if let range, !range.contains(number) {
            throw EventError(.invalidField, field: field(key), "expected an integer from \(range.lowerBound) to \(range.upperBound), found \(number)")
        }
        return number
    }

    /// One of a documented set of strings.
    func oneOf(_ key: String, _ allowed: [String], required: Bool = false) throws(EventError) -> String? {
        guard let text = try string(key, required: required) else { return nil }
        guard allowed.contains(text) else {
            throw EventError(
                .invalidField,
                field: field(key),
                "expected one of \(allowed.map { "'\($0)'" }.joined(separator: ", ")), found '\(text)'"
            )
        }
        return text
    }

    func object(_ key: String, required: Bool = false) throws(EventError) -> JSONObject? {
        switch value(key) {
        case nil:
            if required { throw EventError(.missingField, field: field(key), "is required") }
            return nil
        case .object(let nested)?: return nested
        case let other?: throw EventError(.invalidField, field: field(key), "expected an object, found \(other.typeName)")
        }
    }

    /// An RFC 3339 timestamp.
    func timestamp(_ key: String) throws(EventError) -> Timestamp? {
        guard let text = try string(key) else {
            if let other = value(key), other.stringValue == nil {
                throw EventError(.invalidField, field: field(key), "expected an RFC 3339 timestamp string, found \(other.typeName)")
            }
            return nil
        }
        guard let timestamp = Timestamp(parsing: text) else {
            throw EventError(.invalidField, field: field(key), "expected an RFC 3339 timestamp such as 2024-05-01T12:00:00.000Z, found '\(text)'")
        }
        return timestamp
    }

    /// Refuses keys the format does not define.
    func rejectUnknown(_ allowed: Set<String>, format: String) throws(EventError) {
        for key in object.keys where !allowed.contains(key) {
            throw EventError(.unknownField, field: field(key), "is not a field of \(format)")
        }
    }

    /// Refuses `key` when present (a field only allowed in other cases).
    func forbid(_ key: String, _ reason: String) throws(EventError) {
        if value(key) != nil { throw EventError(.invalidField, field: field(key), reason) }
    }
}
