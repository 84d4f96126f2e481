/// The seven event types of the Userpilot schema (Userpilot's event schema), which is Cairn's stored shape.
public enum EventType: String, Sendable, CaseIterable, Hashable {
    case identifyUser = "identify_user"
    case identifyCompany = "identify_company"
    case interaction
    case track
    case trackFeature = "track_feature"
    case pageView = "page_view"
    case sessionStart = "session_start"

    /// Types whose `event_name` the schema says is empty.
    public var hasEmptyName: Bool {
        switch self {
        case .identifyUser, .identifyCompany, .pageView, .sessionStart: return true
        case .interaction, .track, .trackFeature: return false
        }
    }
}

/// The input format an event arrived in (`origin` in the stored row).
public enum InputFormat: String, Sendable, CaseIterable, Hashable {
    case userpilot
    case userguiding
    case userlike
    case usercom
    case segment
}

/// One event in Cairn's canonical shape (docs/formats.md).
public struct CanonicalEvent: Sendable, Equatable {
    public let appToken: String
    public let eventType: EventType
    /// Empty for the types whose name the schema leaves empty.
    public let eventName: String
    public let userId: String?
    public let companyId: String?
    public var anonymousId: String?
    public var source: String
    public let insertedAt: Timestamp
    /// The event's identity: a redelivery of the same event has the same id, and storage
    /// keeps one row per id (``EventIdentity`` says how it is derived).
    public private(set) var internalEventId: UInt64
    public var hostname: String?
    public var pathname: String?
    public var screenWidth: Int?
    public var screenHeight: Int?
    public var deviceType: String?
    public var userAgent: String?
    public var operatingSystem: String?
    public var browser: String?
    public var browserLanguage: String?
    public var session: String?
    public var countryCode: String?
    public var metadata: JSONObject
    /// The sender's own id for the message, when it sent one.
    public var messageId: String?
    public var receivedAt: Timestamp
    public var origin: InputFormat

    public init(
        appToken: String,
        eventType: EventType,
        eventName: String,
        userId: String?,
        companyId: String?,
        anonymousId: String? = nil,
        source: String,
        insertedAt: Timestamp,
        hostname: String? = nil,
        pathname: String? = nil,
        screenWidth: Int? = nil,
        screenHeight: Int? = nil,
        deviceType: String? = nil,
        userAgent: String? = nil,
        operatingSystem: String? = nil,
        browser: String? = nil,
        browserLanguage: String? = nil,
        session: String? = nil,
        countryCode: String? = nil,
        metadata: JSONObject = JSONObject(),
        messageId: String? = nil,
        receivedAt: Timestamp,
        origin: InputFormat,
        internalEventId: UInt64? = nil
    ) {
        self.appToken = appToken
        self.eventType = eventType
        self.eventName = eventName
        self.userId = userId
        self.companyId = companyId
        self.anonymousId = anonymousId
        self.source = source
        self.insertedAt = insertedAt
        self.hostname = hostname
        self.pathname = pathname
        self.screenWidth = screenWidth
        self.screenHeight = screenHeight
        self.deviceType = deviceType
        self.userAgent = userAgent
        self.operatingSystem = operatingSystem
        self.browser = browser
        self.browserLanguage = browserLanguage
        self.session = session
        self.countryCode = countryCode
        self.metadata = metadata
        self.messageId = messageId
        self.receivedAt = receivedAt
        self.origin = origin
        self.internalEventId = internalEventId ?? 0
        if internalEventId == nil { self.internalEventId = EventIdentity.derive(self) }
    }

    /// Derives ``internalEventId`` again from the fields as they are now: the Segment adapter
    /// sets device and page fields after construction, and the whole-record identity covers them.
    mutating func rederiveIdentity() {
        internalEventId = EventIdentity.derive(self)
    }

    /// `internal_event_id` as Cairn shows it: 16 lowercase hex digits.
    public var internalEventIdHex: String { Self.hex(internalEventId) }

    public static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }

    /// The same 64 bits as PostgreSQL's signed `bigint`.
    public var internalEventIdBigint: Int64 { Int64(bitPattern: internalEventId) }
}

