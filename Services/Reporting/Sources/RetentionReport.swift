import CairnCore
import CairnMethods
import CairnPostgres
import CairnWire

/// `report.retention`: a cohort table. A person joins the cohort of the day or week of their
/// first `start_event` in the period; period k counts the cohort's people who did
/// `return_event` (at or after their start) in the k-th day or week after the cohort's.
/// Calendar buckets follow `tz`; periods are counted in calendar days, so DST changes nothing.
public struct RetentionReport: Report {
    public typealias Method = ReportRetention

    public var scope: ReportScope
    public var startEvent: String
    public var returnEvent: String
    public var bucket: ReportScope.Bucket
    /// Periods after the cohort's own (period 0). Defaults to 8.
    public var periods: Int

    public init(params: ReportRetention.Params, now: Timestamp = .now()) throws(ReportError) {
        scope = try ReportScope(params.scope, now: now)
        guard let start = params.options.start_event else {
            throw ReportError(.missingOption, field: "start_event", "names the event that starts a cohort")
        }
        guard let back = params.options.return_event else {
            throw ReportError(.missingOption, field: "return_event", "names the event that counts as a return")
        }
        startEvent = start
        returnEvent = back
        let name = params.options.by ?? "week"
        guard let bucket = ReportScope.Bucket(rawValue: name), bucket == .day || bucket == .week else {
            throw ReportError(.invalidBucket, field: "by", "must be day or week; found '\(name)'")
        }
        self.bucket = bucket
        periods = params.options.periods ?? 8
        guard (0...366).contains(periods) else { throw ReportError(.invalidPeriods, field: "periods", "must be from 0 to 366") }
    }

    public func run(on connection: PostgresConnection) throws -> ReportTable {
        try scope.run(on: connection) { token in
            try scope.requireEvent(startEvent, field: "start_event", token: token, on: connection)
            try scope.requireEvent(returnEvent, field: "return_event", token: token, on: connection)
            var conditions = ["app_token = $1", "event_name = $2", "person IS NOT NULL"]
            var parameters: [String?] = [token, startEvent, returnEvent, bucket.rawValue]
            let time = scope.timeFilter(startingAt: 5)
            conditions += time.clauses
            parameters += time.parameters
            let days = bucket == .week ? 7 : 1
            let rows = try connection.execute(
                """
                WITH cohorts AS (
                    SELECT person, min(inserted_at) AS first, date_trunc($4, min(inserted_at)) AS cohort
                    FROM events_resolved WHERE \(conditions.joined(separator: " AND ")) GROUP BY person
                ), returns AS (
                    SELECT DISTINCT c.person, ((date_trunc($4, r.inserted_at)::date - c.cohort::date) / \(days)) AS period
                    FROM cohorts c JOIN events_resolved r
                      ON r.app_token = $1 AND r.person = c.person AND r.event_name = $3 AND r.inserted_at >= c.first
                )
                SELECT to_char(c.cohort, 'YYYY-MM-DD') AS cohort, c.person, r.period
                FROM cohorts c LEFT JOIN returns r USING (person)
                ORDER BY 1, 2, 3
                """,
                parameters
            ).namedRows
            var people: [String: Set<String>] = [:]
            var retained: [String: [Int: Set<String>]] = [:]
            for row in rows {
                guard let cohort = row["cohort"], let person = row["person"] else { continue }
                people[cohort, default: []].insert(person)
                if let period = row["period", as: Int.self], (0...periods).contains(period) {
                    retained[cohort, default: [:]][period, default: []].insert(person)
                }
            }
            var table: [[JSON]] = []
            for cohort in people.keys.sorted() {
                let size = people[cohort]!.count
                var row: [JSON] = [.string(cohort), .int(Int64(size))]
                for period in 0...periods {
                    let count = retained[cohort]?[period]?.count ?? 0
                    row.append(.int(Int64(count)))
                    row.append(.double(size == 0 ? 0 : (Double(count) * 10_000 / Double(size)).rounded() / 100))
                }
                table.append(row)
            }
            let columns = ["cohort", "people"] + (0...periods).flatMap { ["period_\($0)", "period_\($0)_percent"] }
            return ReportTable(columns: columns, rows: table)
        }
    }
}
