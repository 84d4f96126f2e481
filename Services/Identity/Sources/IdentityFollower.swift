import CairnCore
import CairnPostgres
import CairnRollups

/// Follows the events log for identity: reads each app's committed events after its
/// checkpoint in spans, and folds each span into users, companies, memberships, aliases,
/// sessions and the rollups, in one transaction that also moves the checkpoint.
///
/// A span is every event of the app whose `stored_xid` lies between the checkpoint and the
/// log's horizon, cut at a transaction boundary after ``spanLimit`` events. Spans of one app
/// fold one at a time (an advisory lock per app, shared with merges and erasure), so the
/// session cache and the database move together.
public struct IdentityFollower: Sendable {
    public let cache: SessionCache
    /// Events per span, at most (a span never splits one stored batch).
    public var spanLimit: Int

    /// Events per span unless the stack file says otherwise (`settings.span_events`): large
    /// enough that each person's rows are written once for many of their events, small enough
    /// that a span's events and identity rows stay a few tens of megabytes.
    public static let defaultSpanLimit = 20_000

    public init(cache: SessionCache, spanLimit: Int = IdentityFollower.defaultSpanLimit) {
        self.cache = cache
        self.spanLimit = spanLimit
    }

    /// What one span did.
    public struct Span: Sendable, Equatable {
        public var app: String
        public var after: Int64
        public var through: Int64
        public var events: Int
        public var users: Int
        public var aliases: Int
        public var refreshedPersons: Int
        public var sessionPersons: Int
        public var refusedAliases: Int
        /// Where the span's time went, in milliseconds: reading, planning identity and sessions,
        /// writing identity, deriving moved people again, and folding the rollups.
        public var milliseconds: [String: Int64] = [:]
    }

    /// What a span says about identity, as upsert rows.
    public struct IdentityRows: Sendable {
        public var users: [JSON] = []
        public var companies: [JSON] = []
        public var memberships: [JSON] = []
        public var aliases: [JSON] = []
        public var sessions: [JSON] = []

        public init(users: [JSON] = [], companies: [JSON] = [], memberships: [JSON] = [], aliases: [JSON] = [], sessions: [JSON] = []) {
            self.users = users
            self.companies = companies
            self.memberships = memberships
            self.aliases = aliases
            self.sessions = sessions
        }
    }

    /// Upserts `rows` and derives again the person rollups of everyone whose events at or
    /// below `through` they move; returns those persons. The caller holds the app's lock.
    @discardableResult
    public static func write(
        _ rows: IdentityRows,
        app: String,
        through: Int64,
        on connection: PostgresConnection,
        rollups: Bool = true
    ) throws
        -> Set<String>
    {
        var clock = PhaseClock()
        return try write(rows, app: app, through: through, on: connection, rollups: rollups, clock: &clock)
    }

    static func write(
        _ rows: IdentityRows,
        app: String,
        through: Int64,
        on connection: PostgresConnection,
        rollups: Bool = true,
        clock: inout PhaseClock
    ) throws -> Set<String> {
        let writer = IdentityWriter(app: app, connection: connection)
        try writer.upsertUsers(rows.users)
        try writer.upsertCompanies(rows.companies)
        let began = try writer.upsertMemberships(rows.memberships)
        let aliases = try writer.upsertAliases(rows.aliases)
        guard rollups else {
            try writer.replaceSessions(rows.sessions)
            return aliases.lost.union(aliases.gained.keys)
        }
        // Whoever lost events, or may have their company moved, is derived again whole; a user
        // who only gained visitors gets just the visitors' events added.
        let rederived = aliases.lost.union(try writer.usersWhoseCompanyMayMove(began, through: through))
        try writer.replaceSessions(rows.sessions)
        clock.lap("identity")
        try Rollups.refresh(app: app, persons: Array(rederived), through: through, on: connection)
        let gainers = aliases.gained.filter { !rederived.contains($0.key) }
        try Rollups.addVisitors(app: app, users: Array(gainers.keys), visitors: gainers.values.flatMap { $0 }, through: through, on: connection)
        clock.lap("rederive")
        return rederived.union(aliases.gained.keys)
    }

