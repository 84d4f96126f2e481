import CairnCore
import CairnMethods
import CairnPostgres
import CairnRollups
import CairnWire

/// `report.events`: event counts per event name, or over time.
///
/// Params: those of ``ReportScope``, plus `by` (`hour|day|week|month`, for a time series),
/// `event` (one event name), `type` (one event type), `top` (at most N names), `breakdown`
/// (counts per value of one attribute, at most `top` values, 100 when absent).
///
/// Every value reaches SQL as a bound parameter; only fixed SQL fragments are spliced in.
public struct EventsReport: Report {
    public typealias Method = ReportEvents

    public var scope: ReportScope
    public var bucket: ReportScope.Bucket?
    public var eventName: String?
    public var eventType: EventType?
    public var top: Int?
    /// An attribute to count the events by, one row per value (`--breakdown color`).
    public var breakdown: String?

    public init(params: ReportEvents.Params, now: Timestamp = .now()) throws(ReportError) {
        scope = try ReportScope(params.scope, now: now)
        let options = params.options
        if let name = options.by {
            guard let bucket = ReportScope.Bucket(rawValue: name) else {
                throw ReportError(.invalidBucket, field: "by", "must be one of hour, day, week, month; found '\(name)'")
            }
            self.bucket = bucket
        }
        eventName = options.event
        if let typeName = options.type {
            guard let type = EventType(rawValue: typeName) else {
                throw ReportError(
                    .invalidType,
                    field: "type",
                    "must be one of \(EventType.allCases.map(\.rawValue).joined(separator: ", ")); found '\(typeName)'"
                )
            }
            eventType = type
        }
        if let top = options.top {
            guard top > 0 else { throw ReportError(.invalidTop, field: "top", "must be a positive number") }
            self.top = Int(top)
        }
        if let attribute = options.breakdown {
            guard !attribute.isEmpty, attribute.utf8.count <= 1024 else {
                throw ReportError(.invalidParams, field: "breakdown", "must name an attribute (1 to 1,024 bytes)")
            }
            guard bucket == nil else { throw ReportError(.invalidParams, field: "breakdown", "counts per value over the whole period; leave out by") }
            breakdown = attribute
        }
    }

    /// The `--event` and `--type` conditions and their parameters, numbered from `first`.
    private func nameAndType(startingAt first: Int) -> (clauses: [String], parameters: [String?]) {
        var clauses: [String] = []
        var parameters: [String?] = []
        if let eventName {
            parameters.append(eventName)
            clauses.append("event_name = $\(first + parameters.count - 1)")
        }
        if let eventType {
            parameters.append(eventType.rawValue)
            clauses.append("event_type = $\(first + parameters.count - 1)")
        }
        return (clauses, parameters)
    }

    /// The WHERE conditions and their parameters, numbered from `first` (`$first` is the app).
    private func filter(token: String, startingAt first: Int) -> (clauses: [String], parameters: [String?]) {
        let time = scope.timeFilter(startingAt: first + 1)
        let named = nameAndType(startingAt: first + 1 + time.parameters.count)
        return (["app_token = $\(first)"] + time.clauses + named.clauses, [token] + time.parameters + named.parameters)
    }

