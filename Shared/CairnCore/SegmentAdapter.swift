/// Reads Segment Spec messages (docs/formats.md): `track`, `identify`, `group`, `page`,
/// `screen` and `alias`, alone or in a `{"batch": […]}` envelope.
///
/// | Segment | canonical |
/// |---|---|
/// | `track` | `track`, `event` → `event_name`, `properties` → `metadata` |
/// | `track` named like a UserGuiding event (`Guide Started`, …) | the UserGuiding event (UserGuiding's Segment guide), checked like the native form |
/// | `identify` | `identify_user`, `traits` → `metadata` |
/// | `group` | `identify_company`, `groupId` → `company_id`, `traits` → `metadata` |
/// | `page`, `screen` | `page_view`; `name`, `category` and `properties` → `metadata` |
/// | `identify` | (traits from `traits`, else `context.traits`, where RudderStack's clients put them) |
/// | `alias` | `identify_user` named `alias`, with `userId` → `user_id` and `previousId` → `anonymous_id` |
///
/// `null` is absent. The envelope's `context` is merged into each message's (the message's
/// own keys win), and its `sentAt` stands for a message's own. The event time is
/// `timestamp` (else `originalTimestamp`, else the time of receipt), with Segment's
/// clock-skew correction when the message was sent with `sentAt`: `receivedAt − (sentAt −
/// timestamp)`, so a device whose clock is off still gets its events at the right time. A
/// retry of the same message may so get a slightly different time; its `messageId` keeps
/// it one event.
public enum SegmentAdapter {
    public static let types = ["track", "identify", "group", "page", "screen", "alias"]

    /// True for a Segment message (`type`) or a batch envelope (`batch`), for `--format auto`.
    public static func matches(_ record: JSONObject) -> Bool {
        record["type"]?.stringValue != nil || record["batch"]?.arrayValue != nil
    }

    /// The messages of a record: the record itself, or each element of its `batch` with the
    /// envelope's `context` and `integrations` merged in (the message's own keys win).
    /// Elements that are not objects come back as errors.
    public static func messages(in record: JSONObject) -> [Result<JSONObject, EventError>]? {
        guard let batch = record["batch"]?.arrayValue else { return nil }
        let shared = ["context", "integrations"].compactMap { key in record[key]?.objectValue.map { (key, $0) } }
        let sentAt = record["sentAt"].flatMap { $0.isNull ? nil : $0 }
        return batch.enumerated().map { index, element in
            guard case .object(var message) = element else {
                return .failure(EventError(.invalidEvent, field: "batch[\(index)]", "expected a message object, found \(element.typeName)"))
            }
            for (key, envelope) in shared {
                var merged = envelope
                merged.merge(message[key]?.objectValue ?? JSONObject()) { !$0.isNull }
                message[key] = .object(merged)
            }
            if let sentAt, message["sentAt"] == nil || message["sentAt"]!.isNull { message["sentAt"] = sentAt }
            return .success(message)
        }
    }

