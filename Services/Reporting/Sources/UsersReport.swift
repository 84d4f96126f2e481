import CairnCondition
import CairnCore
import CairnMethods
import CairnPostgres
import CairnWire

/// `report.users`: the people who match every condition, with how often they did the event.
///
/// Params: those of ``ReportScope``; `did` (an event name) with `times` (`>5`, `>=2`, `3`, …;
/// default at least once) and `where` (a ``Condition`` on that event's attributes: only
/// matching events count); `not_did` (event names they must not have done in the period);
/// `traits` (``Condition``s on their user traits); `limit` (default 1000). User.com's guide's examples:
/// people who bought more than five times (`did purchase, times >5`), or who spent more than
/// 150 in one payment (`did payment, where price > 150`).
public struct UsersReport: Report {
    public typealias Method = ReportUsers

    public var scope: ReportScope
    public var did: String?
    public var times: (op: String, count: Int64)
    public var condition: Condition?
    public var notDid: [String]
    public var traits: [Condition]
    public var limit: Int

    public init(params: ReportUsers.Params, now: Timestamp = .now()) throws(ReportError) {
        scope = try ReportScope(params.scope, now: now)
        let options = params.options
        did = options.did
        notDid = options.not_did ?? []
        /// A condition parsed for `field`, its error naming that field.
        func parse(_ text: String, _ field: String) throws(ReportError) -> Condition {
            do {
                return try Condition.parse(text)
            } catch {
                throw ReportError(error.applicationCode, field: field, error.reason)
            }
        }
        var traits: [Condition] = []
        for text in options.traits ?? [] { traits.append(try parse(text, "traits")) }
        self.traits = traits
        if let text = options.where {
            guard did != nil else { throw ReportError(.missingOption, field: "where", "filters the events of did, which is not given") }
            condition = try parse(text, "where")
        }
        times = (">=", 1)
        if let text = options.times {
            guard did != nil else { throw ReportError(.missingOption, field: "times", "counts the events of did, which is not given") }
            times = try Self.parseTimes(text)
        }
        guard did != nil || !traits.isEmpty else {
            throw ReportError(.missingOption, field: "did", "or traits must be given: report users needs an event or a trait condition")
        }
        limit = options.limit ?? 1000
        guard (1...100_000).contains(limit) else { throw ReportError(.invalidLimit, field: "limit", "must be from 1 to 100000") }
    }

    /// `>5`, `>= 2`, `<3`, `!=0`, or a bare number meaning exactly that many.
    static func parseTimes(_ text: String) throws(ReportError) -> (op: String, count: Int64) {
        let trimmed = text.filter { !$0.isWhitespace }
        for op in [">=", "<=", "!=", ">", "<", "="] where trimmed.hasPrefix(op) {
            guard let count = Int64(trimmed.dropFirst(op.count)), count >= 0 else { break }
            return (op, count)
        }
        if let count = Int64(trimmed), count >= 0 { return ("=", count) }
        throw ReportError(.invalidTimes, field: "times", "expects a count with an optional comparison, such as '>5', '>=2' or '3'; found '\(text)'")
    }

    public func run(on connection: PostgresConnection) throws -> ReportTable {
        try scope.run(on: connection) { token in
            if let did { try scope.requireEvent(did, field: "did", token: token, on: connection) }
            for name in notDid { try scope.requireEvent(name, field: "not_did", token: token, on: connection) }
            try checkNames(token: token, on: connection)
            var parameters: [String?] = [token]
            let time = scope.timeFilter(startingAt: 2)
            parameters += time.parameters
            func timeOn(_ alias: String) -> String { time.clauses.map { " AND \(alias).\($0)" }.joined() }
            var notDidSQL = ""
            if !notDid.isEmpty {
                parameters.append(PostgresArray.text(notDid))
                notDidSQL =
                    " AND NOT EXISTS (SELECT 1 FROM events_resolved x WHERE x.app_token = $1 AND x.person = base.person AND x.event_name = ANY($\(parameters.count)::text[])\(timeOn("x")))"
            }
            var traitSQL = ""
            for trait in traits { traitSQL += " AND COALESCE(" + trait.sql(on: "u.traits", parameters: &parameters) + ", FALSE)" }
            let base: String
            if let did {
                parameters.append(did)
                let eventParameter = parameters.count
                let whereSQL = condition.map { " AND COALESCE(" + $0.sql(on: "r.metadata", parameters: &parameters) + ", FALSE)" } ?? ""
                parameters.append(String(times.count))
                base = """
                    SELECT r.person, count(*) AS n, max(r.inserted_at) AS last
                    FROM events_resolved r
                    WHERE r.app_token = $1\(timeOn("r")) AND r.event_name = $\(eventParameter) AND r.person IS NOT NULL\(whereSQL)
                    GROUP BY r.person HAVING count(*) \(times.op) $\(parameters.count)
                    """
            } else {
                base = """
                    SELECT u0.user_id AS person,
                           (SELECT count(*) FROM events_resolved r WHERE r.app_token = $1 AND r.person = u0.user_id\(timeOn("r"))) AS n,
                           u0.last_seen AS last
                    FROM users u0 WHERE u0.app_token = $1 AND u0.merged_into IS NULL
                    """
            }
            parameters.append(String(limit))
            let rows = try connection.execute(
                """
                SELECT base.person, base.n, to_char(base.last, 'YYYY-MM-DD"T"HH24:MI:SS') AS last_event, u.traits::text
                FROM (\(base)) base LEFT JOIN users u ON u.app_token = $1 AND u.user_id = base.person
                WHERE TRUE\(notDidSQL)\(traitSQL)
                ORDER BY base.n DESC, base.person LIMIT $\(parameters.count)
                """,
                parameters
            ).namedRows
            return ReportTable(
                columns: ["user", did.map { "\($0)_events" } ?? "events", "last_event", "traits"],
                rows: rows.map { [.optional($0["person"]), ReportValue.number($0["n"]), .optional($0["last_event"]), .string($0["traits"] ?? "{}")] }
            )
        }
    }

    /// Refuses attribute and trait names nothing has, suggesting close ones.
    private func checkNames(token: String, on connection: PostgresConnection) throws {
        if let did, let condition {
            try scope.requireAttributes(condition.names, of: did, field: "where", token: token, on: connection)
        }
        if !traits.isEmpty {
            let keys = try connection.execute(
                """
                SELECT DISTINCT jsonb_object_keys(traits) AS key FROM (SELECT traits FROM users WHERE app_token = $1 LIMIT 5000) s
                """,
                [token]
            ).namedRows.compactMap { $0["key"] }
            for name in traits.flatMap(\.names) where !keys.contains(name) {
                throw ReportError(
                    .unknownTrait,
                    "no user of app '\(scope.app)' has the trait '\(name)'" + Suggestion.phrase(for: name, among: keys)
                )
            }
        }
    }
}
