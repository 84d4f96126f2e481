import CairnCore
import CairnPostgres
import CairnWire

/// An identity link recorded by storage: `previousId` (an anonymous id, or a user merged away)
/// now resolves to `userId`.
public struct StoredAlias: Sendable, Equatable {
    public var appToken: String
    public var previousId: String
    public var userId: String
    public var aliasedAt: Timestamp
}

/// Reads stored events back as canonical events, in event-time order, through a server-side
/// cursor in one read-only snapshot: one sort, constant memory, consistent under writes.
public struct StoredEvents: Sendable {
    public var app: String
    public var since: Timestamp?
    public var until: Timestamp?
    /// Rows per cursor fetch. Defaults to `5000`.
    public var pageSize = 5_000

    public init(app: String, since: Timestamp?, until: Timestamp?) {
        self.app = app
        self.since = since
        self.until = until
    }

    static let columns = """
        app_token, inserted_at, internal_event_id, event_type, event_name, user_id, company_id, anonymous_id, source,
        hostname, pathname, screen_width, screen_height, device_type, user_agent, operating_system, browser,
        browser_language, session, country_code, metadata::text AS metadata, message_id, received_at, origin
        """

    /// Calls `aliases` once with the merges of users recorded in the period (oldest first; an
    /// anonymous id reaches its user through the events that carry both), then
    /// `body` with each page of events, all from one snapshot; a row that no longer reads as a
    /// canonical event is passed to `corrupt` instead of stopping the export.
    public func forEachPage(
        on connection: PostgresConnection,
        aliases: ([StoredAlias]) throws -> Void = { _ in },
        _ body: ([CanonicalEvent]) throws -> Void,
        corrupt: (String, EventError) -> Void
    ) throws {
        do {
            try aliases(try open(on: connection))
            while let page = try nextPage(on: connection) {
                for (id, error) in page.corrupt { corrupt(id, error) }
                try body(page.events)
            }
            try close(on: connection)
        } catch {
            abandon(on: connection)
            throw error
        }
    }

    /// One page of the cursor: the events that read back, and the ids of those that did not.
    public struct Page: Sendable {
        public var events: [CanonicalEvent]
        public var corrupt: [(id: String, error: EventError)]
    }

    /// Starts the snapshot and the cursor; returns the identity links recorded in the period.
    public func open(on connection: PostgresConnection) throws -> [StoredAlias] {
        try connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try connection.execute("SET LOCAL TimeZone = 'UTC'")
        guard let token = try connection.appToken(for: app) else {
            throw ExportError.unknownApp(app)
        }
        var parameters: [String?] = [token]
        var bounds: [(op: String, parameter: Int)] = []
        if let since {
            parameters.append(since.description)
            bounds.append((">=", parameters.count))
        }
        if let until {
            parameters.append(until.description)
            bounds.append(("<", parameters.count))
        }
        /// The app and the period, on the time column `column`.
        func conditions(_ column: String) -> String {
            (["app_token = $1"] + bounds.map { "\(column) \($0.op) $\($0.parameter)" }).joined(separator: " AND ")
        }
        let links = try connection.execute(
            """
            SELECT alias_id, user_id, aliased_at FROM identity_aliases
            WHERE \(conditions("aliased_at")) AND alias_kind = 'user'
            ORDER BY aliased_at, alias_kind, alias_id
            """,
            parameters
        ).namedRows
        try connection.execute(
            "DECLARE export_cursor NO SCROLL CURSOR FOR SELECT \(Self.columns) FROM events WHERE \(conditions("inserted_at")) ORDER BY inserted_at, internal_event_id",
            parameters
        )
        return links.compactMap { row in
            guard let previous = row["alias_id"], let user = row["user_id"], let at = row["aliased_at", as: Timestamp.self] else { return nil }
            return StoredAlias(appToken: token, previousId: previous, userId: user, aliasedAt: at)
        }
    }

    /// The next page of events in time order, or nil when the cursor is done.
    public func nextPage(on connection: PostgresConnection) throws -> Page? {
        let rows = try connection.execute("FETCH \(pageSize) FROM export_cursor").namedRows
        if rows.isEmpty { return nil }
        var page = Page(events: [], corrupt: [])
        page.events.reserveCapacity(rows.count)
        for row in rows {
            do throws(EventError) {
                page.events.append(try Self.event(from: row))
            } catch {
                page.corrupt.append((row["internal_event_id"] ?? "?", error))
            }
        }
        return page
    }

    /// Ends the snapshot.
    public func close(on connection: PostgresConnection) throws {
        try connection.execute("COMMIT")
    }

    /// Ends the snapshot after a failure, leaving the connection reusable.
    public func abandon(on connection: PostgresConnection) {
        if connection.isHealthy { _ = try? connection.execute("ROLLBACK") }
    }

    /// The event in a row that selects ``columns``.
    static func event(from row: PostgresRow) throws(EventError) -> CanonicalEvent {
        func time(_ name: String) throws(EventError) -> Timestamp {
            guard let value = row[name, as: Timestamp.self] else {
                throw EventError(.invalidField, field: name, "stored value '\(row[name] ?? "NULL")' is not a timestamp")
            }
            return value
        }
        guard let type = row["event_type"].flatMap(EventType.init(rawValue:)) else {
            throw EventError(.invalidField, field: "event_type", "stored value '\(row["event_type"] ?? "NULL")' is not an event type")
        }
        guard let origin = row["origin"].flatMap(InputFormat.init(rawValue:)) else {
            throw EventError(.invalidField, field: "origin", "stored value '\(row["origin"] ?? "NULL")' is not an input format")
        }
        guard let storedId = row["internal_event_id", as: Int64.self] else {
            throw EventError(.invalidField, field: "internal_event_id", "stored value '\(row["internal_event_id"] ?? "NULL")' is not a bigint")
        }
        let metadata = row["metadata", as: JSON.self]?.objectValue ?? JSONObject()
        // The stored id is the event's identity: it is not derived again (jsonb writes numbers
        // in its own form, and rows stored under earlier identity rules keep their ids).
        return CanonicalEvent(
            appToken: row["app_token"] ?? "",
            eventType: type,
            eventName: row["event_name"] ?? "",
            userId: row["user_id"],
            companyId: row["company_id"],
            anonymousId: row["anonymous_id"],
            source: row["source"] ?? "",
            insertedAt: try time("inserted_at"),
            hostname: row["hostname"],
            pathname: row["pathname"],
            screenWidth: row["screen_width", as: Int.self],
            screenHeight: row["screen_height", as: Int.self],
            deviceType: row["device_type"],
            userAgent: row["user_agent"],
            operatingSystem: row["operating_system"],
            browser: row["browser"],
            browserLanguage: row["browser_language"],
            session: row["session"],
            countryCode: row["country_code"],
            metadata: metadata,
            messageId: row["message_id"],
            receivedAt: try time("received_at"),
            origin: origin,
            internalEventId: UInt64(bitPattern: storedId)
        )
    }
}
