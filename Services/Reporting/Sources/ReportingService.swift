import CairnCore
import CairnPostgres
import CairnService
import CairnWire

/// The reporting service: answers report queries against PostgreSQL, read-only.
///
/// Methods: `report.events` (see ``EventsReport``).
public enum ReportingService {
    public static func setup(_ context: ServiceContext) async throws -> ServiceParts {
        guard let databaseURL = context.environment.databaseURL else {
            throw RPCError.application("configuration", "CAIRN_DATABASE_URL is not set; start Cairn with cairn-supervisor, which provides one")
        }
        let pool = PostgresPool(conninfo: databaseURL, maximumIdle: 4)
        let counters = context.counters
        var router = RPCRouter()
        router.register("report.events") { params in
            let report = try EventsReport(params: params)
            let table = try await pool.withConnection { connection in try report.run(on: connection) }
            counters.add("reports")
            return table.json
        }
        return ServiceParts(router: router, healthProblem: {
            do {
                _ = try await pool.withConnection { try $0.execute("SELECT 1") }
                return nil
            } catch {
                return "\(error)"
            }
        })
    }
}
