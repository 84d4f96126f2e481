/// Reads User.com custom events (User.com's guide) in Cairn's record shape
/// `{"event": "app_created", "user_id": "…", "timestamp": "…", "attributes": {…}}`.
///
/// A leading `event.` on the name, as `userengage('event.app_created', …)` writes it, is
/// dropped. Every event belongs to a user (User.com's guide), so `user_id` is required. Attributes
/// are typed by the app's registry: registered ones are coerced (a value that cannot be is
/// an error naming the attribute), unregistered ones are stored as strings unless they are
/// JSON objects or arrays.
public enum UserComAdapter {
    static let recordKeys: Set<String> = ["event", "user_id", "timestamp", "attributes"]
    static let userDataKeys: Set<String> = ["user_id", "timestamp", "user_data"]

    /// True for the User.com shapes (`event` without UserGuiding's `payload` or Segment's
    /// `type`; or `user_data`), for `--format auto`.
    public static func matches(_ record: JSONObject) -> Bool {
        if record["user_data"]?.objectValue != nil && record["event"] == nil { return true }
        return record["event"]?.stringValue != nil && record["payload"] == nil && record["type"] == nil && record["event_type"] == nil
    }

    public static func canonicalize(_ record: JSONObject, context: IngestContext) throws(EventError) -> CanonicalEvent {
        let fields = RecordFields(record)
        if record["event"] == nil, record["user_data"] != nil {
            // User data: `{"user_id": "…", "timestamp": "…", "user_data": {…}}` upserts the user's traits.
            try fields.rejectUnknown(userDataKeys, format: "User.com user data (user_id, timestamp, user_data)")
            return CanonicalEvent(
                appToken: context.appToken,
                eventType: .identifyUser,
                eventName: "",
                userId: try fields.identifier("user_id", required: true)!,
                companyId: nil,
                source: "web-client",
                insertedAt: try fields.timestamp("timestamp") ?? context.receivedAt,
                metadata: try fields.object("user_data", required: true)!,
                receivedAt: context.receivedAt,
                origin: .usercom
            )
        }
        try fields.rejectUnknown(recordKeys, format: "a User.com event (event, user_id, timestamp, attributes)")
        var name = try fields.string("event", required: true)!
        if name.hasPrefix("event.") { name.removeFirst("event.".count) }
        guard !name.isEmpty else { throw EventError(.missingField, field: "event", "must name the event after 'event.'") }
        let userId = try fields.identifier("user_id", required: true)!
        let attributes = try fields.object("attributes") ?? JSONObject()
        return CanonicalEvent(
            appToken: context.appToken,
            eventType: .track,
            eventName: name,
            userId: userId,
            companyId: nil,
            source: "web-client",
            insertedAt: try fields.timestamp("timestamp") ?? context.receivedAt,
            metadata: try context.attributes.coerce(attributes, fieldPrefix: "attributes"),
            receivedAt: context.receivedAt,
            origin: .usercom
        )
    }
}
