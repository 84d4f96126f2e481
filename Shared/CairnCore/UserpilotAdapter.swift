/// Reads Userpilot-schema events (Userpilot's event schema) exactly as the export documents them, checking
/// every field it defines.
///
/// Decisions where the seed is silent, documented in the README's mapping table:
/// - A record may carry `app_token`; it must be the token of the app it was sent to.
/// - A supplied `internal_event_id` is kept, in hex or decimal (the seed never says how its
///   composite key is serialised, so a different id is not evidence of corruption); only an
///   id that is not a 64-bit number is refused.
/// - The seed's examples carry the object as `attributes`; the field table calls it
///   `metadata`. Either is accepted, not both.
/// - A missing `inserted_at` means the time of receipt.
/// - Interaction attributes are strings, limited to the set the seed lists for the entity
///   type; `interaction_id`, when present, is `{entity_type}_{entity_id}` of the event name.
public enum UserpilotAdapter {
    /// The `source` values the schema lists.
    public static let sources = ["web-client", "backend-http", "backend-hubspot", "backend-salesforce", "backend-segment"]

    /// The attributes each interaction entity type carries (Userpilot's event schema, "Interaction Attributes").
    public static let interactionAttributes: [String: Set<String>] = [
        "survey_module": ["feedback", "interaction_id", "is_dismissed", "parent_id", "status", "survey_question", "variant"],
        "checklist": ["interaction_id", "is_dismissed", "parent_id", "status"],
        "checklist_task": ["interaction_id", "is_dismissed", "parent_id", "status"],
        "resource_center": ["article_title", "article_url", "interaction_id", "is_dismissed", "parent_id", "status"],
        "resource_center_article": ["article_title", "article_url", "interaction_id", "is_dismissed", "parent_id", "status"],
        "nps": ["feedback", "follow_up_question", "interaction_id", "score", "status", "survey_question", "submission_id"],
        "experience": ["interaction_id", "is_dismissed", "status", "total_dismissed"],
        "experience_step": ["interaction_id", "is_dismissed", "status", "total_dismissed"],
        "experiment": ["interaction_id", "is_dismissed", "never_show_again", "status", "total_dismissed", "variant"],
    ]

    static let recordKeys: Set<String> = [
        "app_token", "event_type", "event_name", "user_id", "company_id", "source", "inserted_at", "internal_event_id",
        "hostname", "pathname", "screen_width", "screen_height", "device_type", "user_agent", "operating_system", "browser",
        "browser_language", "session", "country_code", "metadata", "attributes",
    ]

    /// True when the record has the Userpilot shape, for `--format auto`: an `event_type`
    /// field, or Userpilot's event schema's example objects (`event_name` with `attributes` or `metadata`, and
    /// none of the other formats' keys).
    public static func matches(_ record: JSONObject) -> Bool {
        if record["event_type"] != nil { return true }
        return record["event_name"]?.stringValue != nil && (record["attributes"]?.objectValue != nil || record["metadata"]?.objectValue != nil)
            && ["global_ctx", "session_ctx", "event", "type", "batch"].allSatisfy { record[$0] == nil }
    }

