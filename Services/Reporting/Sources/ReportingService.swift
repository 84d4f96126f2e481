import CairnCore
import CairnPostgres
import CairnService
import CairnWire

/// The reporting service: answers report queries against PostgreSQL, read-only.
///
/// Methods: `report.events` (see ``EventsReport``).
public enum ReportingService {
    public static func setup(_ context: ServiceContext) async throws -> ServiceParts {
        let databaseURL = try context.requireDatabaseURL()
        let pool = PostgresPool(conninfo: databaseURL, maximumIdle: 4)
        let counters = context.counters
        var router = RPCRouter()
        router.register("report.events") { params in
            let report = try EventsReport(params: params)
            let table = try await pool.withConnection { connection in try report.run(on: connection) }
            counters.add("reports")
            return table.json
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
