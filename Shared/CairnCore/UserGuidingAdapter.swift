/// Reads UserGuiding events (UserGuiding's webhook guide) in Cairn's record shape
/// `{"event": "guide started", "payload": {…}, "user_id": "…", "timestamp": "…"}`, and the
/// same events as Segment `track` calls from Segment's UserGuiding source (UserGuiding's Segment guide), into
/// one canonical form: a `track` named with the Title Case name, with snake_case properties.
///
/// Payloads are checked field by field against ``UserGuidingCatalog``: required fields,
/// types, the enumerations (`action`, `emojiScore`, `questionType`, `role`, fallback `type`),
/// and the survey rules (`score` only with rating questions, `emojiScore` only with emoji and
/// thumbs questions, `choices` only with Multiple Choice, `feedback` only with Written Feedback).
public enum UserGuidingAdapter {
    static let recordKeys: Set<String> = ["event", "payload", "user_id", "timestamp"]

    /// True for the native record shape (`event` plus a `payload` object), for `--format auto`.
    public static func matches(_ record: JSONObject) -> Bool {
        record["event"]?.stringValue != nil && record["payload"]?.objectValue != nil
    }

    public static func canonicalize(_ record: JSONObject, context: IngestContext) throws(EventError) -> CanonicalEvent {
        let fields = RecordFields(record)
        try fields.rejectUnknown(recordKeys, format: "a UserGuiding record (event, payload, user_id, timestamp)")
        var name = try fields.string("event", required: true)!.lowercased()
        // Integrations label the events "guide started (userguiding)"; the label is not part of the name.
        if name.hasSuffix(" (userguiding)") { name = String(name.dropLast(" (userguiding)".count)) }
        guard let kind = UserGuidingCatalog.byName[name] else {
            throw EventError(
                .invalidField,
                field: "event",
                "is not one of the 25 UserGuiding events (e.g. 'guide started', 'survey question answer'), found '\(name)'"
            )
        }
        let payload = RecordFields(try fields.object("payload", required: true)!, path: "payload")
        let properties = try self.properties(of: kind, from: payload, segmentForm: false, alsoAllowed: ["user_id"])
        // UserGuiding's Segment guide: UserGuiding sends the user id in the payload too; the record's own wins, and the two must agree.
        let recordUser = try fields.identifier("user_id")
        let payloadUser = try payload.identifier("user_id")
        if let recordUser, let payloadUser, recordUser != payloadUser {
            throw EventError(.invalidField, field: "payload.user_id", "is '\(payloadUser)' but the record's user_id is '\(recordUser)'")
        }
        return event(
            kind: kind,
            properties: properties,
            userId: recordUser ?? payloadUser,
            anonymousId: nil,
            insertedAt: try fields.timestamp("timestamp") ?? context.receivedAt,
            messageId: nil,
            source: "web-client",
            origin: .userguiding,
            context: context
        )
    }

    /// Builds the canonical event both forms share.
    static func event(
        kind: UserGuidingCatalog.Kind,
        properties: JSONObject,
        userId: String?,
        anonymousId: String?,
        insertedAt: Timestamp,
        messageId: String?,
        source: String,
        origin: InputFormat,
        context: IngestContext,
        internalEventId: UInt64? = nil
    ) -> CanonicalEvent {
        let page = properties["page_url"]?.stringValue.flatMap(PageURL.split)
        return CanonicalEvent(
            appToken: context.appToken,
            eventType: .track,
            eventName: kind.title,
            userId: userId,
            companyId: nil,
            anonymousId: anonymousId,
            source: source,
            insertedAt: insertedAt,
            hostname: page?.hostname,
            pathname: page?.pathname,
            metadata: properties,
            messageId: messageId,
            receivedAt: context.receivedAt,
            origin: origin,
            internalEventId: internalEventId
        )
    }

