import CairnCore
import CairnMethods
import CairnMetrics
import CairnPostgres
import CairnRollups
import CairnService
import CairnWire
import Logging
import ServiceLifecycle
import Synchronization

/// The identity service: follows the events log and keeps what it says about people (users,
/// companies, memberships, anonymous → known aliases, sessions) and the report rollups.
/// Nothing on the write path waits for it; reports add the events it has not folded yet.
///
/// Methods:
/// - `identity.refresh {app_token, persons, forget}`: after a merge or an erasure, forget cached
///   histories and recompute the sessions of the persons that remain;
/// - `identity.followers` → each app's lag behind the log, in events and seconds.
public enum IdentityService {
    public static func setup(_ context: ServiceContext) async throws -> ServiceParts {
        let pool = PostgresPool(conninfo: try context.requireDatabaseURL(), maximumIdle: 2)
        let cache = SessionCache()
        let follower = IdentityFollower(
            cache: cache,
            spanLimit: Int((try context.environment.settings())["span_events"]?.intValue ?? Int64(IdentityFollower.defaultSpanLimit))
        )
        // The follower's spans and the refreshes both move the session cache with the database.
        let gate = SerialGate()
        let notifications = PostgresNotifications(conninfo: pool.conninfo, channels: [LogNotification.events], logger: context.logger)
        let loop = FollowerLoop(
            follower: follower,
            pool: pool,
            gate: gate,
            wakeups: notifications,
            counters: context.counters,
            logger: context.logger
        )
        var router = RPCRouter()
        router.register(IdentityRefresh.self) { params in
            let app = params.app_token
            let persons = params.persons ?? []
            let forget = params.forget ?? []
            return try await gate.run {
                cache.commit(app: app, [:], forget: persons + forget)
                guard !persons.isEmpty || !forget.isEmpty else { return IdentityRefresh.Result(persons: 0) }
                return try await pool.withConnection { connection in
                    try connection.inTransaction { () throws -> IdentityRefresh.Result in
                        try Rollups.lock(app: app, on: connection)
                        let through = try FollowerCheckpoint.read(app: app, on: connection)
                        let histories = try SessionRecompute.recompute(app: app, persons: persons, forget: forget, through: through, on: connection)
                        cache.commit(app: app, histories, forget: [])
                        return IdentityRefresh.Result(persons: persons.count + forget.count)
                    }
                }
            }
        }
        let retention = Retention(pool: pool, cache: cache, gate: gate, logger: context.logger)
        router.register(RetentionRun.self) { params in try await retention.run(params) }
        // Both series exist from the start, at 0 until a run removes something.
        for method in ["drop", "delete"] { CairnMetric.retentionRemoved.increment(by: 0, method) }
        router.register(IdentityFollowers.self) { _ in
            IdentityFollowers.Result(followers: try await pool.withConnection { connection in try Self.lag(on: connection) })
        }
        return ServiceParts(
            router: router,
            background: [
                notifications, loop,
                RetentionSchedule(
                    retention: retention,
                    logger: context.logger,
                    firstRunAfter: .seconds((try context.environment.settings())["retention_first_run_s"]?.intValue ?? 60)
                ),
            ],
            healthProblem: { await pool.healthProblem() },
            statusDetails: {
                var details = JSONObject()
                if let lag = try? await pool.withConnection({ connection in try Self.lag(on: connection) }) {
                    details.append("followers", (try? JSONCoding.encode(lag)) ?? .array([]))
                }
                return details
            },
            degradation: { loop.problem },
            refreshMetrics: {
                for lag in (try? await pool.withConnection({ connection in try Self.lag(on: connection) })) ?? [] {
                    CairnMetric.followerLagEvents.set(Double(lag.lag_events), lag.app)
                    CairnMetric.followerLagSeconds.set(lag.lag_seconds, lag.app)
                }
            }
        )
    }

    static func lag(on connection: PostgresConnection) throws -> [FollowerLag] {
        try FollowerCheckpoint.lag(on: connection).map {
            FollowerLag(
                app: $0.appName,
                follower: $0.follower,
                lag_events: $0.events,
                lag_seconds: ($0.seconds * 1000).rounded() / 1000,
                folded_events: $0.foldedEvents,
                updated_at: $0.updatedAt
            )
        }
    }
}

