import CairnCore
import CairnMethods
import CairnPostgres
import CairnWire

/// What every report shares: the app, the period, the calendar time zone and the time limit,
/// and running the report's queries in one read-only transaction with all of them applied.
///
/// From ``ReportScopeParams``: `since` and `until` are RFC 3339, a bare date in `tz`, or relative
/// such as `24h`.
public struct ReportScope: Sendable {
    public var app: String
    public var since: Timestamp?
    public var until: Timestamp?
    public var timeZone: String
    /// A report running longer is cancelled in PostgreSQL. Defaults to 30 seconds.
    public var timeoutSeconds: Int
    /// The bounds as PostgreSQL reads them: a bare date stays a date, so that it means
    /// midnight in `--tz` rather than in UTC.
    var sinceText: String?
    var untilText: String?

    public init(_ params: ReportScopeParams, now: Timestamp = .now()) throws(ReportError) {
        self.app = params.app
        func bound(_ key: String, _ given: String?) throws(ReportError) -> (Timestamp, String)? {
            guard let text = given else { return nil }
            guard let value = TimeBound.parse(text, now: now) else {
                throw ReportError(.invalidTime, field: key, "'\(text)' is neither an RFC 3339 time nor a relative time like 24h or 7d")
            }
            // PostgreSQL's calendar starts at year 1 and its bounds meet time zones: a day of margin either side.
            guard value >= Self.earliestBound, value <= Self.latestBound else {
                throw ReportError(.invalidTime, field: key, "'\(text)' is outside the years 0001 to 9999")
            }
            let isBareDate = text.utf8.count == 10 && Timestamp(parsing: text) != nil
            return (value, isBareDate ? text : value.description)
        }
        let sinceBound = try bound("since", params.since)
        let untilBound = try bound("until", params.until)
        since = sinceBound?.0
        until = untilBound?.0
        sinceText = sinceBound?.1
        untilText = untilBound?.1
        if let since, let until, since >= until {
            throw ReportError(.invalidTime, field: "since", "must be before until")
        }
        timeZone = params.tz ?? "UTC"
        let timeout = params.timeout_s ?? 30
        guard (1...3600).contains(timeout) else { throw ReportError(.invalidTimeout, field: "timeout_s", "must be from 1 to 3600 seconds") }
        timeoutSeconds = timeout
    }

    /// Runs `body` with the app's token in a read-only transaction using the scope's time
    /// zone and time limit; turns database failures into report errors that say what happened.
    public func run<T>(on connection: PostgresConnection, _ body: (_ token: String) throws -> T) throws -> T {
        do {
            return try connection.inTransaction { () throws -> T in
                // One snapshot for the whole report: the rollups, the follower's checkpoint and
                // the events after it (the unfolded tail) agree.
                try connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                // Calendar buckets follow --tz; set per transaction through bound parameters.
                // Reports sort and hash hundreds of thousands of rows: let them do it in memory.
                // JIT compilation costs more than it saves at this size (20–100 ms, measured).
                try connection.execute(
                    """
                    SELECT set_config('TimeZone', $1, true), set_config('statement_timeout', $2, true),
                           set_config('work_mem', '64MB', true), set_config('jit', 'off', true)
                    """,
                    [timeZone, String(timeoutSeconds * 1000)]
                )
                guard let token = try connection.appToken(for: app) else {
                    throw ReportError.unknownApp(app)
                }
                return try body(token)
            }
        } catch let error as PostgresError {
            if error.sqlState == "57014" {
                throw ReportError(
                    .reportTimeout,
                    "the report ran longer than \(timeoutSeconds) s and was cancelled in PostgreSQL; narrow the range (since, until)"
                )
            }
            if error.sqlState == "22023" || error.message.contains("time zone") {
                throw ReportError(.invalidTimeZone, field: "tz", "'\(timeZone)' is not a time zone PostgreSQL knows (e.g. UTC, Europe/Berlin)")
            }
            throw RPCError(error)
        }
    }

