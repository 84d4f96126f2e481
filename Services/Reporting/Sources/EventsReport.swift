import CairnCore
import CairnPostgres
import CairnWire

/// `report.events`: event counts per event name, or over time.
///
/// Params: `app`, `since`, `until` (RFC 3339 or relative such as `24h`), `by`
/// (`hour|day|week|month`, for a time series), `tz` (calendar buckets; default `UTC`),
/// `event` (one event name), `type` (one event type), `top` (at most N names).
///
/// Every value reaches SQL as a bound parameter; only fixed SQL fragments are spliced in.
public struct EventsReport: Sendable {
    public enum Bucket: String, Sendable, CaseIterable {
        case hour, day, week, month
    }

    public var app: String
    public var since: Timestamp?
    public var until: Timestamp?
    public var bucket: Bucket?
    public var timeZone: String
    public var eventName: String?
    public var eventType: EventType?
    public var top: Int?
    /// The bounds as PostgreSQL reads them: a bare date stays a date, so that it means
    /// midnight in `--tz` rather than in UTC.
    private var sinceText: String?
    private var untilText: String?

    /// The most buckets one time series may have, so a typo cannot ask for millions.
    public static let maximumBuckets = 20_000

    public init(params: JSON, now: Timestamp = .now()) throws(RPCError) {
        guard let app = params["app"]?.stringValue else { throw RPCError.invalidParams("params.app must name the app") }
        self.app = app
        func bound(_ key: String) throws(RPCError) -> (Timestamp, String)? {
            guard let text = params[key]?.stringValue else { return nil }
            guard let value = TimeBound.parse(text, now: now) else {
                throw RPCError.application("invalid_time", "--\(key) '\(text)' is neither an RFC 3339 time nor a relative time like 24h or 7d")
            }
            let isBareDate = text.utf8.count == 10 && Timestamp(parsing: text) != nil
            return (value, isBareDate ? text : value.description)
        }
        let sinceBound = try bound("since")
        let untilBound = try bound("until")
        since = sinceBound?.0
        until = untilBound?.0
        sinceText = sinceBound?.1
        untilText = untilBound?.1
        if let since, let until, since >= until {
            throw RPCError.application("invalid_time", "--since must be before --until")
        }
        if let name = params["by"]?.stringValue {
            guard let bucket = Bucket(rawValue: name) else {
                throw RPCError.application("invalid_bucket", "--by must be one of hour, day, week, month; found '\(name)'")
            }
            self.bucket = bucket
        }
        timeZone = params["tz"]?.stringValue ?? "UTC"
        eventName = params["event"]?.stringValue
        if let typeName = params["type"]?.stringValue {
            guard let type = EventType(rawValue: typeName) else {
                throw RPCError.application("invalid_type", "--type must be one of \(EventType.allCases.map(\.rawValue).joined(separator: ", ")); found '\(typeName)'")
            }
            eventType = type
        }
        if let top = params["top"]?.intValue {
            guard top > 0 else { throw RPCError.application("invalid_top", "--top must be a positive number") }
            self.top = Int(top)
        }
    }

    /// The WHERE clause and its parameters, shared by both report shapes.
    private func filter(startingAt first: Int) -> (sql: String, parameters: [String?]) {
        var clauses = ["app_token = $\(first)"]
        var parameters: [String?] = [app]
        func add(_ clause: (Int) -> String, _ value: String) {
            parameters.append(value)
            clauses.append(clause(first + parameters.count - 1))
        }
        if let sinceText { add({ "inserted_at >= $\($0)::timestamptz" }, sinceText) }
        if let untilText { add({ "inserted_at < $\($0)::timestamptz" }, untilText) }
        if let eventName { add({ "event_name = $\($0)" }, eventName) }
        if let eventType { add({ "event_type = $\($0)" }, eventType.rawValue) }
        return (clauses.joined(separator: " AND "), parameters)
    }

