import CairnCore
import CairnMethods
import CairnPostgres
import CairnService
import CairnWire

/// The reporting service: answers report queries against PostgreSQL, read-only.
///
/// Methods: every ``ReportMethod``, ``UsersShow`` and ``CompaniesShow`` (docs/rpc.md).
public enum ReportingService {
    public static func setup(_ context: ServiceContext) async throws -> ServiceParts {
        let databaseURL = try context.requireDatabaseURL()
        let pool = PostgresPool(conninfo: databaseURL, maximumIdle: 4)
        let counters = context.counters
        var router = RPCRouter()
        // Each report parses its params, then runs in one pooled connection.
        func register<R: Report>(_ report: R.Type) {
            router.register(R.Method.self) { params in
                let report = try R(params: params, now: .now())
                let table = try await pool.withConnection { connection in try report.run(on: connection) }
                counters.add("reports")
                return table.result
            }
        }
        register(EventsReport.self)
        register(UniquesReport.self)
        register(StatsReport.self)
        register(TimelineReport.self)
        register(SessionsReport.self)
        register(CompaniesReport.self)
        register(FunnelReport.self)
        register(RetentionReport.self)
        register(UsersReport.self)
        register(EngagementReport.self)
        router.register(UsersShow.self) { params in try await pool.withConnection { connection in try IdentityViews.user(params, on: connection) } }
        router.register(CompaniesShow.self) { params in
            try await pool.withConnection { connection in try IdentityViews.company(params, on: connection) }
        }
        return ServiceParts(router: router, healthProblem: { await pool.healthProblem() })
    }
}
