import CairnCore
import CairnMethods
import CairnPostgres
import CairnRollups
import CairnWire

/// `report.uniques`: unique people per calendar bucket (DAU, WAU, MAU), counted as identity
/// resolves them: an anonymous visitor who later identified is the user, once.
///
/// Params: those of ``ReportScope``, `by` (`day|week|month`, required), `event` (only people
/// who did it).
public struct UniquesReport: Report {
    public typealias Method = ReportUniques

    public var scope: ReportScope
    public var bucket: ReportScope.Bucket
    public var eventName: String?

    public init(params: ReportUniques.Params, now: Timestamp = .now()) throws(ReportError) {
        scope = try ReportScope(params.scope, now: now)
        guard let name = params.options.by, let bucket = ReportScope.Bucket(rawValue: name), bucket != .hour else {
            throw ReportError(.invalidBucket, field: "by", "must be one of day, week, month; found '\(params.options.by ?? "")'")
        }
        self.bucket = bucket
        eventName = params.options.event
    }

    public func run(on connection: PostgresConnection) throws -> ReportTable {
        try scope.run(on: connection) { token in
            if let eventName { try scope.requireEvent(eventName, field: "event", token: token, on: connection) }
            // Whole UTC days, weeks and months are counted ahead, as people resolve today.
            if eventName == nil, scope.isUTC, try scope.boundsAligned(to: bucket.rawValue, on: connection) {
                var conditions = ["true"]
                let time = scope.timeFilter(startingAt: 4)
                conditions += time.clauses
                // The follower's periods, plus the people of the unfolded tail not yet counted there.
                let through = try FollowerCheckpoint.read(app: token, on: connection)
                let source = """
                    (SELECT period::timestamp AT TIME ZONE 'UTC' AS inserted_at, people FROM rollup_period_people WHERE app_token = $2 AND grain = $3
                     UNION ALL
                     SELECT t.period::timestamp AT TIME ZONE 'UTC', count(*) FROM (
                         SELECT DISTINCT r.person, date_trunc($3, r.inserted_at AT TIME ZONE 'UTC')::date AS period
                         FROM events_resolved r WHERE r.app_token = $2 AND r.stored_xid > \(through) AND r.person IS NOT NULL
                     ) t
                     WHERE NOT EXISTS (SELECT 1 FROM rollup_person_periods p
                                       WHERE p.app_token = $2 AND p.person = t.person AND p.grain = $3 AND p.period = t.period)
                     GROUP BY t.period) AS periods
                    """
                let rows = try scope.series(
                    bucket,
                    measure: "sum(people)",
                    source: source,
                    conditions: conditions,
                    parameters: [token, bucket.rawValue] + time.parameters,
                    on: connection
                )
                return ReportTable(columns: [bucket.rawValue, "people"], rows: rows)
            }
            var conditions = ["app_token = $2", "person IS NOT NULL"]
            var parameters: [String?] = [token]
            let time = scope.timeFilter(startingAt: 3)
            conditions += time.clauses
            parameters += time.parameters
            if let eventName {
                parameters.append(eventName)
                conditions.append("event_name = $\(parameters.count + 1)")
            }
            let rows = try scope.series(
                bucket,
                measure: "count(DISTINCT person)",
                source: "events_resolved",
                conditions: conditions,
                parameters: parameters,
                on: connection
            )
            return ReportTable(columns: [bucket.rawValue, "people"], rows: rows)
        }
    }
}

/// `report.stats`: count, sum, min, max, average and percentiles of one numeric attribute of
/// one event, e.g. revenue over the last 24 hours (User.com's guide's "Get statistics").
///
/// Registered numbers are stored as JSON numbers; an unregistered attribute stored as a
/// numeric string counts too. Other values are left out, and counted as `non_numeric`.
public struct StatsReport: Report {
    public typealias Method = ReportStats

    public var scope: ReportScope
    public var eventName: String
    public var attribute: String

    public init(params: ReportStats.Params, now: Timestamp = .now()) throws(ReportError) {
        scope = try ReportScope(params.scope, now: now)
        guard let event = params.options.event else { throw ReportError(.missingOption, field: "event", "names the event report stats reads") }
        guard let attribute = params.options.attr else { throw ReportError(.missingOption, field: "attr", "names the attribute report stats reads") }
        eventName = event
        self.attribute = attribute
    }