extension CanonicalEvent {
    /// The canonical JSON object: the canonical field names (docs/formats.md), absent fields left out.
    ///
    /// This is the shape on the wire between services, in the spool, and in `export jsonl`.
    public var json: JSON {
        var object = JSONObject()
        object.append("app_token", .string(appToken))
        object.append("event_type", .string(eventType.rawValue))
        object.append("event_name", .string(eventName))
        if let userId { object.append("user_id", .string(userId)) }
        if let companyId { object.append("company_id", .string(companyId)) }
        if let anonymousId { object.append("anonymous_id", .string(anonymousId)) }
        object.append("source", .string(source))
        object.append("inserted_at", .string(insertedAt.description))
        object.append("internal_event_id", .string(internalEventIdHex))
        if let hostname { object.append("hostname", .string(hostname)) }
        if let pathname { object.append("pathname", .string(pathname)) }
        if let screenWidth { object.append("screen_width", .int(Int64(screenWidth))) }
        if let screenHeight { object.append("screen_height", .int(Int64(screenHeight))) }
        if let deviceType { object.append("device_type", .string(deviceType)) }
        if let userAgent { object.append("user_agent", .string(userAgent)) }
        if let operatingSystem { object.append("operating_system", .string(operatingSystem)) }
        if let browser { object.append("browser", .string(browser)) }
        if let browserLanguage { object.append("browser_language", .string(browserLanguage)) }
        if let session { object.append("session", .string(session)) }
        if let countryCode { object.append("country_code", .string(countryCode)) }
        object.append("metadata", .object(metadata))
        if let messageId { object.append("message_id", .string(messageId)) }
        object.append("received_at", .string(receivedAt.description))
        object.append("origin", .string(origin.rawValue))
        return .object(object)
    }

    /// Reads the canonical JSON object written by ``json``.
    ///
    /// The event keeps the `internal_event_id` it carries: ids are not recomputed between hops,
    /// so an event spooled before a change of identity rules keeps its id (and its row).
    public init(canonical value: JSON) throws(EventError) {
        guard case .object(let object) = value else {
            throw EventError(.invalidEvent, field: nil, "expected a canonical event object, found \(value.typeName)")
        }
        func string(_ key: String) throws(EventError) -> String? {
            switch object[key] {
            case nil, .null?: return nil
            case .string(let value)?: return value
            case let other?: throw EventError(.invalidField, field: key, "expected a string, found \(other.typeName)")
            }
        }
        func required(_ key: String) throws(EventError) -> String {
            guard let value = try string(key) else { throw EventError(.missingField, field: key, "is required") }
            return value
        }
        func integer(_ key: String) throws(EventError) -> Int? {
            switch object[key] {
            case nil, .null?: return nil
            case let value?:
                guard let number = value.intValue, let int = Int(exactly: number) else {
                    throw EventError(.invalidField, field: key, "expected an integer, found \(value.typeName)")
                }
                return int
            }
        }
        func timestamp(_ key: String) throws(EventError) -> Timestamp {
            let text = try required(key)
            guard let value = Timestamp(parsing: text) else {
                throw EventError(.invalidField, field: key, "expected an RFC 3339 timestamp, found '\(text)'")
            }
            return value
        }
        let typeName = try required("event_type")
        guard let type = EventType(rawValue: typeName) else {
            throw EventError(.invalidField, field: "event_type", "unknown event type '\(typeName)'")
        }
        let originName = try required("origin")
        guard let origin = InputFormat(rawValue: originName) else {
            throw EventError(.invalidField, field: "origin", "unknown origin '\(originName)'")
        }
        let metadata: JSONObject
        switch object["metadata"] {
        case nil, .null?: metadata = JSONObject()
        case .object(let value)?: metadata = value
        case let other?: throw EventError(.invalidField, field: "metadata", "expected an object, found \(other.typeName)")
        }
        self.init(
            appToken: try required("app_token"),
            eventType: type,
            eventName: try string("event_name") ?? "",
            userId: try string("user_id"),
            companyId: try string("company_id"),
            anonymousId: try string("anonymous_id"),
            source: try required("source"),
            insertedAt: try timestamp("inserted_at"),
            hostname: try string("hostname"),
            pathname: try string("pathname"),
            screenWidth: try integer("screen_width"),
            screenHeight: try integer("screen_height"),
            deviceType: try string("device_type"),
            userAgent: try string("user_agent"),
            operatingSystem: try string("operating_system"),
            browser: try string("browser"),
            browserLanguage: try string("browser_language"),
            session: try string("session"),
            countryCode: try string("country_code"),
            metadata: metadata,
            messageId: try string("message_id"),
            receivedAt: try timestamp("received_at"),
            origin: origin,
            internalEventId: try Self.suppliedId(object["internal_event_id"])
        )
    }
}