    /// The apps with stored events after their checkpoint, in token order: one statement, so an
    /// idle stack with many apps asks the database one question per round, not one per app.
    public static func appsWithUnfoldedEvents(on connection: PostgresConnection) throws(PostgresError) -> [String] {
        try connection.execute(
            """
            SELECT a.token FROM apps a LEFT JOIN follower_checkpoints c ON c.app_token = a.token AND c.follower = $1
            -- One index probe per app. (As EXISTS, PostgreSQL chose a merge semi-join that read
            -- every event of the app, 150 ms a round at a million events, four rounds a second.)
            CROSS JOIN LATERAL (
                SELECT 1 FROM events e WHERE e.app_token = a.token AND e.stored_xid > COALESCE(c.after_xid, 0) LIMIT 1
            ) unfolded
            ORDER BY a.token
            """,
            [FollowerCheckpoint.identity]
        ).namedRows.compactMap { $0["token"] }
    }

    /// Folds everything committed so far, app after app; returns the spans folded.
    @discardableResult
    public func catchUp(on connection: PostgresConnection) throws -> [Span] {
        var spans: [Span] = []
        for app in try Self.appsWithUnfoldedEvents(on: connection) {
            while let span = try foldNext(app: app, on: connection) { spans.append(span) }
        }
        return spans
    }

    /// Folds the app's next span, if it has one.
    public func foldNext(app: String, on connection: PostgresConnection) throws -> Span? {
        var plan: SessionPlan?
        let span = try connection.inTransaction { () throws -> Span? in
            try Rollups.lock(app: app, on: connection)
            let after = try FollowerCheckpoint.read(app: app, on: connection)
            let horizon = try LogHorizon.read(on: connection)
            guard horizon - 1 > after else { return nil }
            var through = horizon - 1
            if let cut = try connection.execute(
                """
                SELECT stored_xid FROM events WHERE app_token = $1 AND stored_xid > $2::bigint AND stored_xid < $3::bigint
                ORDER BY stored_xid OFFSET $4::bigint LIMIT 1
                """,
                [app, String(after), String(horizon), String(spanLimit)]
            ).firstRow?["stored_xid", as: Int64.self] {
                // The span ends before the transaction that crosses the limit, unless that is its first.
                through = cut - 1 > after ? cut - 1 : cut
            }
            var clock = PhaseClock()
            let events = try Self.events(app: app, after: after, through: through, on: connection)
            guard !events.isEmpty else { return nil }
            clock.lap("read")
            var (folded, sessions) = try fold(app: app, events: events, after: after, through: through, clock: &clock, on: connection)
            folded.milliseconds = clock.laps
            plan = sessions
            try FollowerCheckpoint.advance(app: app, to: through, events: events.count, on: connection)
            try LogNotification.announce(LogNotification.folded, app: app, on: connection)
            return folded
        }
        // Only what the database committed enters the cache, so a failed span leaves no trace.
        plan?.commit(to: cache)
        return span
    }

