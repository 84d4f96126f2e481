/// Reads Userlike's client tracking callbacks (Userlike's tracking guide) in Cairn's record shape
/// `{"event_name": "chat_started", "global_ctx": {…}, "session_ctx": {…}, "timestamp": "…"}`.
///
/// - `client_uuid` is the contact, stored as `anonymous_id`; `session_id` becomes `session`.
/// - The seed types `widget_id`, `operator_group_id` and `operator_id` as integers and
///   `chat_id` as a string; so are they checked and stored.
/// - `client_email` and `client_name` are personal data, kept, hashed (`client_email_sha256`)
///   or dropped as the app's setting says (default: hashed).
/// - When the app enables it, `client_email` identifies the contact: the event's `user_id` is
///   the email (kept) or its SHA-256 (otherwise), and identity aliases `client_uuid` to it.
public enum UserlikeAdapter {
    /// Every event name the seed lists (35; the seed is the source of truth).
    public static let eventNames: [String] = [
        "button_displayed", "chat_connected", "chat_connected_proactive", "chat_requested", "chat_started",
        "chat_started_proactive", "chat_window_maximized", "chat_window_minimized", "contact_first_message",
        "conversation_resume", "disclaimer_ok", "error_message", "feedback_rating_cancel", "feedback_rating_show",
        "feedback_submit", "group_select_show", "group_select_submit", "message_client_terminating",
        "message_operator_terminating", "post_survey_show", "post_survey_submit", "pre_survey_show", "pre_survey_submit",
        "proactive_offer", "proactive_timer", "rating_submit", "register_cancel", "register_show", "register_submit",
        "slot_available", "slot_check", "slot_unavailable", "transcript_cancel", "transcript_show", "transcript_submit",
    ]
    static let eventNameSet = Set(eventNames)
    static let recordKeys: Set<String> = ["event_name", "global_ctx", "session_ctx", "timestamp"]
    static let globalKeys: Set<String> = ["client_uuid", "operator_group_id", "widget_id", "widget_lang"]
    static let sessionKeys: Set<String> = ["session_id", "chat_id", "client_name", "client_email", "operator_id", "operator_name", "custom_data"]

    /// True for the Userlike shape (`event_name` with a context object), for `--format auto`.
    public static func matches(_ record: JSONObject) -> Bool {
        record["event_name"]?.stringValue != nil && (record["global_ctx"] != nil || record["session_ctx"] != nil) && record["event_type"] == nil
    }

    public static func canonicalize(_ record: JSONObject, context: IngestContext) throws(EventError) -> CanonicalEvent {
        let fields = RecordFields(record)
        try fields.rejectUnknown(recordKeys, format: "a Userlike record (event_name, global_ctx, session_ctx, timestamp)")
        let name = try fields.string("event_name", required: true)!
        guard eventNameSet.contains(name) else {
            throw EventError(
                .invalidField,
                field: "event_name",
                "is not one of Userlike's \(eventNames.count) tracking events (e.g. 'chat_started'), found '\(name)'"
            )
        }
        let global = RecordFields(try fields.object("global_ctx", required: true)!, path: "global_ctx")
        try global.rejectUnknown(globalKeys, format: "Userlike's global context (\(globalKeys.sorted().joined(separator: ", ")))")
        let clientUUID = try global.string("client_uuid", required: true)!
        var metadata = JSONObject()
        metadata.append("widget_id", .int(try global.integer("widget_id", required: true)!))
        if let group = try global.integer("operator_group_id") { metadata.append("operator_group_id", .int(group)) }
        if let language = try global.string("widget_lang") {
            guard language.utf8.count == 2, language.allSatisfy({ $0.isLetter && $0.isASCII }) else {
                throw EventError(
                    .invalidField,
                    field: "global_ctx.widget_lang",
                    "expected an ISO 639-1 two-letter language code, found '\(language)'"
                )
            }
            metadata.append("widget_lang", .string(language.lowercased()))
        }
        var sessionId: String?
        var userId: String?
        if let sessionObject = try fields.object("session_ctx") {
            let session = RecordFields(sessionObject, path: "session_ctx")
            try session.rejectUnknown(sessionKeys, format: "Userlike's session context (\(sessionKeys.sorted().joined(separator: ", ")))")
            sessionId = try session.string("session_id")
            if let chat = try session.string("chat_id") { metadata.append("chat_id", .string(chat)) }
            if let operatorId = try session.integer("operator_id") { metadata.append("operator_id", .int(operatorId)) }
            if let operatorName = try session.string("operator_name") { metadata.append("operator_name", .string(operatorName)) }
            if let custom = try session.object("custom_data") { metadata.append("custom_data", .object(custom)) }
            if context.identifyUserlikeByEmail, let email = try session.string("client_email") {
                // The contact becomes a user: the email itself when personal data is kept, else its hash.
                let normalized = email.trimmingWhitespace().lowercased()
                userId = context.personalData == .keep ? normalized : SHA256.hex(Array(normalized.utf8))
            }
            for key in ["client_email", "client_name"] {
                guard let value = try session.string(key), let stored = context.personalData.apply(value) else { continue }
                metadata.append(context.personalData == .hash ? key + "_sha256" : key, .string(stored))
            }
        }
        return CanonicalEvent(
            appToken: context.appToken,
            eventType: .track,
            eventName: name,
            userId: userId,
            companyId: nil,
            anonymousId: clientUUID,
            source: "web-client",
            insertedAt: try fields.timestamp("timestamp") ?? context.receivedAt,
            session: sessionId,
            metadata: metadata,
            receivedAt: context.receivedAt,
            origin: .userlike
        )
    }
}