    /// The app's events in the period as `(inserted_at, event_type, event_name, n)`: whole UTC
    /// hours from `rollup_event_counts` (with `inserted_at` the hour) plus the events of those
    /// hours the follower has not folded yet (after `through`), and the partial hours at either
    /// end of the period one event at a time from `events`. Parameters from `first`.
    private func hourlySource(token: String, through: Int64, startingAt first: Int) -> (sql: String, parameters: [String?]) {
        let (app, since, until) = ("$\(first)", "$\(first + 1)::timestamptz", "$\(first + 2)::timestamptz")
        let named = nameAndType(startingAt: first + 3)
        let parameters: [String?] = [token, scope.sinceText, scope.untilText] + named.parameters
        let filters = named.clauses.map { " AND " + $0 }.joined()
        // Bounds on whole hours (dates, most periods) leave no partial hour to read event by event:
        // the branch is left out, rather than scanning the app's events for an empty range.
        let hour: Int64 = 3_600_000_000
        let wholeHours = [scope.since, scope.until].allSatisfy { $0.map { $0.microseconds % hour == 0 } ?? true }
        let firstWholeHour = "(date_trunc('hour', \(since) AT TIME ZONE 'UTC' - interval '1 microsecond') AT TIME ZONE 'UTC' + interval '1 hour')"
        let lastWholeHourEnd = "(date_trunc('hour', \(until) AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')"
        let partialHours = """
             UNION ALL
             SELECT inserted_at, event_type, event_name, 1 FROM events
             WHERE app_token = \(app)\(filters)
               AND ((inserted_at >= \(since) AND inserted_at < LEAST(\(firstWholeHour), \(until)))
                 OR (inserted_at >= GREATEST(\(lastWholeHourEnd), \(firstWholeHour)) AND inserted_at < \(until)))
            """
        let sql = """
            (SELECT hour AS inserted_at, event_type, event_name, events AS n FROM rollup_event_counts
             WHERE app_token = \(app)\(filters)
               AND hour >= COALESCE(\(firstWholeHour), '-infinity') AND hour < COALESCE(\(lastWholeHourEnd), 'infinity')
             UNION ALL
             SELECT inserted_at, event_type, event_name, 1 FROM events
             WHERE app_token = \(app)\(filters) AND stored_xid > \(through)
               AND inserted_at >= COALESCE(\(firstWholeHour), '-infinity') AND inserted_at < COALESCE(\(lastWholeHourEnd), 'infinity')
            \(wholeHours ? "" : partialHours)) AS hourly
            """
        return (sql, parameters)
    }

    public func run(on connection: PostgresConnection) throws -> ReportTable {
        try scope.run(on: connection) { token in
            if let bucket {
                // The rollup's UTC hours fit inside the calendar's buckets only when the zone is whole hours off UTC.
                if try scope.zoneHasWholeHourOffset(on: connection) {
                    let source = hourlySource(token: token, through: try FollowerCheckpoint.read(app: token, on: connection), startingAt: 2)
                    let rows = try scope.series(
                        bucket,
                        measure: "sum(n)",
                        source: source.sql,
                        conditions: ["true"],
                        parameters: source.parameters,
                        on: connection
                    )
                    return ReportTable(columns: [bucket.rawValue, "events"], rows: rows)
                }
                let (clauses, parameters) = filter(token: token, startingAt: 2)
                let rows = try scope.series(
                    bucket,
                    measure: "count(*)",
                    source: "events",
                    conditions: clauses,
                    parameters: parameters,
                    on: connection
                )
                return ReportTable(columns: [bucket.rawValue, "events"], rows: rows)
            }
            if let breakdown {
                // Per value of one attribute: the rollups keep no attribute values, so this reads the
                // log; people as identity resolved them, as every report counts them.
                let (clauses, parameters) = filter(token: token, startingAt: 2)
                var all: [String?] = [breakdown] + parameters
                var sql = """
                    SELECT metadata->>$1 AS value, count(*) AS events, count(DISTINCT person) AS people
                    FROM events_resolved WHERE \(clauses.joined(separator: " AND ")) GROUP BY 1 ORDER BY 2 DESC, 1 NULLS LAST
                    """
                all.append(String(top ?? 100))
                sql += " LIMIT $\(all.count)"
                let result = try connection.execute(sql, all)
                return ReportTable(
                    columns: ["value", "events", "people"],
                    rows: result.namedRows.map {
                        [.optional($0["value"]), .int($0["events", as: Int64.self] ?? 0), .int($0["people", as: Int64.self] ?? 0)]
                    }
                )
            }
            let source = hourlySource(token: token, through: try FollowerCheckpoint.read(app: token, on: connection), startingAt: 1)
            var sql = "SELECT event_type, event_name, sum(n) AS events FROM \(source.sql) GROUP BY 1, 2 ORDER BY 3 DESC, 2, 1"
            var all = source.parameters
            if let top {
                all.append(String(top))
                sql += " LIMIT $\(all.count)"
            }
            let result = try connection.execute(sql, all)
            return ReportTable(
                columns: ["event_type", "event_name", "events"],
                rows: result.namedRows.map { [.optional($0["event_type"]), .optional($0["event_name"]), .int($0["events", as: Int64.self] ?? 0)] }
            )
        }
    }
}
