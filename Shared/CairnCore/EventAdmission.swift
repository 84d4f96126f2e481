/// What storage would refuse, refused before the acknowledgement: an event that ingest
/// acknowledges must be one PostgreSQL takes, so these limits are checked at the edge and a
/// record that breaks one becomes a dead letter naming the field.
///
/// - No NUL (U+0000) anywhere, in keys or values: PostgreSQL's `text` and `jsonb` cannot
///   hold it. (Lone UTF-16 surrogates never get this far: the JSON parser refuses them.)
/// - Ids and names (`event_name`, `user_id`, `company_id`, `anonymous_id`, `message_id`,
///   `session`) and property names are at most ``maximumIdentifierBytes`` bytes of UTF-8,
///   well under the btree index row limit (about 2,700 bytes) that several are indexed by.
/// - The event time lies in the app's window (``AdmissionPolicy``): by default from
///   1970-01-01 to 24 hours after the record was received.
public enum EventAdmission {
    public static let maximumIdentifierBytes = 1024

    /// Refuses NUL in any key or string value of an input record, naming its path
    /// (`properties.note`, `batch[2].traits.name`). The paths are built only once a NUL is
    /// known to be there: this runs on every record.
    public static func checkText(_ record: JSONObject, path: String = "") throws(EventError) {
        guard containsNUL(record) else { return }
        try locateNUL(record, path: path)
    }

    private static func containsNUL(_ object: JSONObject) -> Bool {
        for (key, value) in object where key.containsNUL || containsNUL(value) { return true }
        return false
    }

    private static func containsNUL(_ value: JSON) -> Bool {
        switch value {
        case .string(let text): return text.containsNUL
        case .object(let object): return containsNUL(object)
        case .array(let array): return array.contains(where: containsNUL)
        default: return false
        }
    }

    private static func locateNUL(_ record: JSONObject, path: String) throws(EventError) {
        for (key, value) in record {
            let field = path.isEmpty ? key : path + "." + key
            if key.containsNUL {
                throw EventError(.forbiddenCharacter, field: field, "has a NUL character (U+0000) in its name; PostgreSQL cannot store it")
            }
            try checkText(value, path: field)
        }
    }

    private static func checkText(_ value: JSON, path: String) throws(EventError) {
        switch value {
        case .string(let text) where text.containsNUL:
            throw EventError(.forbiddenCharacter, field: path, "has a NUL character (U+0000) in its value; PostgreSQL cannot store it")
        case .object(let object): try locateNUL(object, path: path)
        case .array(let array):
            for (index, element) in array.enumerated() { try checkText(element, path: "\(path)[\(index)]") }
        default: break
        }
    }

    /// Checks a canonical event against the limits and its app's time window.
    public static func check(_ event: CanonicalEvent, policy: AdmissionPolicy, receivedAt: Timestamp) throws(EventError) {
        let limited: [(String, String?)] = [
            ("event_name", event.eventName), ("user_id", event.userId), ("company_id", event.companyId),
            ("anonymous_id", event.anonymousId), ("message_id", event.messageId), ("session", event.session),
        ]
        for (field, value) in limited {
            guard let value else { continue }
            let bytes = value.utf8.count
            if bytes > maximumIdentifierBytes {
                throw EventError(.fieldTooLong, field: field, "is \(bytes) bytes; ids and names are at most \(maximumIdentifierBytes) bytes")
            }
            if value.containsNUL {
                throw EventError(.forbiddenCharacter, field: field, "has a NUL character (U+0000); PostgreSQL cannot store it")
            }
        }
        try checkKeys(event.metadata, path: "metadata")
        let latest = Timestamp(microseconds: receivedAt.microseconds + policy.futureAllowanceSeconds * 1_000_000)
        if event.insertedAt < policy.earliest || event.insertedAt > latest {
            let field = event.origin == .userpilot ? "inserted_at" : "timestamp"
            throw EventError(
                .timeOutOfRange,
                field: field,
                "is \(event.insertedAt); the app accepts event times from \(policy.earliest) to \(latest) (\(policy.futureAllowanceSeconds / 3600)h after receipt)"
            )
        }
    }

    private static func checkKeys(_ object: JSONObject, path: String) throws(EventError) {
        for (key, value) in object {
            if key.utf8.count > maximumIdentifierBytes {
                throw EventError(
                    .fieldTooLong,
                    field: path + "." + key.prefix(40) + "…",
                    "is a property name of \(key.utf8.count) bytes; property names are at most \(maximumIdentifierBytes) bytes"
                )
            }
            if case .object(let nested) = value { try checkKeys(nested, path: path + "." + key) }
        }
    }
}

/// The window of event times an app accepts (`cairn apps configure --earliest-event-time
/// --future-allowance`). Times outside it are refused at the edge: month partitions are
/// created for what is stored, so a far-past or far-future time would create partitions
/// no report reads (and year 0000 or 9999 overflows the partition bounds).
public struct AdmissionPolicy: Sendable, Equatable {
    /// The earliest event time accepted. Defaults to 1970-01-01T00:00:00Z.
    public var earliest: Timestamp
    /// How far after its receipt an event time may lie. Defaults to 24 hours.
    public var futureAllowanceSeconds: Int64

    public static let defaultEarliest = Timestamp(microseconds: 0)
    public static let defaultFutureAllowanceSeconds: Int64 = 86_400
    /// The widest window an app may configure: event times from 1900 to 10 years ahead.
    public static let widestEarliest = Timestamp(year: 1900, month: 1, day: 1)
    public static let widestFutureAllowanceSeconds: Int64 = 10 * 366 * 86_400

    public init(earliest: Timestamp = AdmissionPolicy.defaultEarliest, futureAllowanceSeconds: Int64 = AdmissionPolicy.defaultFutureAllowanceSeconds)
    {
        self.earliest = max(earliest, Self.widestEarliest)
        self.futureAllowanceSeconds = min(max(futureAllowanceSeconds, 0), Self.widestFutureAllowanceSeconds)
    }
}