    public func run(on connection: PostgresConnection) throws -> ReportTable {
        try scope.run(on: connection) { token in
            try scope.requireEvent(eventName, field: "event", token: token, on: connection)
            try scope.requireAttributes([attribute], of: eventName, field: "attr", token: token, on: connection)
            // A registered number's values are kept apart from the events; any other attribute is read from them.
            let registered = try connection.execute(
                "SELECT 1 FROM app_attributes WHERE app_token = $1 AND name = $2 AND type = 'number'",
                [token, attribute]
            ).rows
            let numbers =
                registered.isEmpty
                ? "SELECT cairn_jsonb_numeric(metadata -> $3) AS n FROM events WHERE app_token = $1 AND event_name = $2 AND metadata ? $3"
                : """
                SELECT n FROM (
                    SELECT value AS n, inserted_at FROM rollup_attribute_values WHERE app_token = $1 AND event_name = $2 AND attribute = $3
                    UNION ALL
                    SELECT cairn_jsonb_numeric(metadata -> $3), inserted_at FROM events
                    WHERE app_token = $1 AND event_name = $2 AND metadata ? $3 AND stored_xid > \(try FollowerCheckpoint.read(app: token, on: connection))
                ) AS folded_and_tail WHERE true
                """
            var parameters: [String?] = [token, eventName, attribute]
            let time = scope.timeFilter(startingAt: 4)
            parameters += time.parameters
            let row = try connection.execute(
                """
                WITH numbers AS (\(([numbers] + time.clauses).joined(separator: " AND ")))
                SELECT count(n) AS count, sum(n) AS sum, min(n) AS min, max(n) AS max, round(avg(n), 6) AS avg,
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY n) AS p50, percentile_cont(0.9) WITHIN GROUP (ORDER BY n) AS p90,
                       percentile_cont(0.99) WITHIN GROUP (ORDER BY n) AS p99, count(*) - count(n) AS non_numeric
                FROM numbers
                """,
                parameters
            ).firstRow
            let measures = ["count", "sum", "min", "max", "avg", "p50", "p90", "p99", "non_numeric"]
            return ReportTable(
                columns: ["event", "attribute"] + measures,
                rows: [[.string(eventName), .string(attribute)] + measures.map { ReportValue.number(row?[$0]) }]
            )
        }
    }
}

/// `report.timeline`: one person's events in time order, with their attributes and computed
/// session (the User.com timeline), including their anonymous events from before they
/// identified and those of users merged into them.
public struct TimelineReport: Report {
    public typealias Method = ReportTimeline

    public var scope: ReportScope
    public var user: String
    /// At most this many events, newest last. Defaults to 1000.
    public var limit: Int

    public init(params: ReportTimeline.Params, now: Timestamp = .now()) throws(ReportError) {
        scope = try ReportScope(params.scope, now: now)
        guard let user = params.options.user else { throw ReportError(.missingOption, field: "user", "names the person report timeline shows") }
        self.user = user
        limit = params.options.limit ?? 1000
        guard (1...100_000).contains(limit) else { throw ReportError(.invalidLimit, field: "limit", "must be from 1 to 100000") }
    }

    public func run(on connection: PostgresConnection) throws -> ReportTable {
        try scope.run(on: connection) { token in
            let resolved = try connection.resolvedPerson(user, token: token)
            let (person, userIds, anonymousIds) = (resolved.userId, resolved.userIds, resolved.anonymousIds)
            let known = try connection.execute("SELECT 1 FROM users WHERE app_token = $1 AND user_id = $2", [token, person]).rows
            if known.isEmpty && anonymousIds.isEmpty {
                let exists = try connection.execute("SELECT 1 FROM events WHERE app_token = $1 AND user_id = $2 LIMIT 1", [token, person]).rows
                guard !exists.isEmpty else { throw ReportError.unknownUser(user, app: scope.app) }
            }
            var conditions = ["e.app_token = $1", "(e.user_id = ANY($2::text[]) OR (e.user_id IS NULL AND e.anonymous_id = ANY($3::text[])))"]
            var parameters: [String?] = [token, PostgresArray.text(userIds), PostgresArray.text(anonymousIds), person]
            let time = scope.timeFilter(startingAt: 5)
            conditions += time.clauses.map { "e." + $0 }
            parameters += time.parameters
            parameters.append(String(limit))
            let rows = try connection.execute(
                """
                SELECT * FROM (
                    SELECT to_char(e.inserted_at, 'YYYY-MM-DD"T"HH24:MI:SS.US') AS time, e.event_type, e.event_name,
                           COALESCE(e.user_id, 'anonymous:' || e.anonymous_id) AS as_id, s.session, e.metadata::text AS attributes, e.inserted_at
                    FROM events e
                    LEFT JOIN user_sessions s ON s.app_token = e.app_token AND s.person = $4
                         AND e.inserted_at BETWEEN s.started_at AND s.ended_at
                    WHERE \(conditions.joined(separator: " AND "))
                    ORDER BY e.inserted_at DESC, e.internal_event_id DESC
                    LIMIT $\(parameters.count)
                ) latest ORDER BY inserted_at, time
                """,
                parameters
            ).namedRows
            return ReportTable(
                columns: ["time", "event_type", "event_name", "as", "session", "attributes"],
                rows: rows.map { row in
                    [
                        .optional(row["time"]), .optional(row["event_type"]), .optional(row["event_name"]), .optional(row["as_id"]),
                        row["session", as: Int64.self].map(JSON.int) ?? .null,
                        .string(row["attributes"] ?? "{}"),
                    ]
                }
            )
        }
    }
}