    /// The period's conditions on `column` (default `inserted_at`), with their parameters numbered from `first`.
    func timeFilter(startingAt first: Int, column: String = "inserted_at") -> (clauses: [String], parameters: [String?]) {
        var clauses: [String] = []
        var parameters: [String?] = []
        if let sinceText {
            parameters.append(sinceText)
            clauses.append("\(column) >= $\(first + parameters.count - 1)::timestamptz")
        }
        if let untilText {
            parameters.append(untilText)
            clauses.append("\(column) < $\(first + parameters.count - 1)::timestamptz")
        }
        return (clauses, parameters)
    }

    /// Zone names that are UTC at every instant, so UTC rollups serve their calendar buckets.
    static let utcZoneNames: Set<String> = [
        "utc", "etc/utc", "gmt", "etc/gmt", "uct", "etc/uct", "universal", "etc/universal", "zulu", "etc/zulu",
        "gmt0", "etc/gmt0", "greenwich", "etc/greenwich", "z",
    ]

    /// Whether `--tz` is UTC itself, so that days, weeks and months kept in UTC are its calendar.
    var isUTC: Bool { Self.utcZoneNames.contains(timeZone.lowercased()) }

    /// Whether the period's bounds (when given) fall on UTC `unit` boundaries, the only
    /// instants at which a rollup kept in UTC `unit`s can start or stop.
    func boundsAligned(to unit: String, on connection: PostgresConnection) throws -> Bool {
        if sinceText == nil && untilText == nil { return true }
        let row = try connection.execute(
            """
            SELECT bool_and(date_trunc($1, b AT TIME ZONE 'UTC') = b AT TIME ZONE 'UTC') AS aligned
            FROM unnest(ARRAY[$2::timestamptz, $3::timestamptz]) AS b WHERE b IS NOT NULL
            """,
            [unit, sinceText, untilText]
        ).firstRow
        return row?["aligned", as: Bool.self] == true
    }

    /// Whether the session's `--tz` is offset from UTC by whole hours today, so that UTC
    /// hours fall inside its calendar days.
    func zoneHasWholeHourOffset(on connection: PostgresConnection) throws -> Bool {
        if isUTC { return true }
        let row = try connection.execute(
            """
            SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE lower(name) = lower(current_setting('TimeZone'))
                           AND extract(minute FROM utc_offset) = 0 AND extract(second FROM utc_offset) = 0) AS whole_hours
            """
        ).firstRow
        return row?["whole_hours", as: Bool.self] == true
    }

    /// Calendar buckets for time series.
    public enum Bucket: String, Sendable, CaseIterable {
        case hour, day, week, month
    }

    /// The most buckets one time series may have, so a typo cannot ask for millions.
    public static let maximumBuckets = 20_000

    /// The earliest and latest bounds a period may have.
    static let earliestBound = Timestamp(parsing: "0001-01-02T00:00:00Z")!
    static let latestBound = Timestamp(parsing: "9999-12-30T00:00:00Z")!

    /// A gap-filled time series: `measure` (e.g. `count(*)`) per bucket of `source` rows that
    /// meet `conditions` (whose parameters start at `$2`; `$1` is the bucket unit). With a
    /// start, every bucket up to the end is listed, zeros included.
    func series(
        _ bucket: Bucket,
        measure: String,
        source: String,
        conditions: [String],
        parameters: [String?],
        on connection: PostgresConnection
    ) throws -> [[JSON]] {
        let format = bucket == .hour ? "YYYY-MM-DD HH24:00" : "YYYY-MM-DD"
        let end = untilText ?? (since != nil ? Timestamp.now().description : nil)
        // Refused before any query: a far-apart pair of bounds would otherwise make PostgreSQL
        // generate every bucket (millions of hours) before the LIMIT below could stop it.
        if let since, let last = until ?? end.flatMap(Timestamp.init(parsing:)) {
            let seconds = Double(last.microseconds - since.microseconds) / 1_000_000
            let shortest: Double = [.hour: 3_600, .day: 86_400, .week: 604_800, .month: 28 * 86_400][bucket] ?? 3_600
            if seconds / shortest > Double(Self.maximumBuckets) + 2 { throw Self.tooManyBuckets(bucket) }
        }
        let sql = """
            WITH counts AS (
                SELECT date_trunc($1, inserted_at) AS bucket, \(measure) AS value
                FROM \(source) WHERE \(conditions.joined(separator: " AND ")) GROUP BY 1
            ), bounds AS (
                SELECT COALESCE(date_trunc($1, $\(parameters.count + 2)::timestamptz), (SELECT min(bucket) FROM counts)) AS first,
                       COALESCE($\(parameters.count + 3)::timestamptz - interval '1 microsecond', (SELECT max(bucket) FROM counts)) AS last
            ), buckets AS (
                SELECT generate_series(first, last, ('1 ' || $1)::interval) AS bucket FROM bounds
                WHERE first IS NOT NULL AND last IS NOT NULL
            )
            SELECT to_char(b.bucket, '\(format)') AS bucket, COALESCE(c.value, 0) AS value
            FROM buckets b LEFT JOIN counts c USING (bucket)
            ORDER BY b.bucket
            LIMIT \(Self.maximumBuckets + 1)
            """
        let rows = try connection.execute(sql, [bucket.rawValue] + parameters + [sinceText, end]).namedRows
        if rows.count > Self.maximumBuckets { throw Self.tooManyBuckets(bucket) }
        return rows.map { [.optional($0["bucket"]), .int($0["value", as: Int64.self] ?? 0)] }
    }

