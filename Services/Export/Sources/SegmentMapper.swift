import CairnCore

/// Maps canonical events to Segment Spec messages (docs/export.md).
///
/// | canonical | Segment |
/// |---|---|
/// | `track` | `track`, the event's own name; UserGuiding events with UserGuiding's Segment guide's property types |
/// | `interaction` | `track`, `{Entity} {Status}` (e.g. `Experience Dismissed`) with `{entity}_id` and `status` |
/// | `track_feature` | `track` `Feature Used` with `feature_id` |
/// | `session_start` | `track` `Session Started` with `session` |
/// | `identify_user` | `identify` with the metadata as traits; one that came as a Segment `alias`, `alias` |
/// | `identify_company` | `group` with `groupId` and the metadata as traits |
/// | `page_view` | `page` with the metadata as properties (`name`, `category` also on the message) |
/// | a merge of two users | `alias` with `previousId` and `userId`, at its time |
///
/// Nothing is renamed or dropped: properties and traits keep their keys (UserGuiding's Segment guide's renames
/// of UserGuiding's names happened at ingest), the sender's `messageId` and `anonymousId`
/// are kept, times keep their microseconds. What Segment's spec has no field for (the
/// canonical type and name of an interaction, `source`, `origin`, `browser`) travels in
/// `context.cairn`, which Cairn's own ingest reads back, so an export ingested again gives
/// the same canonical rows.
public enum SegmentMapper {
    /// Segment's per-message limit, with the margin the official libraries keep.
    public static let maximumMessageBytes = 32_000
    /// The longest string property kept when a message must be cut down.
    public static let truncatedStringLength = 1_024

    /// The event's own `messageId`, or a stable one (< 100 characters) for an event that came
    /// without, so a re-export is deduplicated downstream.
    public static func messageId(for event: CanonicalEvent) -> String {
        event.messageId ?? "cairn-\(event.appToken)-\(event.internalEventIdHex)"
    }

    public static func message(for event: CanonicalEvent) -> JSONObject {
        var message = JSONObject()
        /// Keys the export adds to the properties, which Cairn's ingest removes again.
        var derived: [String] = []
        switch event.eventType {
        case .track:
            message.append("type", "track")
            message.append("event", .string(event.eventName))
            let isUserGuiding = event.origin == .userguiding || (event.origin == .segment && UserGuidingCatalog.byTitle[event.eventName] != nil)
            message.append("properties", .object(isUserGuiding ? userGuidingTyped(event.metadata, userId: event.userId) : event.metadata))
        case .interaction:
            let parts = event.eventName.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            let entity = parts.first ?? "interaction"
            var interaction = event.metadata
            if parts.count == 3 {
                let idKey = SnakeCase.convert(entity) + "_id"
                if interaction[idKey] == nil {
                    interaction[idKey] = .string(parts[1])
                    derived.append(idKey)
                }
                if interaction["status"] == nil {
                    interaction["status"] = .string(parts[2])
                    derived.append("status")
                }
            }
            message.append("type", "track")
            message.append("event", .string(SnakeCase.titleCase(entity) + " " + SnakeCase.titleCase(parts.last ?? "")))
            message.append("properties", .object(interaction))
        case .trackFeature:
            message.append("type", "track")
            message.append("event", "Feature Used")
            message.append("properties", ["feature_id": .string(event.eventName)])
            derived.append("feature_id")
        case .sessionStart:
            message.append("type", "track")
            message.append("event", "Session Started")
            message.append("properties", ["session": .optional(event.session)])
            derived.append("session")
        case .identifyUser where event.eventName == "alias" && event.anonymousId != nil:
            message.append("type", "alias")
            message.append("previousId", .optional(event.anonymousId))
        case .identifyUser:
            message.append("type", "identify")
            message.append("traits", .object(event.metadata))
        case .identifyCompany:
            message.append("type", "group")
            message.append("groupId", .optional(event.companyId))
            message.append("traits", .object(event.metadata))
        case .pageView:
            message.append("type", "page")
            for key in ["name", "category"] {
                if let value = event.metadata[key]?.stringValue { message.append(key, .string(value)) }
            }
            message.append("properties", .object(event.metadata))
        }
        if let userId = event.userId {
            message.append("userId", .string(userId))
        }
        if let anonymousId = event.anonymousId, message["previousId"] == nil {
            message.append("anonymousId", .string(anonymousId))
        }
        message.append("messageId", .string(messageId(for: event)))
        message.append("timestamp", .string(timestamp(event.insertedAt)))
        message.append("context", .object(context(for: event, derived: derived)))
        return message
    }

    /// Milliseconds as Segment's libraries write them, microseconds when the time has them.
    static func timestamp(_ time: Timestamp) -> String {
        time.microseconds % 1000 == 0 ? time.iso8601Milliseconds : time.description
    }

    /// A merge of two users as a Segment `alias`: `previousId` is now `userId`. Its
    /// `messageId` hashes the link, so re-exporting it is deduplicated and a changed link is a
    /// new message. (Anonymous ids reach their users through the events that carry both.)
    public static func message(for alias: StoredAlias) -> JSONObject {
        let link = XXHash64.hash(alias.previousId + "\u{1F}" + alias.userId)
        return [
            "type": "alias",
            "previousId": .string(alias.previousId),
            "userId": .string(alias.userId),
            "messageId": .string("cairn-\(alias.appToken)-alias-\(CanonicalEvent.hex(link))"),
            "timestamp": .string(timestamp(alias.aliasedAt)),
            "context": ["integration": ["name": .string(integrationName), "version": .string(exporterVersion)]],
        ]
    }

