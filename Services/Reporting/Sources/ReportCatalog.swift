import CairnCore
import CairnMethods
import CairnPostgres
import CairnService
import CairnWire

/// Runs reports and identity views in pooled connections: the one path the RPC socket and the
/// HTTP report API share, so that both answer the same question the same way.
public struct ReportRunner: Sendable {
    let pool: PostgresPool
    let counters: Counters

    public init(pool: PostgresPool, counters: Counters) {
        self.pool = pool
        self.counters = counters
    }

    /// Parses `params` (refusing bad ones before any query), then runs the report in one connection.
    public func run<R: Report>(_ report: R.Type, _ params: R.Method.Params) async throws -> ReportTableResult {
        let report = try R(params: params, now: .now())
        let table = try await pool.withConnection { connection in try report.run(on: connection) }
        counters.add("reports")
        return table.result
    }

    public func user(_ params: UsersShow.Params) async throws -> JSON {
        try await pool.withConnection { connection in try IdentityViews.user(params, on: connection) }
    }

    public func company(_ params: CompaniesShow.Params) async throws -> JSON {
        try await pool.withConnection { connection in try IdentityViews.company(params, on: connection) }
    }

    /// Runs `body` in a pooled connection: for lookups of the HTTP API's own (keys, the live tail).
    public func withConnection<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) throws -> T) async throws -> T {
        try await pool.withConnection(body)
    }

    public func healthProblem() async -> String? { await pool.healthProblem() }
}

/// One report as the HTTP API names it (`events` for `report.events`): its parameters' fields
/// and a way to run it from their JSON.
public struct ReportEntry: Sendable {
    /// The path segment: the method's name without `report.`.
    public let name: String
    public let method: String
    public let summary: String
    /// The fields of the method's params, scope first (`app`, `since`, …), as `docs/rpc.md` lists them.
    public let fields: [JSONFieldDescription]
    let execute: @Sendable (ReportRunner, JSON) async throws -> ReportTableResult
    let registerRPC: @Sendable (inout RPCRouter, ReportRunner) -> Void

    init<R: Report>(_ report: R.Type) {
        method = R.Method.name
        name = String(R.Method.name.dropFirst("report.".count))
        summary = R.Method.summary
        fields = JSONCoding.fields(of: R.Method.Params.self)
        execute = { runner, params in try await runner.run(R.self, try JSONCoding.decode(R.Method.Params.self, from: params)) }
        registerRPC = { router, runner in router.register(R.Method.self) { params in try await runner.run(R.self, params) } }
    }

    /// Runs the report from its params as JSON (the shape `docs/rpc.md` gives).
    /// - Throws: ``JSONDecodingError`` when a field has the wrong type, or what the report throws.
    public func run(_ params: JSON, on runner: ReportRunner) async throws -> ReportTableResult {
        try await execute(runner, params)
    }
}

/// Every report, in the order the CLI lists them.
public enum ReportCatalog {
    public static let entries: [ReportEntry] = [
        ReportEntry(EventsReport.self), ReportEntry(UniquesReport.self), ReportEntry(StatsReport.self), ReportEntry(UsersReport.self),
        ReportEntry(TimelineReport.self), ReportEntry(FunnelReport.self), ReportEntry(RetentionReport.self),
        ReportEntry(SessionsReport.self), ReportEntry(EngagementReport.self), ReportEntry(CompaniesReport.self),
    ]

    public static func entry(named name: String) -> ReportEntry? { entries.first { $0.name == name } }
}
