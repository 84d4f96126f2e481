import CairnCore
import CairnMethods
import CairnMetrics
import CairnPostgres
import CairnService
import CairnWire
import Logging
import ServiceLifecycle
import Synchronization

/// The storage service: owns the schema and its migrations, commits batches of events to the
/// log (the events table), and keeps the app registry, merges and erasure.
///
/// Methods:
/// - `storage.write {events}` → `{inserted, duplicates, suppressed, rejected}`. Events
///   that fail the canonical checks are returned in `rejected` (by index) instead of failing
///   the batch, so one bad event cannot block the spool behind it. A batch PostgreSQL refuses
///   for its data fails with `write_refused` (and `data.sqlstate`); ingest then isolates the
///   events at fault.
public enum StorageService {
    public static func setup(_ context: ServiceContext) async throws -> ServiceParts {
        let databaseURL = try context.requireDatabaseURL()
        let pool = PostgresPool(conninfo: databaseURL, maximumIdle: 2)
        let writer = EventWriter()
        let readiness = DatabaseReadiness()
        let statistics = StatisticsKeeper(pool: pool, logger: context.logger)
        let counters = context.counters
        let logger = context.logger

        var router = RPCRouter()
        router.register(StorageWrite.self) { params in
            if let problem = readiness.problem {
                throw StorageError(.storageUnavailable, problem)
            }
            let eventValues = params.events
            var events: [CanonicalEvent] = []
            events.reserveCapacity(eventValues.count)
            var rejected: [JSON] = []
            for (index, value) in eventValues.enumerated() {
                do throws(EventError) {
                    events.append(try CanonicalEvent(canonical: value))
                } catch {
                    rejected.append([
                        "index": .int(Int64(index)), "code": .string(error.code.rawValue),
                        "field": .optional(error.field), "message": .string(error.message),
                    ])
                }
            }
            let toWrite = events
            let started = ContinuousClock.now
            do {
                let outcome = try await pool.withConnection { connection in
                    try writer.write(events: toWrite, on: connection)
                }
                CairnMetric.writeDuration.record(ContinuousClock.now - started)
                CairnMetric.batches.increment("write", "ok")
                for (outcome, count) in [("stored", outcome.inserted), ("duplicate", outcome.duplicates), ("suppressed", outcome.suppressed)]
                where count > 0 {
                    CairnMetric.events.increment(by: count, "write", outcome)
                }
                statistics.record(outcome.inserted)
                counters.add("batches_committed")
                counters.add("events_inserted", Int64(outcome.inserted))
                counters.add("events_duplicate", Int64(outcome.duplicates))
                counters.add("events_suppressed", Int64(outcome.suppressed))
                counters.add("events_rejected", Int64(rejected.count))
                return StorageWrite.Result(
                    inserted: outcome.inserted,
                    duplicates: outcome.duplicates,
                    suppressed: outcome.suppressed,
                    rejected: rejected
                )
            } catch let error as PostgresError {
                counters.add("write_failures")
                CairnMetric.batches.increment("write", "failed")
                if error.code == .unavailable {
                    writer.resetPartitionCache()
                    logger.warning("write failed, database unavailable", metadata: ["error": "\(error.message)"])
                    throw StorageError(.storageUnavailable, error.message)
                }
                if let sqlState = error.sqlState, refusesData(sqlState) {
                    // No retry can cure it: ingest halves the batch until the event stands alone, and dead-letters it.
                    logger.warning(
                        "batch refused for its data",
                        metadata: ["error": "\(error.message)", "sqlstate": "\(sqlState)", "events": "\(toWrite.count)"]
                    )
                    throw StorageError(.writeRefused, error.message, details: ["sqlstate": .string(sqlState)])
                }
                logger.error("write failed", metadata: ["error": "\(error.message)", "sqlstate": "\(error.sqlState ?? "")"])
                throw StorageError(.writeFailed, error.message)
            }
        }

        // The app registry: each method runs in one pooled connection, once the schema is in place.
        // A method that reads identity state names its app in `afterFollowing`: the identity
        // follower's backlog of that app is waited out first, holding no connection.
        func register<Method: RPCMethod>(
            _ method: Method.Type,
            afterFollowing app: (@Sendable (Method.Params) -> String)? = nil,
            _ body: @escaping @Sendable (Method.Params, PostgresConnection) throws -> Method.Result
        ) {
            router.register(method) { params in
                if let problem = readiness.problem { throw StorageError(.storageUnavailable, problem) }
                if let app { try await FollowerWait.awaitBacklog(app: app(params), pool: pool) }
                return try await pool.withConnection { connection in try body(params, connection) }
            }
        }
        register(AppsCreate.self) { params, connection in try AppRegistry.create(params, on: connection) }
        register(AppsList.self) { _, connection in try AppRegistry.list(on: connection) }
        register(AppsRotateKey.self) { params, connection in try AppRegistry.rotateKey(params, on: connection) }
        register(AppsRotateReadKey.self) { params, connection in try AppRegistry.rotateReadKey(params, on: connection) }
        register(AppsConfigure.self) { params, connection in try AppRegistry.configure(params, on: connection) }
        register(AttributesSet.self) { params, connection in try AppRegistry.setAttribute(params, on: connection) }
        register(AttributesList.self) { params, connection in try AppRegistry.listAttributes(params, on: connection) }
        register(UsersMerge.self, afterFollowing: { $0.app }, { params, connection in try UserMerge.merge(params, on: connection) })
        register(UsersDelete.self, afterFollowing: { $0.app }, { params, connection in try UserErasure.delete(params, on: connection) })
        register(AppsGet.self) { params, connection in
            guard let found = try AppRegistry.find(params.app, on: connection) else {
                throw StorageError.unknownApp(params.app)
            }
            return found
        }
        register(AppsAuthenticate.self) { params, connection in
            guard let found = try AppRegistry.find(writeKeyHash: params.write_key_hash, on: connection) else {
                throw StorageError(.unknownWriteKey, "no app has this write key")
            }
            return found
        }

        return ServiceParts(
            router: router,
            background: [SchemaMigrator(pool: pool, readiness: readiness, logger: logger), statistics],
            healthProblem: { readiness.problem },
            statusDetails: { ["database": .string(PostgresConfiguration.redacted(databaseURL))] }
        )
    }
}

