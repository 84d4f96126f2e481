import CairnCore
import CairnPostgres
import CairnService
import CairnWire

/// The reporting service: answers report queries against PostgreSQL, read-only.
///
/// Methods: `report.events`, `report.uniques`, `report.stats`, `report.timeline`, `users.show`, `companies.show`.
public enum ReportingService {
    public static func setup(_ context: ServiceContext) async throws -> ServiceParts {
        let databaseURL = try context.requireDatabaseURL()
        let pool = PostgresPool(conninfo: databaseURL, maximumIdle: 4)
        let counters = context.counters
        var router = RPCRouter()
        // Each report parses its params, then runs in one pooled connection.
        let reports: [(String, @Sendable (JSON) throws -> @Sendable (PostgresConnection) throws -> ReportTable)] = [
            ("report.events", { params in let report = try EventsReport(params: params); return { try report.run(on: $0) } }),
            ("report.uniques", { params in let report = try UniquesReport(params: params); return { try report.run(on: $0) } }),
            ("report.stats", { params in let report = try StatsReport(params: params); return { try report.run(on: $0) } }),
            ("report.timeline", { params in let report = try TimelineReport(params: params); return { try report.run(on: $0) } }),
            ("report.sessions", { params in let report = try SessionsReport(params: params); return { try report.run(on: $0) } }),
            ("report.companies", { params in let report = try CompaniesReport(params: params); return { try report.run(on: $0) } }),
            ("report.funnel", { params in let report = try FunnelReport(params: params); return { try report.run(on: $0) } }),
            ("report.retention", { params in let report = try RetentionReport(params: params); return { try report.run(on: $0) } }),
            ("report.users", { params in let report = try UsersReport(params: params); return { try report.run(on: $0) } }),
            ("report.engagement", { params in let report = try EngagementReport(params: params); return { try report.run(on: $0) } }),
        ]
        for (method, prepare) in reports {
            router.register(method) { params in
                let run = try prepare(params)
                let table = try await pool.withConnection { connection in try run(connection) }
                counters.add("reports")
                return table.json
            }
        }
        for (method, body) in [("users.show", IdentityViews.user), ("companies.show", IdentityViews.company)] as [(String, @Sendable (JSON, PostgresConnection) throws -> JSON)] {
            router.register(method) { params in
                do {
                    return try await pool.withConnection { connection in try body(params, connection) }
                } catch let error as PostgresError {
                    throw RPCError.application(error.code == .unavailable ? "storage_unavailable" : "query_failed", error.message)
                }
            }
        }
        return ServiceParts(router: router, healthProblem: { await pool.healthProblem() })
    }
}
