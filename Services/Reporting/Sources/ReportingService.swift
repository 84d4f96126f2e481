import CairnCore
import CairnMethods
import CairnPostgres
import CairnService
import CairnWire

/// The reporting service: answers report queries against PostgreSQL, read-only.
///
/// Methods: every ``ReportMethod``, ``UsersShow`` and ``CompaniesShow`` (docs/rpc.md). The
/// console module adds the HTTP report API and the web console on top of the same ``ReportRunner``.
public enum ReportingService {
    /// The RPC side: the router every report is registered on, and the runner it uses.
    public static func setup(_ context: ServiceContext) async throws -> (parts: ServiceParts, runner: ReportRunner) {
        let databaseURL = try context.requireDatabaseURL()
        let pool = PostgresPool(conninfo: databaseURL, maximumIdle: 4)
        let runner = ReportRunner(pool: pool, counters: context.counters)
        var router = RPCRouter()
        for entry in ReportCatalog.entries { entry.registerRPC(&router, runner) }
        router.register(UsersShow.self) { params in try await runner.user(params) }
        router.register(CompaniesShow.self) { params in try await runner.company(params) }
        return (ServiceParts(router: router, healthProblem: { await runner.healthProblem() }), runner)
    }
}