    /// Turns one Userpilot record into a canonical event.
    /// - Throws: ``EventError`` naming the field and what was expected.
    public static func canonicalize(_ record: JSONObject, context: IngestContext) throws(EventError) -> CanonicalEvent {
        let fields = RecordFields(record)
        try fields.rejectUnknown(recordKeys, format: "the Userpilot event schema")
        let allTypes = EventType.allCases.map(\.rawValue)
        let type: EventType
        if let stated = try fields.oneOf("event_type", allTypes) {
            type = EventType(rawValue: stated)!
        } else if let name = try fields.string("event_name"), interactionParts(name) != nil {
            // Userpilot's event schema's examples leave the type out; only interactions are named {entity_type}:{entity_id}:{STATUS}.
            type = .interaction
        } else {
            throw EventError(
                .missingField,
                field: "event_type",
                "is required unless event_name is an interaction ({entity_type}:{entity_id}:{STATUS})"
            )
        }
        if let token = try fields.string("app_token"), token != context.appToken {
            throw EventError(.appMismatch, field: "app_token", "is '\(token)' but the events were sent to the app with token '\(context.appToken)'")
        }

        let name = try fields.string("event_name") ?? ""
        if type.hasEmptyName, !name.isEmpty {
            throw EventError(.invalidField, field: "event_name", "must be empty for \(type.rawValue) events, found '\(name)'")
        }
        if type == .track, name.isEmpty {
            throw EventError(.missingField, field: "event_name", "is required for track events")
        }
        if type == .trackFeature, name.isEmpty {
            throw EventError(.missingField, field: "event_name", "is required for track_feature events (the feature tag id)")
        }

        let userId = try fields.string("user_id")
        let companyId = try fields.string("company_id")
        if type == .identifyUser, userId == nil {
            throw EventError(.missingField, field: "user_id", "is required for identify_user events")
        }
        if type == .identifyCompany, companyId == nil {
            throw EventError(.missingField, field: "company_id", "is required for identify_company events")
        }
        let source = try fields.oneOf("source", sources) ?? "web-client"
        let insertedAt = try fields.timestamp("inserted_at") ?? context.receivedAt

        if fields.value("metadata") != nil, fields.value("attributes") != nil {
            throw EventError(.invalidField, field: "attributes", "must not be given together with metadata")
        }
        let metadataKey = fields.value("attributes") != nil ? "attributes" : "metadata"
        let metadata = try fields.object(metadataKey) ?? JSONObject()
        if type == .pageView || type == .sessionStart || type == .trackFeature, !metadata.isEmpty {
            throw EventError(.invalidField, field: metadataKey, "must be an empty object for \(type.rawValue) events")
        }
        if type == .interaction {
            try checkInteraction(name: name, attributes: RecordFields(metadata, path: metadataKey))
        }

        let country = try fields.string("country_code")
        if let country, country.utf8.count != 2 || !country.allSatisfy({ $0.isLetter && $0.isASCII }) {
            throw EventError(.invalidField, field: "country_code", "expected a 2-letter country code, found '\(country)'")
        }
        let event = CanonicalEvent(
            appToken: context.appToken,
            eventType: type,
            eventName: name,
            userId: userId,
            companyId: companyId,
            source: source,
            insertedAt: insertedAt,
            hostname: try fields.string("hostname"),
            pathname: try fields.string("pathname"),
            screenWidth: try fields.integer("screen_width", range: 0...1_000_000).map(Int.init),
            screenHeight: try fields.integer("screen_height", range: 0...1_000_000).map(Int.init),
            deviceType: try fields.string("device_type"),
            userAgent: try fields.string("user_agent"),
            operatingSystem: try fields.string("operating_system"),
            browser: try fields.string("browser"),
            browserLanguage: try fields.string("browser_language"),
            session: try fields.string("session"),
            countryCode: country?.uppercased(),
            metadata: metadata,
            receivedAt: context.receivedAt,
            origin: .userpilot,
            internalEventId: try CanonicalEvent.suppliedId(fields.value("internal_event_id"))
        )
        return event
    }

    /// Interaction names are `{entity_type}:{entity_id}:{STATUS}`, and the attributes are the
    /// entity type's set, all strings.
    /// The three parts of an interaction name, `{entity_type}:{entity_id}:{STATUS}`, or nil.
    static func interactionParts(_ name: String) -> [String]? {
        let parts = name.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 3, parts.allSatisfy({ !$0.isEmpty }) else { return nil }
        return parts
    }

    /// The seed lists the attributes of the common entity types; other entity types (it says
    /// the list is of common ones) are interactions too, with their attributes kept, as long
    /// as the entity type is a lower-case word.
    static func checkInteraction(name: String, attributes: RecordFields) throws(EventError) {
        guard let parts = interactionParts(name) else {
            throw EventError(
                .invalidField,
                field: "event_name",
                "expected {entity_type}:{entity_id}:{STATUS} for interaction events (e.g. checklist:2:SEEN), found '\(name)'"
            )
        }
        guard let first = parts[0].unicodeScalars.first, ("a"..."z").contains(first),
            parts[0].unicodeScalars.allSatisfy({ ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" })
        else {
            throw EventError(
                .invalidField,
                field: "event_name",
                "expected a lower-case entity type such as checklist or survey_module, found '\(parts[0])'"
            )
        }
        guard parts[2].allSatisfy({ ($0.isUppercase && $0.isASCII) || $0 == "_" }) else {
            throw EventError(
                .invalidField,
                field: "event_name",
                "expected an upper-case interaction status such as SEEN or COMPLETED, found '\(parts[2])'"
            )
        }
        if let allowed = interactionAttributes[parts[0]] {
            try attributes.rejectUnknown(allowed, format: "the \(parts[0]) interaction attributes (\(allowed.sorted().joined(separator: ", ")))")
        }
        for key in attributes.object.keys {
            _ = try attributes.string(key, allowEmpty: true)
        }
        if let id = try attributes.string("interaction_id"), id != "\(parts[0])_\(parts[1])" {
            throw EventError(
                .invalidField,
                field: attributes.field("interaction_id"),
                "expected '\(parts[0])_\(parts[1])' to match the event name, found '\(id)'"
            )
        }
        for flag in ["is_dismissed", "never_show_again"] {
            _ = try attributes.oneOf(flag, ["0", "1"])
        }
        if parts[0] == "experiment" { _ = try attributes.oneOf("variant", ["A", "B", "C"]) }
        if parts[0] == "nps", let score = try attributes.string("score") {
            guard let value = Int(score), (0...10).contains(value) else {
                throw EventError(.invalidField, field: attributes.field("score"), "expected an NPS score from \"0\" to \"10\", found '\(score)'")
            }
        }
    }
}
