import CairnPostgres
import Logging
import ServiceLifecycle
import Synchronization

/// Keeps the planner's statistics fresh as events arrive.
///
/// Autovacuum never analyzes a partitioned table, and a month partition filled by a bulk load
/// keeps its empty-table estimates until it gets to it. Reports planned on those estimates
/// pick nested loops over the whole month (seen: 30 s instead of 0.2 s for `report uniques`
/// on 200,000 events). So once enough rows have changed since the last run, storage
/// analyzes the events table itself, off the write path. The identity and rollup tables are
/// plain tables, which autovacuum analyzes; analyzing them here too cost the follower a
/// second of database time every few seconds under load (pg_stat_statements).
final class StatisticsKeeper: Service, Sendable {
    private let pool: PostgresPool
    private let logger: Logger
    /// Rows written since the last ANALYZE, the event count it saw, and when it ran.
    private let state = Mutex<(pending: Int, analyzedRows: Int, at: ContinuousClock.Instant?)>((0, 0, nil))
    /// At most one ANALYZE a minute: each reads a sample of every partition (a second of the
    /// database's time at 200,000 events), and a steady load would otherwise pay it often.
    static let minimumInterval = Duration.seconds(60)
    /// Re-analyze after this many new rows, or a quarter of the table, whichever is larger.
    static let minimumChange = 10_000

    init(pool: PostgresPool, logger: Logger) {
        self.pool = pool
        self.logger = logger
    }

    /// Counts rows a committed batch wrote.
    func record(_ rows: Int) {
        state.withLock { $0.pending += rows }
    }

    var isDue: Bool {
        state.withLock {
            $0.pending >= max(Self.minimumChange, $0.analyzedRows / 4) && ($0.at.map { ContinuousClock.now - $0 >= Self.minimumInterval } ?? true)
        }
    }

    func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(5)) }
            guard isDue else { continue }
            let pending = state.withLock { state -> Int in
                defer { state.pending = 0 }
                return state.pending
            }
            do {
                let rows = try await pool.withConnection { connection -> Int in
                    try connection.execute("ANALYZE events")
                    return try connection.execute(
                        "SELECT COALESCE(sum(c.reltuples), 0)::bigint AS estimated FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'events'::regclass"
                    ).firstRow?["estimated", as: Int.self] ?? 0
                }
                state.withLock {
                    $0.analyzedRows = rows
                    $0.at = ContinuousClock.now
                }
                logger.debug("statistics refreshed", metadata: ["rows.changed": "\(pending)", "events.estimated": "\(rows)"])
            } catch {
                state.withLock { $0.pending += pending }
                logger.debug("statistics refresh failed; will retry", metadata: ["error": "\(error)"])
            }
        }
    }
}