    /// The span's events as identity reads them (the canonical fields it needs; metadata only
    /// where an identify carries traits).
    static func events(app: String, after: Int64, through: Int64, on connection: PostgresConnection) throws -> [JSON] {
        let result = try connection.execute(
            """
            SELECT e.event_type, to_char(e.inserted_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS inserted_at,
                   e.user_id, e.company_id, e.anonymous_id, e.origin,
                   CASE WHEN e.event_type IN ('identify_user', 'identify_company') THEN e.metadata::text END AS metadata
            FROM events e WHERE e.app_token = $1 AND e.stored_xid > $2::bigint AND e.stored_xid <= $3::bigint
            """,
            [app, String(after), String(through)]
        )
        var events: [JSON] = []
        events.reserveCapacity(result.rows.count)
        for row in result.namedRows {
            var event = JSONObject()
            event.append("app_token", .string(app))
            event.append("event_type", .optional(row["event_type"]))
            event.append("inserted_at", .optional(row["inserted_at"]))
            if let user = row["user_id"] { event.append("user_id", .string(user)) }
            if let company = row["company_id"] { event.append("company_id", .string(company)) }
            if let anonymous = row["anonymous_id"] { event.append("anonymous_id", .string(anonymous)) }
            event.append("origin", .optional(row["origin"]))
            // Stored jsonb always reads back; were it ever not to, the span still folds, without those traits.
            if let metadata = row["metadata"], let traits = try? JSONParser.parse(metadata, maximumDepth: 4096) { event.append("metadata", traits) }
            events.append(.object(event))
        }
        return events
    }

    /// Writes what the span says, then the rollups: people whose earlier events identity moved
    /// are derived again from those events, and the span's events are added for everyone.
    private func fold(
        app: String,
        events: [JSON],
        after: Int64,
        through: Int64,
        clock: inout PhaseClock,
        on connection: PostgresConnection
    ) throws
        -> (Span, SessionPlan)
    {
        var batch = IdentityBatch()
        for event in events { batch.add(event) }
        let writer = IdentityWriter(app: app, connection: connection)
        var users = batch.userRows().arrayValue ?? []
        let companies = batch.companyRows().arrayValue ?? []
        var memberships = batch.membershipRows().arrayValue ?? []
        var aliases = batch.aliasRows().arrayValue ?? []
        let erased = try writer.suppressions(
            users: users.compactMap { $0["user_id"]?.stringValue } + aliases.compactMap { $0["user_id"]?.stringValue },
            anonymous: Array(Set(events.compactMap { $0["anonymous_id"]?.stringValue }))
        )
        if !erased.users.isEmpty || !erased.anonymous.isEmpty {
            users.removeAll { erased.users.contains($0["user_id"]?.stringValue ?? "") }
            memberships.removeAll { erased.users.contains($0["user_id"]?.stringValue ?? "") }
            aliases.removeAll {
                erased.users.contains($0["user_id"]?.stringValue ?? "") || erased.anonymous.contains($0["alias_id"]?.stringValue ?? "")
            }
        }
        let plan = try SessionPlan.make(app: app, events: events, aliases: .array(aliases), through: after, cache: cache, on: connection)
        var sessions = plan.rows.arrayValue ?? []
        if !erased.users.isEmpty || !erased.anonymous.isEmpty {
            sessions.removeAll { row in
                let person = row["person"]?.stringValue ?? ""
                return erased.users.contains(person)
                    || (person.hasPrefix("anonymous:") && erased.anonymous.contains(String(person.dropFirst("anonymous:".count))))
            }
        }

        clock.lap("plan")
        let rows = IdentityRows(users: users, companies: companies, memberships: memberships, aliases: aliases, sessions: sessions)
        let moved = try Self.write(rows, app: app, through: after, on: connection, clock: &clock)
        try Rollups.fold(app: app, after: after, through: through, on: connection)
        clock.lap("rollups")
        let span = Span(
            app: app,
            after: after,
            through: through,
            events: events.count,
            users: users.count,
            aliases: aliases.count,
            refreshedPersons: moved.count,
            sessionPersons: sessions.count,
            refusedAliases: batch.refusedAliases
        )
        return (span, plan)
    }
}

/// Milliseconds between laps, by phase.
struct PhaseClock {
    private var last = ContinuousClock.now
    private(set) var laps: [String: Int64] = [:]

    mutating func lap(_ phase: String) {
        let now = ContinuousClock.now
        let elapsed = now - last
        laps[phase, default: 0] += elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000
        last = now
    }
}
