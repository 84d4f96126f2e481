import CairnCore

/// Maps canonical events to Segment Spec messages (segment-api.md §2, §6, §7).
///
/// | canonical | Segment |
/// |---|---|
/// | `track` | `track`, the event's own name; UserGuiding events with seed 001's property types |
/// | `interaction` | `track`, `{Entity} {Status}` (e.g. `Experience Dismissed`) with `{entity}_id` |
/// | `track_feature` | `track` `Feature Used` with `feature_id` |
/// | `session_start` | `track` `Session Started` with `session` |
/// | `identify_user` | `identify` with the metadata as traits |
/// | `identify_company` | `group` with `groupId` and the metadata as traits |
/// | `page_view` | `page` with `path` and `url` |
/// | an alias recorded by identity | `alias` with `previousId` and `userId`, at its time |
public enum SegmentMapper {
    /// Segment's per-message limit, with the margin the official libraries keep.
    public static let maximumMessageBytes = 32_000
    /// The longest string property kept when a message must be cut down.
    public static let truncatedStringLength = 1_024

    /// A stable `messageId` (< 100 characters), so a re-export is deduplicated downstream.
    public static func messageId(for event: CanonicalEvent) -> String {
        "cairn-\(event.appToken)-\(event.internalEventIdHex)"
    }

    public static func message(for event: CanonicalEvent) -> JSONObject {
        var message = JSONObject()
        let properties = snakeCased(event.metadata)
        switch event.eventType {
        case .track:
            message.append("type", "track")
            message.append("event", .string(event.eventName))
            message.append("properties", .object(UserGuidingCatalog.byTitle[event.eventName] == nil ? properties : userGuidingTyped(properties, userId: event.userId)))
        case .interaction:
            let parts = event.eventName.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            let entity = parts.first ?? "interaction"
            var interaction = properties
            if parts.count == 3 {
                interaction[SnakeCase.convert(entity) + "_id"] = .string(parts[1])
                interaction["status"] = interaction["status"] ?? .string(parts[2])
            }
            message.append("type", "track")
            message.append("event", .string(SnakeCase.titleCase(entity) + " " + SnakeCase.titleCase(parts.last ?? "")))
            message.append("properties", .object(interaction))
        case .trackFeature:
            message.append("type", "track")
            message.append("event", "Feature Used")
            message.append("properties", ["feature_id": .string(event.eventName)])
        case .sessionStart:
            message.append("type", "track")
            message.append("event", "Session Started")
            message.append("properties", ["session": .optional(event.session)])
        case .identifyUser:
            message.append("type", "identify")
            message.append("traits", .object(event.metadata))
        case .identifyCompany:
            message.append("type", "group")
            message.append("groupId", .optional(event.companyId))
            message.append("traits", .object(event.metadata))
        case .pageView:
            message.append("type", "page")
            var page = JSONObject()
            if let path = event.pathname { page["path"] = .string(path) }
            if let host = event.hostname { page["url"] = .string("https://" + host + (event.pathname ?? "/")) }
            message.append("properties", .object(page))
        }
        if let userId = event.userId {
            message.append("userId", .string(userId))
        }
        if let anonymousId = event.anonymousId {
            message.append("anonymousId", .string(anonymousId))
        } else if event.userId == nil {
            // Every message needs an identity; a company-only event speaks for the company.
            message.append("anonymousId", .string("company:" + (event.companyId ?? event.internalEventIdHex)))
        }
        message.append("messageId", .string(messageId(for: event)))
        message.append("timestamp", .string(event.insertedAt.iso8601Milliseconds))
        message.append("context", .object(context(for: event)))
        return message
    }

    /// An identity link as a Segment `alias`: `previousId` is now `userId`. Its `messageId`
    /// hashes the link, so re-exporting it is deduplicated and a changed link is a new message.
    public static func message(for alias: StoredAlias) -> JSONObject {
        let link = XXHash64.hash(alias.previousId + "\u{1F}" + alias.userId)
        return [
            "type": "alias",
            "previousId": .string(alias.previousId),
            "userId": .string(alias.userId),
            "messageId": .string("cairn-\(alias.appToken)-alias-\(CanonicalEvent.hex(link))"),
            "timestamp": .string(alias.aliasedAt.iso8601Milliseconds),
            "context": ["integration": ["name": "cairn", "version": .string(exporterVersion)]],
        ]
    }

    /// A UserGuiding event's properties as Segment's UserGuiding source sends them (seed 001):
    /// the ids and score it types `int` as integers where the value is one, and `user_id`.
    static func userGuidingTyped(_ properties: JSONObject, userId: String?) -> JSONObject {
        var typed = JSONObject()
        for (key, value) in properties {
            if UserGuidingCatalog.segmentIntegerProperties.contains(key), let text = value.stringValue,
               let number = Int64(text), String(number) == text {
                typed[key] = .int(number)
            } else {
                typed[key] = value
            }
        }
        if typed["user_id"] == nil, let userId { typed["user_id"] = .string(userId) }
        return typed
    }

    static func context(for event: CanonicalEvent) -> JSONObject {
        var context = JSONObject()
        if event.pathname != nil || event.hostname != nil {
            var page = JSONObject()
            if let path = event.pathname { page["path"] = .string(path) }
            if let host = event.hostname { page["url"] = .string("https://" + host + (event.pathname ?? "/")) }
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
        if let company = event.companyId, event.eventType != .identifyCompany { context["groupId"] = .string(company) }
        context["integration"] = ["name": "cairn", "version": .string(exporterVersion)]
        return context
    }

    public static let exporterVersion = "0.1.0"

    static func snakeCased(_ object: JSONObject) -> JSONObject {
        var result = JSONObject()
        for (key, value) in object {
            let snake = SnakeCase.convert(key)
            result[snake.isEmpty ? key : snake] = value
        }
        return result
    }

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