    public static func canonicalize(_ message: JSONObject, context ingest: IngestContext) throws(EventError) -> CanonicalEvent {
        let fields = RecordFields(message)
        let type = try fields.oneOf("type", types, required: true)!
        let userId = try fields.identifier("userId")
        let anonymousId = try fields.identifier("anonymousId")
        // A whole number is taken as its digits, as for the other ids.
        let messageId = try fields.identifier("messageId")
        if let messageId, messageId.count >= 100 {
            throw EventError(.invalidField, field: "messageId", "must be fewer than 100 characters, found \(messageId.count)")
        }
        let time = try eventTime(fields, receivedAt: ingest.receivedAt)
        let contextFields = RecordFields(try fields.object("context") ?? JSONObject(), path: "context")
        let device = try DeviceFields(contextFields)
        let exported = try CairnExportFields(contextFields)
        // Cairn's own export of this app, ingested back (a restore): the messageId it made for an
        // event that came without one carries that event's id, so the event is the same row again.
        let restoredId = exported == nil ? nil : messageId.flatMap { SegmentAdapter.exportedId($0, appToken: ingest.appToken) }

        var eventType: EventType
        var name = ""
        var metadata = JSONObject()
        var user = userId
        var anonymous = anonymousId
        var company = try contextFields.identifier("groupId")
        switch type {
        case "track":
            let event = try fields.string("event", required: true)!
            let properties = RecordFields(try fields.object("properties") ?? JSONObject(), path: "properties")
            if let kind = UserGuidingCatalog.byTitle[event], exported?.origin.map({ $0 == .userguiding || $0 == .segment }) ?? true {
                // Segment's UserGuiding source (UserGuiding's Segment guide): the same event as the native form.
                let checked = try UserGuidingAdapter.properties(
                    of: kind,
                    from: properties,
                    segmentForm: true,
                    alsoAllowed: ["user_id", "question_name"]
                )
                var userGuidingProperties = checked
                if let questionName = try properties.string("question_name") { userGuidingProperties.append("question_name", .string(questionName)) }
                let propertyUser = try properties.identifier("user_id")
                if exported == nil { try requireIdentity(userId ?? propertyUser, anonymousId) }
                var event = UserGuidingAdapter.event(
                    kind: kind,
                    properties: userGuidingProperties,
                    userId: userId ?? propertyUser,
                    anonymousId: anonymousId,
                    insertedAt: time,
                    messageId: restoredId == nil ? messageId : nil,
                    source: exported?.source ?? "backend-segment",
                    origin: exported?.origin ?? .segment,
                    context: ingest,
                    internalEventId: restoredId
                )
                device.apply(to: &event)
                exported?.apply(to: &event)
                if event.messageId == nil, restoredId == nil { event.rederiveIdentity() }
                return event
            }
            eventType = .track
            name = event
            metadata = properties.object
        case "identify":
            eventType = .identifyUser
            // RudderStack's clients send identify traits in context.traits only; top-level traits win.
            metadata = try contextFields.object("traits") ?? JSONObject()
            metadata.merge(try fields.object("traits") ?? JSONObject())
        case "group":
            eventType = .identifyCompany
            company = try fields.identifier("groupId", required: true)
            metadata = try fields.object("traits") ?? JSONObject()
        case "page", "screen":
            eventType = .pageView
            var properties = try fields.object("properties") ?? JSONObject()
            for key in ["name", "category"] {
                if let value = try fields.string(key), properties[key] == nil { properties[key] = .string(value) }
            }
            // The page's URL (scheme and query included) and title, as Segment's spec lists them
            // among page properties, from context.page when the properties leave them out
            // (Cairn's own export writes the properties exactly as stored).
            if exported == nil, let page = try contextFields.object("page") {
                for key in ["url", "title"] where properties[key] == nil {
                    if let value = page[key], value.stringValue != nil { properties[key] = value }
                }
            }
            if type == "screen" { properties["screen"] = .bool(true) }
            metadata = properties
        default:  // alias
            eventType = .identifyUser
            // Named, so that an alias never shares its internal_event_id with an identify of the
            // same user in the same millisecond (clients call the two back to back).
            name = "alias"
            user = try fields.identifier("userId", required: true)
            anonymous = try fields.identifier("previousId", required: true)
        }
        if let exported {
            // Cairn's own export: the canonical type and name it had, without the keys the export added.
            if let type = exported.eventType {
                eventType = type
                name = exported.eventName ?? ""
            }
            for key in exported.derived { metadata[key] = nil }
        } else {
            try requireIdentity(user, anonymous)
        }
        var event = CanonicalEvent(
            appToken: ingest.appToken,
            eventType: eventType,
            eventName: name,
            userId: user,
            companyId: company,
            anonymousId: anonymous,
            source: exported?.source ?? "backend-segment",
            insertedAt: time,
            metadata: metadata,
            messageId: restoredId == nil ? messageId : nil,
            receivedAt: ingest.receivedAt,
            origin: exported?.origin ?? .segment,
            internalEventId: restoredId
        )
        device.apply(to: &event)
        if eventType == .pageView, let url = metadata["url"]?.stringValue, let page = PageURL.split(url) {
            event.hostname = page.hostname
            event.pathname = page.pathname
        } else if eventType == .pageView, let path = metadata["path"]?.stringValue {
            event.pathname = path
        }
        exported?.apply(to: &event)
        // The device and page fields came after construction; without a messageId they are part of the identity.
        if event.messageId == nil, restoredId == nil { event.rederiveIdentity() }
        return event
    }

    /// The event id in a `messageId` Cairn's export made for `appToken` (`cairn-<app>-<16 hex>`), or nil.
    static func exportedId(_ messageId: String, appToken: String) -> UInt64? {
        let prefix = "cairn-" + appToken + "-"
        guard messageId.hasPrefix(prefix) else { return nil }
        let hex = messageId.dropFirst(prefix.count)
        return hex.count == 16 ? UInt64(hex, radix: 16) : nil
    }

