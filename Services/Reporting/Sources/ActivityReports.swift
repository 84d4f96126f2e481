import CairnCore
import CairnMethods
import CairnPostgres
import CairnRollups
import CairnWire

/// `report.sessions`: the sessions that start in the period: how many, their median and p90
/// length, events per session, and the bounce rate (one-event sessions).
///
/// The sessions are identity's, computed from the app's inactivity limit (`server`), or the
/// sender's (`sender`): each person's events grouped by the session id the event carried, a
/// session lasting from its first event to its last. Events without one are not in any.
public struct SessionsReport: Report {
    public typealias Method = ReportSessions

    /// Whose sessions are counted.
    public enum Source: String, Sendable, CaseIterable {
        case server, sender
    }

    public var scope: ReportScope
    public var source: Source

    public init(params: ReportSessions.Params, now: Timestamp = .now()) throws(ReportError) {
        scope = try ReportScope(params.scope, now: now)
        let name = params.options.source ?? Source.server.rawValue
        guard let source = Source(rawValue: name) else {
            throw ReportError(
                .invalidSource,
                field: "source",
                "must be server (sessions computed from inactivity) or sender (the events' own session ids); found '\(name)'"
            )
        }
        self.source = source
    }

    public func run(on connection: PostgresConnection) throws -> ReportTable {
        try scope.run(on: connection) { token in
            var conditions = ["app_token = $1"]
            var parameters: [String?] = [token]
            let time = scope.timeFilter(startingAt: 2, column: "started_at")
            conditions += time.clauses
            parameters += time.parameters
            let sessions: String
            switch source {
            case .server:
                sessions = "user_sessions"
            case .sender:
                // Whole sessions, as identity's are: one that starts in the period is counted to
                // its last event, even one after the period, so no event is left out by time.
                sessions = """
                    (SELECT app_token, person, session, min(inserted_at) AS started_at, max(inserted_at) AS ended_at, count(*) AS events
                     FROM events_resolved WHERE app_token = $1 AND session IS NOT NULL AND session <> '' AND person IS NOT NULL
                     GROUP BY app_token, person, session) AS sender_sessions
                    """
            }
            let row = try connection.execute(
                """
                SELECT count(*) AS sessions, count(DISTINCT person) AS people,
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM ended_at - started_at)) AS median_seconds,
                       percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM ended_at - started_at)) AS p90_seconds,
                       round(avg(events), 2) AS events_per_session,
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY events) AS median_events,
                       round(100.0 * count(*) FILTER (WHERE events = 1) / NULLIF(count(*), 0), 2) AS bounce_rate_percent
                FROM \(sessions) WHERE \(conditions.joined(separator: " AND "))
                """,
                parameters
            ).firstRow
            let columns = ["sessions", "people", "median_seconds", "p90_seconds", "events_per_session", "median_events", "bounce_rate_percent"]
            return ReportTable(columns: columns, rows: [columns.map { ReportValue.number(row?[$0]) }])
        }
    }
}

/// `report.companies`: active people and events per company, an event's company being its
/// own or its user's as of its time.
public struct CompaniesReport: Report {
    public typealias Method = ReportCompanies

    public var scope: ReportScope
    public var top: Int

    public init(params: ReportCompanies.Params, now: Timestamp = .now()) throws(ReportError) {
        scope = try ReportScope(params.scope, now: now)
        top = params.options.top ?? 100
        guard top > 0 else { throw ReportError(.invalidTop, field: "top", "must be a positive number") }
    }

    public func run(on connection: PostgresConnection) throws -> ReportTable {
        try scope.run(on: connection) { token in
            if scope.since == nil && scope.until == nil {
                // All time: counted ahead per company and person, plus the unfolded tail.
                let through = try FollowerCheckpoint.read(app: token, on: connection)
                let rows = try connection.execute(
                    """
                    SELECT r.company, c.traits->>'name' AS name, sum(r.people)::bigint AS active_people, sum(r.events)::bigint AS events
                    FROM (
                        -- The rollup holds each person once per company: counted per company as it
                        -- stands, and a person of the tail counted only when the rollup lacks them.
                        SELECT company, count(*) AS people, sum(events) AS events FROM rollup_company_people
                        WHERE app_token = $1 GROUP BY 1
                        UNION ALL
                        SELECT t.company, sum(t.new_person), sum(t.events) FROM (
                            SELECT company, person, count(*) AS events,
                                   (NOT EXISTS (
                                       SELECT 1 FROM rollup_company_people p WHERE p.app_token = $1 AND p.person = tail.person AND p.company = tail.company
                                   ))::int AS new_person
                            FROM events_resolved tail
                            WHERE app_token = $1 AND stored_xid > \(through) AND company IS NOT NULL AND person IS NOT NULL
                            GROUP BY 1, 2
                        ) t GROUP BY 1
                    ) r LEFT JOIN companies c ON c.app_token = $1 AND c.company_id = r.company
                    GROUP BY 1, 2 ORDER BY 3 DESC, 4 DESC, 1 LIMIT $2
                    """,
                    [token, String(top)]
                ).namedRows
                return table(rows)
            }
            var conditions = ["r.app_token = $1", "r.company IS NOT NULL"]
            var parameters: [String?] = [token]
            let time = scope.timeFilter(startingAt: 2)
            conditions += time.clauses.map { "r." + $0 }
            parameters += time.parameters
            parameters.append(String(top))
            let rows = try connection.execute(
                """
                SELECT r.company, c.traits->>'name' AS name, count(DISTINCT r.person) FILTER (WHERE r.person IS NOT NULL) AS active_people, count(*) AS events
                FROM events_resolved r LEFT JOIN companies c ON c.app_token = r.app_token AND c.company_id = r.company
                WHERE \(conditions.joined(separator: " AND "))
                GROUP BY 1, 2 ORDER BY 3 DESC, 4 DESC, 1 LIMIT $\(parameters.count)
                """,
                parameters
            ).namedRows
            return table(rows)
        }
    }

    private func table(_ rows: [PostgresRow]) -> ReportTable {
        ReportTable(
            columns: ["company", "name", "active_people", "events"],
            rows: rows.map {
                [.optional($0["company"]), .optional($0["name"]), ReportValue.number($0["active_people"]), ReportValue.number($0["events"])]
            }
        )
    }
}

/// Reading PostgreSQL's text output of numbers back into JSON numbers.
enum ReportValue {
    static func number(_ text: String?) -> JSON {
        guard let text else { return .null }
        if let integer = Int64(text) { return .int(integer) }
        return Double(text).map(JSON.double) ?? .string(text)
    }
}
