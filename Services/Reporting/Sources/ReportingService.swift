import CairnCore
import CairnMethods
import CairnPostgres
import CairnService
import CairnWire
import NIOPosix

/// The reporting service: answers report queries against PostgreSQL, read-only.
///
/// Methods: every ``ReportMethod``, ``UsersShow`` and ``CompaniesShow`` (docs/rpc.md). The
/// console module adds the HTTP report API and the web console on top of the same ``ReportRunner``.
public enum ReportingService {
    /// The RPC side: the router every report is registered on, and the runner it uses.
    public static func setup(_ context: ServiceContext) async throws -> (parts: ServiceParts, runner: ReportRunner) {
        let databaseURL = try context.requireDatabaseURL()
        // Threads of its own for the blocking queries: a report that runs for its whole time
        // limit holds one thread, and NIO's shared pool has only two, which a client of the
        // report API could otherwise fill and so hold up every other report and key lookup.
        let threads = NIOThreadPool(numberOfThreads: 16)
        threads.start()
        let pool = PostgresPool(conninfo: databaseURL, maximumIdle: 8, threadPool: threads)
        let runner = ReportRunner(pool: pool, counters: context.counters)
        var router = RPCRouter()
        for entry in ReportCatalog.entries { entry.registerRPC(&router, runner) }
        router.register(UsersShow.self) { params in try await runner.user(params) }
        router.register(CompaniesShow.self) { params in try await runner.company(params) }
        return (ServiceParts(router: router, healthProblem: { await runner.healthProblem() }), runner)
    }
}