/// Runs the identity follower until shutdown: every app's spans in turn, then a short rest
/// when there was nothing to fold (a failing database backs off up to 5 s).
final class FollowerLoop: Service, Sendable {
    let follower: IdentityFollower
    let pool: PostgresPool
    let gate: SerialGate
    /// Rings when storage commits events: the follower sleeps until then.
    let wakeups: PostgresNotifications
    let newEvents: Doorbell
    let counters: Counters
    let logger: Logger
    private let failure = Mutex<String?>(nil)
    /// How often the follower looks for events while notifications are down, or while events
    /// wait behind a transaction still running.
    static let pollInterval: Duration = .milliseconds(100)

    init(follower: IdentityFollower, pool: PostgresPool, gate: SerialGate, wakeups: PostgresNotifications, counters: Counters, logger: Logger) {
        self.follower = follower
        self.pool = pool
        self.gate = gate
        self.wakeups = wakeups
        newEvents = wakeups.doorbell(channels: [LogNotification.events])
        self.counters = counters
        self.logger = logger
    }

    /// Why the follower is not folding, while it is not.
    var problem: String? { failure.withLock { $0 } }

    func run() async throws {
        var rest = Self.pollInterval
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            // Read before looking, so that a commit announced while this round looks ends the wait below.
            let seen = newEvents.rings
            var idle = false
            do {
                failure.withLock { $0 = nil }
                let (folded, waiting) = try await round()
                if folded > 0 {
                    rest = Self.pollInterval
                    continue
                }
                // Only failing spans left: back off as for a failing database.
                rest = problem == nil ? Self.pollInterval : min(rest * 2, .seconds(5))
                // Nothing unfolded at all: sleep until storage announces a commit.
                idle = problem == nil && !waiting
            } catch {
                failure.withLock { $0 = "identity follower failing: \(error)" }
                counters.add("follower_failures")
                logger.warning("identity follower failed", metadata: ["error": "\(error)"])
                rest = min(rest * 2, .seconds(5))
            }
            if idle {
                let timeout = wakeups.timeout(poll: Self.pollInterval)
                _ = await cancelWhenGracefulShutdown { await self.newEvents.wait(after: seen, timeout: timeout) }
            } else {
                let pause = rest
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: pause) }
            }
        }
    }

    /// One pass over every app; returns the events folded, and whether events were left
    /// unfolded (behind a transaction still running, or in a failing span).
    private func round() async throws -> (folded: Int, waiting: Bool) {
        let apps = try await pool.withConnection { connection in try IdentityFollower.appsWithUnfoldedEvents(on: connection) }
        var folded = 0
        var failures: [String] = []
        defer {
            if !failures.isEmpty { failure.withLock { $0 = "identity follower failing: " + failures.joined(separator: "; ") } }
        }
        for app in apps {
            // One span per app per pass, so that a long backlog of one app never starves another,
            // and a span that fails holds back its own app only.
            let span: IdentityFollower.Span?
            do {
                span = try await gate.run {
                    try await pool.withConnection { [follower] connection in try follower.foldNext(app: app, on: connection) }
                }
            } catch {
                counters.add("follower_failures")
                CairnMetric.batches.increment("fold", "failed")
                logger.warning("identity follower failed", metadata: ["app": "\(app)", "error": "\(error)"])
                failures.append("app \(app): \(error)")
                continue
            }
            guard let span else { continue }
            CairnMetric.batches.increment("fold", "ok")
            CairnMetric.events.increment(by: span.events, "fold", "folded")
            CairnMetric.foldDuration.record(.milliseconds(span.milliseconds.values.reduce(0, +)))
            folded += span.events
            counters.add("spans")
            counters.add("events_folded", Int64(span.events))
            counters.add("users_seen", Int64(span.users))
            counters.add("aliases_seen", Int64(span.aliases))
            counters.add("aliases_refused_illegal_id", Int64(span.refusedAliases))
            counters.add("persons_rederived", Int64(span.refreshedPersons))
            counters.add("sessions_recomputed_persons", Int64(span.sessionPersons))
            for (phase, milliseconds) in span.milliseconds { counters.add("fold_ms_" + phase, milliseconds) }
        }
        return (folded, !apps.isEmpty)
    }
}
