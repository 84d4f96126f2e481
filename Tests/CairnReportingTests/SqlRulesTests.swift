import CairnCore
import CairnIdentity
import CairnPostgres
import CairnReporting
import CairnRollups
import CairnStorage
import CairnTesting
import Synchronization
import Testing

/// The rules that keep the schema distributable by `app_token` (docs/scale.md), checked on
/// the migrated schema and on every statement the write path, the identity follower, the
/// reports, merges and erasure send while they run (so interpolated SQL is checked whole).
@Suite struct SqlRulesTests {
    /// The tables every row of which belongs to one app.
    static let perAppTables = [
        "events", "events_resolved", "users", "companies", "user_companies", "identity_aliases", "identity_merges", "user_sessions",
        "suppressions", "app_attributes", "rollup_event_counts", "rollup_attribute_values", "rollup_period_people", "rollup_person_periods",
        "rollup_company_people", "rollup_engagement_people", "follower_checkpoints", "export_checkpoints", "export_failed_batches", "triggers",
        "trigger_deliveries",
    ]
    /// Set-returning functions that read no table (the snapshot's running transactions) are not the concern.
    static let setReturning = ["unnest", "jsonb_to_recordset", "jsonb_array_elements", "jsonb_each", "jsonb_each_text", "generate_series"]

    /// A rule a statement breaks, or nil.
    static func violation(of statement: String) -> String? {
        let text = statement.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        guard let first = text.split(separator: " ").first?.uppercased(), ["SELECT", "INSERT", "UPDATE", "DELETE", "WITH"].contains(first) else {
            return nil
        }
        let lower = text.lowercased()
        // The staging copy: every row it moves carries its app_token, and it reads no other table.
        if lower.hasPrefix("insert into events select * from events_staging") { return nil }
        let touched = perAppTables.filter { table in
            ["from ", "join ", "into ", "update ", "using "].contains { lower.contains($0 + table + " ") || lower.hasSuffix($0 + table) }
        }
        if !touched.isEmpty && !lower.contains("app_token") {
            return "reads or writes \(touched.joined(separator: ", ")) without naming app_token"
        }
        let srf = setReturning.first { name in
            ["from ", "join ", ", ", "lateral "].contains { lower.contains($0 + name + "(") }
        }
        if let srf {
            for correlated in ["events_resolved", "exists (", "exists(", "coalesce((select", "= (select", "> (select", "< (select"]
            where lower.contains(correlated) {
                return "joins \(srf) beside a correlated subquery (\(correlated))"
            }
        }
        return nil
    }

    @Test func theRulesCatchWhatTheyAreFor() {
        #expect(Self.violation(of: "SELECT count(*) FROM events") != nil)
        #expect(Self.violation(of: "SELECT count(*) FROM events WHERE app_token = $1") == nil)
        #expect(
            Self.violation(
                of:
                    "INSERT INTO users SELECT * FROM jsonb_to_recordset($1) AS x(app_token text) WHERE NOT EXISTS (SELECT 1 FROM suppressions p WHERE p.app_token = x.app_token)"
            ) != nil
        )
        #expect(Self.violation(of: "SELECT person FROM events_resolved r CROSS JOIN unnest(r.stages) WHERE r.app_token = $1") != nil)
        #expect(Self.violation(of: "CREATE TEMP TABLE x (LIKE events)") == nil)
    }

    @Test func theSchemaHasNoTriggerAndNoForeignKeyBetweenAppTables() throws {
        let connection = try PostgresConnection(conninfo: try TestPostgres.freshDatabase())
        try Schema.migrate(connection)
        let triggers = try connection.execute("SELECT tgrelid::regclass::text AS t, tgname FROM pg_trigger WHERE NOT tgisinternal").rows
        #expect(triggers.isEmpty, "\(triggers)")
        let keys = try connection.execute(
            "SELECT conrelid::regclass::text AS child, confrelid::regclass::text AS parent FROM pg_constraint WHERE contype = 'f'"
        ).namedRows
        for key in keys {
            #expect(key["parent"] == "apps", "\(key["child"] ?? "?") → \(key["parent"] ?? "?"): only the apps reference table may be referenced")
        }
    }

    @Test func everyStatementCairnSendsKeepsTheRules() throws {
        let connection = try PostgresConnection(conninfo: try TestPostgres.freshDatabase())
        try Schema.migrate(connection)
        let sent = Mutex<[String]>([])
        connection.statementObserver = { statement in sent.withLock { $0.append(statement) } }
        _ = try AppRegistry.create(["name": "shop", "token": "shop"], on: connection)
        _ = try AppRegistry.setAttribute(["app": "shop", "name": "price", "type": "number"], on: connection)
        _ = try EventWriter().write(events: IdentityFollowerTests.stream, on: connection)
        func everyReport() throws {
            let period: JSON = ["since": "2024-05-01T08:30:00Z", "until": "2024-05-03T10:30:00Z"]
            _ = try EventsReport(params: ["app": "shop"]).run(on: connection)
            _ = try EventsReport(params: ["app": "shop", "by": "day"]).run(on: connection)
            _ = try EventsReport(params: ["app": "shop", "since": period["since"]!, "until": period["until"]!]).run(on: connection)
            _ = try UniquesReport(params: ["app": "shop", "by": "day"]).run(on: connection)
            _ = try UniquesReport(params: ["app": "shop", "by": "week", "event": "viewed"]).run(on: connection)
            _ = try StatsReport(params: ["app": "shop", "event": "purchase", "attr": "price"]).run(on: connection)
            _ = try CompaniesReport(params: ["app": "shop"]).run(on: connection)
            _ = try CompaniesReport(params: ["app": "shop", "since": period["since"]!]).run(on: connection)
            _ = try EngagementReport(params: ["app": "shop", "entity": "flow"]).run(on: connection)
            _ = try EngagementReport(params: ["app": "shop", "entity": "flow", "since": "2024-05-01"]).run(on: connection)
            _ = try FunnelReport(params: ["app": "shop", "steps": ["viewed", "purchase"]]).run(on: connection)
            _ = try RetentionReport(params: ["app": "shop", "start_event": "viewed", "return_event": "viewed", "by": "day", "periods": 3]).run(
                on: connection
            )
            _ = try SessionsReport(params: ["app": "shop"]).run(on: connection)
            _ = try UsersReport(params: ["app": "shop", "did": "purchase", "where": "price > 5"]).run(on: connection)
            _ = try TimelineReport(params: ["app": "shop", "user": "ada"]).run(on: connection)
        }
        try everyReport()
        try IdentityFollower(cache: SessionCache()).catchUp(on: connection)
        try everyReport()
        _ = try UserMerge.merge(["app": "shop", "from": "carol", "into": "ada"], on: connection)
        _ = try UserErasure.delete(["app": "shop", "user": "bob"], on: connection)
        connection.statementObserver = nil
        let statements = sent.withLock { $0 }
        #expect(statements.count > 100, "the workload ran \(statements.count) statements")
        for statement in statements {
            if let broken = Self.violation(of: statement) {
                Issue.record("\(broken): \(statement.split(whereSeparator: \.isWhitespace).joined(separator: " ").prefix(300))")
            }
        }
    }
}
