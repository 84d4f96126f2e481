/// Reads Userpilot-schema events (seed `003_1db99f137823d79d.txt`) exactly as the export
/// documents them, checking every field it defines.
///
/// Decisions the seed leaves open, documented in the README's mapping table:
/// - The app is the one the record was sent to (`--app` or the write key). A record may
///   repeat it in `app_token`; a different value is refused rather than silently re-homed.
/// - `internal_event_id` is always recomputed (DESIGN.md); a value in the record is ignored,
///   because Userpilot does not publish its exact key encoding.
/// - The seed's examples carry the object as `attributes`; the field table calls it
///   `metadata`. Either is accepted, not both.
/// - A missing `inserted_at` means the time of receipt.
public enum UserpilotAdapter {
    /// The `source` values the schema lists.
    public static let sources: Set<String> = ["web-client", "backend-http", "backend-hubspot", "backend-salesforce", "backend-segment"]

    static let stringFields: [String] = [
        "event_name", "user_id", "company_id", "source", "hostname", "pathname", "device_type", "user_agent",
        "operating_system", "browser", "browser_language", "session", "country_code", "app_token", "internal_event_id",
        "inserted_at",
    ]
    static let knownFields: Set<String> = Set(stringFields + ["event_type", "screen_width", "screen_height", "metadata", "attributes"])

    /// True when the record has the Userpilot shape (an `event_type` field), for `--format auto`.
    public static func matches(_ record: JSONObject) -> Bool {
        record["event_type"] != nil
    }

    /// Turns one Userpilot record into a canonical event for `app`.
    /// - Throws: ``EventError`` naming the field and what was expected.
    public static func canonicalize(_ record: JSONObject, app: String, receivedAt: Timestamp) throws(EventError) -> CanonicalEvent {
        for key in record.keys where !knownFields.contains(key) {
            throw EventError(.unknownField, field: key, "is not a field of the Userpilot event schema")
        }
        func string(_ key: String) throws(EventError) -> String? {
            switch record[key] {
            case nil, .null?: return nil
            case .string(let value)?: return value.isEmpty ? nil : value
            case let other?: throw EventError(.invalidField, field: key, "expected a string, found \(other.typeName)")
            }
        }
        func pixels(_ key: String) throws(EventError) -> Int? {
            switch record[key] {
            case nil, .null?: return nil
            case let value?:
                guard let number = value.intValue, number >= 0, number <= 1_000_000 else {
                    throw EventError(.invalidField, field: key, "expected a non-negative integer number of pixels, found \(value.serializedString())")
                }
                return Int(number)
            }
        }

        guard let typeName = try string("event_type") else {
            throw EventError(.missingField, field: "event_type", "is required (one of \(EventType.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        guard let type = EventType(rawValue: typeName) else {
            throw EventError(.invalidField, field: "event_type", "expected one of \(EventType.allCases.map(\.rawValue).joined(separator: ", ")), found '\(typeName)'")
        }
        if let token = try string("app_token"), token != app {
            throw EventError(.appMismatch, field: "app_token", "is '\(token)' but the events were sent to app '\(app)'")
        }

        let name = try string("event_name") ?? ""
        if type.hasEmptyName, !name.isEmpty {
            throw EventError(.invalidField, field: "event_name", "must be empty for \(type.rawValue) events, found '\(name)'")
        }
        switch type {
        case .track where name.isEmpty:
            throw EventError(.missingField, field: "event_name", "is required for track events")
        case .trackFeature where name.isEmpty:
            throw EventError(.missingField, field: "event_name", "is required for track_feature events (the feature tag id)")
        case .interaction:
            try checkInteractionName(name)
        default:
            break
        }

        let userId = try string("user_id")
        let companyId = try string("company_id")
        if type == .identifyUser, userId == nil {
            throw EventError(.missingField, field: "user_id", "is required for identify_user events")
        }
        if type == .identifyCompany, companyId == nil {
            throw EventError(.missingField, field: "company_id", "is required for identify_company events")
        }

        let source = try string("source") ?? "web-client"
        guard sources.contains(source) else {
            throw EventError(.invalidField, field: "source", "expected one of \(sources.sorted().joined(separator: ", ")), found '\(source)'")
        }

        var insertedAt = receivedAt
        if let text = try string("inserted_at") {
            guard let parsed = Timestamp(parsing: text) else {
                throw EventError(.invalidField, field: "inserted_at", "expected an RFC 3339 UTC timestamp such as 2024-05-01T12:00:00.000000Z, found '\(text)'")
            }
            insertedAt = parsed
        }

        if record["metadata"] != nil, record["attributes"] != nil {
            throw EventError(.invalidField, field: "attributes", "must not be given together with metadata")
        }
        let metadataKey = record["attributes"] != nil ? "attributes" : "metadata"
        var metadata = JSONObject()
        switch record[metadataKey] {
        case nil, .null?: break
        case .object(let object)?: metadata = object
        case let other?: throw EventError(.invalidField, field: metadataKey, "expected an object, found \(other.typeName)")
        }
        if type == .pageView || type == .sessionStart || type == .trackFeature, !metadata.isEmpty {
            throw EventError(.invalidField, field: metadataKey, "must be an empty object for \(type.rawValue) events")
        }

        let country = try string("country_code")
        if let country, country.utf8.count != 2 || !country.utf8.allSatisfy({ (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) }) {
            throw EventError(.invalidField, field: "country_code", "expected a 2-letter country code, found '\(country)'")
        }

        return CanonicalEvent(
            appToken: app, eventType: type, eventName: name, userId: userId, companyId: companyId, source: source,
            insertedAt: insertedAt, hostname: try string("hostname"), pathname: try string("pathname"),
            screenWidth: try pixels("screen_width"), screenHeight: try pixels("screen_height"),
            deviceType: try string("device_type"), userAgent: try string("user_agent"),
            operatingSystem: try string("operating_system"), browser: try string("browser"),
            browserLanguage: try string("browser_language"), session: try string("session"),
            countryCode: country?.uppercased(), metadata: metadata, receivedAt: receivedAt, origin: .userpilot)
    }

    /// Interaction names are `{entity_type}:{entity_id}:{entity_interaction_status}`.
    static func checkInteractionName(_ name: String) throws(EventError) {
        let parts = name.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 3, parts.allSatisfy({ !$0.isEmpty }) else {
            throw EventError(.invalidField, field: "event_name", "expected {entity_type}:{entity_id}:{status} for interaction events (e.g. checklist:2:SEEN), found '\(name)'")
        }
        let status = parts[2]
        guard status.utf8.allSatisfy({ (0x41...0x5A).contains($0) || $0 == UInt8(ascii: "_") }) else {
            throw EventError(.invalidField, field: "event_name", "expected an upper-case interaction status such as SEEN or COMPLETED, found '\(status)'")
        }
    }
}