    /// Checks a payload (native names) or a Segment `properties` object (snake_case names)
    /// against `kind`, returning the canonical properties under snake_case names.
    static func properties(
        of kind: UserGuidingCatalog.Kind,
        from fields: RecordFields,
        segmentForm: Bool,
        alsoAllowed: Set<String> = []
    ) throws(EventError) -> JSONObject {
        let names = kind.fields.map { segmentForm ? $0.snakeName : $0.name }
        try fields.rejectUnknown(Set(names).union(alsoAllowed), format: "the '\(kind.name)' payload (fields: \(names.joined(separator: ", ")))")
        var properties = JSONObject()
        for field in kind.fields {
            let key = segmentForm ? field.snakeName : field.name
            let value: JSON?
            switch field.type {
            case .string:
                value = try fields.string(key, required: field.required, allowEmpty: true).map(JSON.string)
            case .identifier:
                // UserGuiding's webhook guide types ids as strings; UserGuiding's Segment guide as ints. Either form, in either shape, becomes a string.
                value = try fields.identifier(key, required: field.required).map(JSON.string)
                // Engagement reports key their rollup by this id: it obeys the limit on ids.
                if let id = value?.stringValue, id.utf8.count > EventAdmission.maximumIdentifierBytes {
                    throw EventError(
                        .fieldTooLong,
                        field: fields.field(key),
                        "is \(id.utf8.count) bytes; ids are at most \(EventAdmission.maximumIdentifierBytes) bytes"
                    )
                }
            case .integer:
                // UserGuiding's webhook guide types scores as numbers; a whole number written as a string ("4") is the same score.
                value = try fields.integer(key, required: field.required, acceptingDigitStrings: true).map(JSON.int)
            case .oneOf(let allowed):
                // UserGuiding's Segment guide lists no questionType for a survey answer: optional in the Segment form.
                let required = field.required && !(segmentForm && field.name == "questionType")
                value = try fields.oneOf(key, allowed, required: required).map(JSON.string)
            }
            if let value { properties.append(field.snakeName, value) }
        }
        try checkRules(kind, properties, fields: fields, segmentForm: segmentForm)
        return properties
    }

    /// The rules between fields that the seed states in prose.
    private static func checkRules(
        _ kind: UserGuidingCatalog.Kind,
        _ properties: JSONObject,
        fields: RecordFields,
        segmentForm: Bool
    ) throws(EventError) {
        func name(_ native: String) -> String { fields.field(segmentForm ? UserGuidingCatalog.snakeCase(native) : native) }
        switch kind.name {
        case "survey question answer":
            // Without a questionType (UserGuiding's Segment guide's form) the answer fields cannot be checked against it.
            guard let type = properties["question_type"]?.stringValue else { break }
            let has = { (key: String) in properties[key] != nil }
            if UserGuidingCatalog.ratingQuestionTypes.contains(type) {
                guard let score = properties["score"]?.intValue else {
                    throw EventError(.missingField, field: name("score"), "is required when questionType is '\(type)'")
                }
                let range: ClosedRange<Int64> = type == "Star Rating" || type == "Number Rating (5)" ? 0...5 : 0...10
                guard range.contains(score) else {
                    throw EventError(
                        .invalidField,
                        field: name("score"),
                        "expected \(range.lowerBound) to \(range.upperBound) for '\(type)', found \(score)"
                    )
                }
            } else if has("score") {
                throw EventError(
                    .invalidField,
                    field: name("score"),
                    "is only allowed with the rating question types (\(UserGuidingCatalog.ratingQuestionTypes.joined(separator: ", "))), not '\(type)'"
                )
            }
            if UserGuidingCatalog.emojiQuestionTypes.contains(type) {
                // Any of the five labels: the seed does not narrow them per question type (Neutral for thumbs, say).
                guard properties["emoji_score"] != nil else {
                    throw EventError(.missingField, field: name("emojiScore"), "is required when questionType is '\(type)'")
                }
            } else if has("emoji_score") {
                throw EventError(.invalidField, field: name("emojiScore"), "is only allowed with the emoji and thumbs question types, not '\(type)'")
            }
            if type == "Multiple Choice" {
                if !has("choices") { throw EventError(.missingField, field: name("choices"), "is required when questionType is 'Multiple Choice'") }
            } else if has("choices") {
                throw EventError(.invalidField, field: name("choices"), "is only allowed when questionType is 'Multiple Choice', not '\(type)'")
            }
            if type == "Written Feedback" {
                if !has("feedback") {
                    throw EventError(.missingField, field: name("feedback"), "is required when questionType is 'Written Feedback'")
                }
            } else if has("feedback") {
                throw EventError(.invalidField, field: name("feedback"), "is only allowed when questionType is 'Written Feedback', not '\(type)'")
            }
        case "product updates feedback":
            if properties["emoji_score"] == nil && properties["feedback"] == nil {
                throw EventError(.missingField, field: name("emojiScore"), "or feedback is required: the payload carries a score, feedback, or both")
            }
        case "ai assistant fallback action click":
            if properties["type"]?.stringValue == "url" {
                if properties["url"] == nil { throw EventError(.missingField, field: name("url"), "is required when type is 'url'") }
            } else if properties["url"] != nil {
                throw EventError(.invalidField, field: name("url"), "is only allowed when type is 'url'")
            }
        default:
            break
        }
    }
}