    /// `timestamp` (else `originalTimestamp`), corrected for the device's clock skew by
    /// `sentAt` as Segment does; the time of receipt when the message has neither.
    static func eventTime(_ fields: RecordFields, receivedAt: Timestamp) throws(EventError) -> Timestamp {
        let timestamp = try fields.timestamp("timestamp")
        let original = try fields.timestamp("originalTimestamp")
        guard let stated = timestamp ?? original else { return receivedAt }
        guard let sentAt = try fields.timestamp("sentAt") else { return stated }
        let (skew, overflow) = sentAt.microseconds.subtractingReportingOverflow(stated.microseconds)
        let (corrected, overflowAgain) = receivedAt.microseconds.subtractingReportingOverflow(skew)
        // A correction that leaves the writable years (a sentAt of 9999) is no correction: the
        // stated time stands, and the app's window judges it.
        guard !overflow, !overflowAgain, Timestamp.representable.contains(Timestamp(microseconds: corrected)) else { return stated }
        return Timestamp(microseconds: corrected)
    }

    private static func requireIdentity(_ userId: String?, _ anonymousId: String?) throws(EventError) {
        if userId == nil && anonymousId == nil {
            throw EventError(.missingField, field: "userId", "or anonymousId is required (Segment's no_user_anon_id)")
        }
    }

    /// `context.integration.name` of the messages Cairn's export writes.
    public static let cairnIntegration = "cairn"

    /// What Cairn's export put in `context.cairn` for the canonical fields Segment's spec has
    /// no place for, read back only from messages whose `context.integration.name` is Cairn's:
    /// the canonical type and name, `source`, `origin`, `browser`, and the property keys the
    /// export derived from the name (removed again). Such a message may carry no user or
    /// anonymous id, as its canonical event did.
    struct CairnExportFields {
        var eventType: EventType?
        var eventName: String?
        var source: String?
        var origin: InputFormat?
        var browser: String?
        var derived: [String] = []
        /// `context.page.path` exactly: the canonical pathname the export wrote.
        var pathname: String?

        init?(_ context: RecordFields) throws(EventError) {
            guard context.object["integration"]?["name"]?.stringValue == SegmentAdapter.cairnIntegration else { return nil }
            let object = try context.object("cairn") ?? JSONObject()
            let cairn = RecordFields(object, path: context.field("cairn"))
            eventType = try cairn.oneOf("event_type", EventType.allCases.map(\.rawValue)).flatMap(EventType.init(rawValue:))
            eventName = try cairn.string("event_name")
            source = try cairn.oneOf("source", UserpilotAdapter.sources)
            origin = try cairn.oneOf("origin", InputFormat.allCases.map(\.rawValue)).flatMap(InputFormat.init(rawValue:))
            browser = try cairn.string("browser")
            derived = (object["derived"]?.arrayValue ?? []).compactMap(\.stringValue)
            pathname = context.object["page"]?["path"]?.stringValue
        }

        func apply(to event: inout CanonicalEvent) {
            event.browser = browser
            event.pathname = pathname
        }
    }

    /// The `context` keys that map onto the canonical device and page fields (§2.3).
    struct DeviceFields {
        var hostname: String?
        var pathname: String?
        var userAgent: String?
        var operatingSystem: String?
        var deviceType: String?
        var screenWidth: Int?
        var screenHeight: Int?
        var locale: String?
        var countryCode: String?
        var session: String?

        init(_ context: RecordFields) throws(EventError) {
            if let page = try context.object("page") {
                let pageFields = RecordFields(page, path: context.field("page"))
                if let url = try pageFields.string("url"), let parts = PageURL.split(url) {
                    hostname = parts.hostname
                    pathname = parts.pathname
                }
                // The path as sent wins over the URL's: they agree for browsers, and a path alone
                // (no host) stays a path.
                if let path = try pageFields.string("path") { pathname = path }
            }
            userAgent = try context.string("userAgent")
            if let os = try context.object("os") { operatingSystem = try RecordFields(os, path: context.field("os")).string("name") }
            if let device = try context.object("device") { deviceType = try RecordFields(device, path: context.field("device")).string("type") }
            if let screen = try context.object("screen") {
                let screenFields = RecordFields(screen, path: context.field("screen"))
                screenWidth = try screenFields.integer("width", range: 0...1_000_000).map(Int.init)
                screenHeight = try screenFields.integer("height", range: 0...1_000_000).map(Int.init)
            }
            locale = try context.string("locale")
            if let location = try context.object("location"), let country = location["country"]?.stringValue,
                country.utf8.count == 2, country.allSatisfy({ $0.isLetter && $0.isASCII })
            {
                countryCode = country.uppercased()
            }
            session = try context.identifier("sessionId")
        }

        func apply(to event: inout CanonicalEvent) {
            event.hostname = event.hostname ?? hostname
            event.pathname = event.pathname ?? pathname
            event.userAgent = userAgent
            event.operatingSystem = operatingSystem
            event.deviceType = deviceType
            event.screenWidth = screenWidth
            event.screenHeight = screenHeight
            event.browserLanguage = locale
            event.countryCode = countryCode
            event.session = session
        }
    }
}