    /// A UserGuiding event's properties as Segment's UserGuiding source sends them (UserGuiding's Segment guide):
    /// the ids and score it types `int` as integers where the value is one, and `user_id`.
    static func userGuidingTyped(_ properties: JSONObject, userId: String?) -> JSONObject {
        var typed = JSONObject()
        for (key, value) in properties {
            if UserGuidingCatalog.segmentIntegerProperties.contains(key), let text = value.stringValue,
                let number = Int64(text), String(number) == text
            {
                typed[key] = .int(number)
            } else {
                typed[key] = value
            }
        }
        if typed["user_id"] == nil, let userId { typed["user_id"] = .string(userId) }
        return typed
    }

    static func context(for event: CanonicalEvent, derived: [String]) -> JSONObject {
        var context = JSONObject()
        if event.pathname != nil || event.hostname != nil {
            var page = JSONObject()
            if let path = event.pathname { page["path"] = .string(path) }
            // A page's own URL as received (scheme and query included), when it is the one the host came from.
            if event.eventType == .pageView, let url = event.metadata["url"]?.stringValue, PageURL.split(url)?.hostname == event.hostname {
                page["url"] = .string(url)
            } else if let host = event.hostname {
                page["url"] = .string("https://" + host + (event.pathname ?? ""))
            }
            context["page"] = .object(page)
        }
        if let agent = event.userAgent { context["userAgent"] = .string(agent) }
        if let locale = event.browserLanguage { context["locale"] = .string(locale) }
        if event.screenWidth != nil || event.screenHeight != nil {
            context["screen"] = ["width": .optional(event.screenWidth), "height": .optional(event.screenHeight)]
        }
        if let os = event.operatingSystem { context["os"] = ["name": .string(os)] }
        if let device = event.deviceType { context["device"] = ["type": .string(device)] }
        if let country = event.countryCode { context["location"] = ["country": .string(country)] }
        if let session = event.session { context["sessionId"] = .string(session) }
        if let company = event.companyId, event.eventType != .identifyCompany { context["groupId"] = .string(company) }
        // Only what a Segment message does not already say: its type where the message's type
        // cannot (interactions, features, sessions), and a source or origin other than Segment's.
        var cairn = JSONObject()
        if [.interaction, .trackFeature, .sessionStart].contains(event.eventType) {
            cairn["event_type"] = .string(event.eventType.rawValue)
            if !event.eventName.isEmpty { cairn["event_name"] = .string(event.eventName) }
        }
        if event.source != "backend-segment" { cairn["source"] = .string(event.source) }
        if event.origin != .segment { cairn["origin"] = .string(event.origin.rawValue) }
        if let browser = event.browser { cairn["browser"] = .string(browser) }
        if !derived.isEmpty { cairn["derived"] = .array(derived.map(JSON.string)) }
        if !cairn.isEmpty { context["cairn"] = .object(cairn) }
        context["integration"] = ["name": .string(integrationName), "version": .string(exporterVersion)]
        return context
    }

    /// `context.integration.name` on every message Cairn exports; Cairn's ingest trusts
    /// `context.cairn` only on such messages.
    public static let integrationName = SegmentAdapter.cairnIntegration
    public static let exporterVersion = "0.2.0"

    /// The message serialised, cut down if needed to fit ``maximumMessageBytes``:
    /// first long strings in properties/traits are shortened to ``truncatedStringLength``
    /// characters, then the properties/traits are dropped (marked in `context.cairn_truncated`).
    /// Returns nil when even that does not fit: the caller skips and reports it.
    public static func fitted(_ message: JSONObject) -> (bytes: [UInt8], truncated: Bool)? {
        let bytes = JSON.object(message).serialized()
        if bytes.count <= maximumMessageBytes { return (bytes, false) }
        var shortened = message
        for key in ["properties", "traits"] {
            if let object = shortened[key]?.objectValue {
                shortened[key] = .object(shortenStrings(object))
            }
        }
        var context = shortened["context"]?.objectValue ?? JSONObject()
        context["cairn_truncated"] = true
        shortened["context"] = .object(context)
        let shortBytes = JSON.object(shortened).serialized()
        if shortBytes.count <= maximumMessageBytes { return (shortBytes, true) }
        for key in ["properties", "traits"] where shortened[key] != nil {
            shortened[key] = .object(JSONObject())
        }
        let strippedBytes = JSON.object(shortened).serialized()
        if strippedBytes.count <= maximumMessageBytes { return (strippedBytes, true) }
        return nil
    }

    private static func shortenStrings(_ object: JSONObject) -> JSONObject {
        var result = JSONObject()
        for (key, value) in object {
            switch value {
            case .string(let text) where text.count > truncatedStringLength:
                result[key] = .string(String(text.prefix(truncatedStringLength)))
            case .object(let nested):
                result[key] = .object(shortenStrings(nested))
            default:
                result[key] = value
            }
        }
        return result
    }
}