    public func run(on connection: PostgresConnection) throws(RPCError) -> ReportTable {
        let table: ReportTable?
        do {
            table = try connection.transaction { () throws(PostgresError) -> ReportTable? in
                try connection.execute("SET TRANSACTION READ ONLY")
                // Calendar buckets follow --tz; set per transaction through a bound parameter.
                try connection.execute("SELECT set_config('TimeZone', $1, true)", [timeZone])
                // --app may name the app or give its token; rows are stored under the token.
                guard let token = try connection.appToken(for: app) else { return nil }
                var report = self
                report.app = token
                if let bucket { return try report.series(bucket, on: connection) }
                return try report.byName(on: connection)
            }
        } catch {
            if error.sqlState == "22023" || error.message.contains("time zone") {
                throw RPCError.application("invalid_time_zone", "--tz '\(timeZone)' is not a time zone PostgreSQL knows (e.g. UTC, Europe/Berlin)")
            }
            throw RPCError.application(error.code == .unavailable ? "storage_unavailable" : "query_failed", error.message)
        }
        guard let table else {
            throw RPCError.application("unknown_app", "no app is named '\(app)' or has that token; create it with `cairn apps create \(app)`")
        }
        return table
    }

    private func byName(on connection: PostgresConnection) throws(PostgresError) -> ReportTable {
        let (whereSQL, parameters) = filter(startingAt: 1)
        var sql = "SELECT event_type, event_name, count(*) FROM events WHERE \(whereSQL) GROUP BY 1, 2 ORDER BY 3 DESC, 2, 1"
        var all = parameters
        if let top {
            all.append(String(top))
            sql += " LIMIT $\(all.count)"
        }
        let result = try connection.execute(sql, all)
        return ReportTable(
            columns: ["event_type", "event_name", "events"],
            rows: result.rows.map { [.optional($0[0]), .optional($0[1]), .int(Int64($0[2] ?? "0") ?? 0)] })
    }

    private func series(_ bucket: Bucket, on connection: PostgresConnection) throws(PostgresError) -> ReportTable {
        let (whereSQL, parameters) = filter(startingAt: 2)
        let format = bucket == .hour ? "YYYY-MM-DD HH24:00" : "YYYY-MM-DD"
        // With a start, every bucket up to the end is listed, zeros included; without one,
        // the series starts at the first bucket that has events.
        let sql = """
            WITH counts AS (
                SELECT date_trunc($1, inserted_at) AS bucket, count(*) AS events
                FROM events WHERE \(whereSQL) GROUP BY 1
            ), bounds AS (
                SELECT COALESCE(date_trunc($1, $\(parameters.count + 2)::timestamptz), (SELECT min(bucket) FROM counts)) AS first,
                       COALESCE($\(parameters.count + 3)::timestamptz - interval '1 microsecond', (SELECT max(bucket) FROM counts)) AS last
            ), buckets AS (
                SELECT generate_series(first, last, ('1 ' || $1)::interval) AS bucket FROM bounds
                WHERE first IS NOT NULL AND last IS NOT NULL
            )
            SELECT to_char(b.bucket, '\(format)'), COALESCE(c.events, 0)
            FROM buckets b LEFT JOIN counts c USING (bucket)
            ORDER BY b.bucket
            LIMIT \(Self.maximumBuckets + 1)
            """
        let end = untilText ?? (since != nil ? Timestamp.now().description : nil)
        let result = try connection.execute(sql, [bucket.rawValue] + parameters + [sinceText, end])
        if result.rows.count > Self.maximumBuckets {
            throw PostgresError(.queryFailed, "the range holds more than \(Self.maximumBuckets) \(bucket.rawValue) buckets; narrow --since/--until or use a coarser --by")
        }
        return ReportTable(
            columns: [bucket.rawValue, "events"],
            rows: result.rows.map { [.optional($0[0]), .int(Int64($0[1] ?? "0") ?? 0)] })
    }
}