/// Whether PostgreSQL refused a statement for the data it carried, which no retry cures:
/// SQLSTATE class 22 (data exception: an untranslatable character, a value out of range, a
/// time beyond the calendar), 23 (integrity constraint violation) or 54 (program limit
/// exceeded: an index row too large). Resource and connection errors (53, 08, 57) are not.
func refusesData(_ sqlState: String) -> Bool {
    ["22", "23", "54"].contains(String(sqlState.prefix(2)))
}

/// Whether the database is migrated and reachable; `problem` says why not.
final class DatabaseReadiness: Sendable {
    private let state = Mutex<String?>("applying the schema migrations")

    var problem: String? { state.withLock { $0 } }

    func set(_ problem: String?) {
        state.withLock { $0 = problem }
    }
}

/// Applies the schema at start-up, retrying with backoff until the database answers, and
/// says once, clearly, why it cannot (not a stack trace per attempt).
struct SchemaMigrator: Service {
    let pool: PostgresPool
    let readiness: DatabaseReadiness
    let logger: Logger

    func run() async throws {
        var delay = Duration.milliseconds(200)
        var lastMessage: String?
        while !Task.isShuttingDownGracefully {
            do {
                let version = try await pool.withConnection { try Schema.migrate($0) }
                readiness.set(nil)
                logger.info("schema ready", metadata: ["schema.version": "\(version)"])
                return
            } catch {
                let message = (error as? PostgresError)?.message ?? "\(error)"
                readiness.set(message)
                if message != lastMessage {
                    logger.error("database not ready; retrying", metadata: ["error": "\(message)"])
                    lastMessage = message
                }
            }
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, .seconds(5))
        }
    }
}