    static func tooManyBuckets(_ bucket: Bucket) -> ReportError {
        ReportError(
            .tooManyBuckets,
            field: "by",
            "'\(bucket.rawValue)' makes more than \(maximumBuckets) buckets of this range; use a coarser bucket or narrow the range (since, until)"
        )
    }

    /// Refuses an event name the app has never stored, suggesting a close one.
    /// - Parameter field: the option that named it, which the error names.
    func requireEvent(_ name: String, field: String, token: String, on connection: PostgresConnection) throws {
        let exists = try connection.execute("SELECT 1 FROM events WHERE app_token = $1 AND event_name = $2 LIMIT 1", [token, name]).rows
        guard exists.isEmpty else { return }
        let names = try connection.execute(
            "SELECT DISTINCT event_name FROM events WHERE app_token = $1 AND event_name <> '' LIMIT 5000",
            [token]
        ).namedRows.compactMap { $0["event_name"] }
        throw ReportError(.unknownEvent, field: field, "'\(name)' names no event of app '\(app)'" + Suggestion.phrase(for: name, among: names))
    }

    /// Refuses attribute names no `event` of the app carries, suggesting a close one from a
    /// sample of the keys it does carry.
    func requireAttributes(_ names: [String], of event: String, field: String, token: String, on connection: PostgresConnection) throws {
        for name in names {
            // A number attribute's values are kept per event: one index probe finds one. The
            // events' own probe may read every index entry of a common event before a match.
            let counted = try connection.execute(
                "SELECT 1 FROM rollup_attribute_values WHERE app_token = $1 AND event_name = $2 AND attribute = $3 LIMIT 1",
                [token, event, name]
            ).rows
            guard counted.isEmpty else { continue }
            let present = try connection.execute(
                "SELECT 1 FROM events WHERE app_token = $1 AND event_name = $2 AND metadata ? $3 LIMIT 1",
                [token, event, name]
            ).rows
            guard present.isEmpty else { continue }
            let keys = try connection.execute(
                """
                SELECT DISTINCT jsonb_object_keys(metadata) AS key FROM (SELECT metadata FROM events WHERE app_token = $1 AND event_name = $2 LIMIT 1000) s
                """,
                [token, event]
            ).namedRows.compactMap { $0["key"] }
            throw ReportError(
                .unknownAttribute,
                field: field,
                "'\(name)' is no attribute of event '\(event)'" + Suggestion.phrase(for: name, among: keys)
            )
        }
    }
}

/// "Did you mean …?" for names a person mistyped.
enum Suggestion {
    /// `; did you mean 'X'?` for the closest of `candidates` within a small edit distance, or "".
    static func phrase(for name: String, among candidates: [String]) -> String {
        let lowered = Array(name.lowercased())
        var best: (String, Int)?
        for candidate in candidates {
            let distance = editDistance(lowered, Array(candidate.lowercased()))
            if distance <= max(2, lowered.count / 3), distance < (best?.1 ?? Int.max) { best = (candidate, distance) }
        }
        return best.map { "; did you mean '\($0.0)'?" } ?? ""
    }

    static func editDistance(_ a: [Character], _ b: [Character]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }
}
