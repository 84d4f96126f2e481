import CairnCore
import CairnMethods
import CairnMetrics
import CairnPostgres
import CairnRollups
import CairnService
import Logging
import NIOPosix
import ServiceLifecycle

/// Removes each app's events older than its retention window (`apps.retention`), with what
/// derives from them, in one transaction per run:
///
/// - the cutoff is the start of the UTC day `retention` ago, so that every hourly and daily
///   rollup bucket is either wholly kept or wholly removed;
/// - a month partition whose every app has outlived it is dropped whole (the fast path);
///   otherwise each app's rows are deleted (the fallback, and the only path while a partition
///   still holds rows some app keeps);
/// - the counting rollups lose exactly the removed events, the person rollups (periods,
///   companies, engagement) of everyone who had a removed event are derived again from what
///   remains, sessions that ended before the cutoff go, and a session that spans it is
///   recomputed from its remaining events.
///
/// It runs in identity, which owns what derives from the log: under the follower's lock of
/// every app it touches (``Rollups/lock(app:on:)``, which merges and erasures take too, so
/// erasure and retention never work on one app at once) and the service's serial gate (the
/// session cache changes with the database).
struct Retention: Sendable {
    let pool: PostgresPool
    let cache: SessionCache
    let gate: SerialGate
    let logger: Logger

    /// How long emptying a partition waits for the queries that read it (a long report) before
    /// the run gives up the fast path and deletes app by app instead. Shorter than PostgreSQL's
    /// `deadlock_timeout` (1 s), so that a merge caught waiting on the run gives way to nobody:
    /// the run yields first.
    static let dropLockTimeout = "500ms"

    /// How long locking a candidate partition against writes waits for a write or an `ANALYZE`
    /// in progress. Nothing that holds such a lock waits on the run's own locks, so this wait
    /// cannot be part of a deadlock and may be longer.
    static let partitionLockTimeout = "5s"

    /// Runs that try the fast path before the fallback.
    static let dropAttempts = 5

    /// One app's window and what a run did (or would do) to it.
    struct AppPlan {
        var token: String
        var name: String
        var window: String
        var cutoff: String
        var events = 0
        var persons: [String] = []
        var endedSessions = 0
        var spanningPersons: [String] = []
        var droppedRanges: [(start: String, end: String)] = []
        /// Rows deleted one by one (the rest went with whole partitions).
        var deleted = 0
        var histories: [String: SessionHistory] = [:]

        var json: JSON {
            [
                "app": .string(name), "retention": .string(window), "cutoff": .string(cutoff), "events": .int(Int64(events)),
                "persons_rederived": .int(Int64(persons.count)), "sessions_removed": .int(Int64(endedSessions)),
                "sessions_recomputed_persons": .int(Int64(spanningPersons.count)),
                "method": .string(droppedRanges.isEmpty ? "delete" : deleted > 0 ? "drop and delete" : "drop"),
            ]
        }
    }

    /// A month (or year) partition of the events table.
    struct Partition {
        var name: String
        var start: String
        var end: String
        /// The apps with rows in it.
        var apps: Set<String>
    }

    func run(_ params: RetentionRun.Params) async throws -> JSON {
        let dryRun = params.dry_run ?? false
        let dropPartitions = params.drop_partitions ?? true
        // A partition in use by a query that outlasts the lock timeout is tried again a few
        // times (a busy moment passes), then the run deletes app by app.
        for attempt in 1...(dropPartitions && !dryRun ? Self.dropAttempts : 1) {
            do {
                return try await runOnce(app: params.app, dryRun: dryRun, dropPartitions: dropPartitions)
            } catch let error as PostgresError where dropPartitions && !dryRun && error.sqlState == "55P03" {
                logger.warning(
                    "retention: a partition to drop stayed in use by running queries",
                    metadata: ["error": "\(error.message)", "attempt": "\(attempt)"]
                )
                try await Task.sleep(for: .milliseconds(250 * attempt))
            }
        }
        logger.warning("retention: deleting app by app instead of dropping partitions")
        return try await runOnce(app: params.app, dryRun: dryRun, dropPartitions: false)
    }

    private func runOnce(app: String?, dryRun: Bool, dropPartitions: Bool) async throws -> JSON {
        let started = ContinuousClock.now
        let (plans, dropped) = try await gate.run {
            try await pool.withConnection { connection in
                try connection.inTransaction { () throws -> ([AppPlan], [Partition]) in
                    try apply(app: app, dryRun: dryRun, dropPartitions: dropPartitions, on: connection)
                }
            }
        }
        // Only what the database committed enters the cache.
        if !dryRun {
            for plan in plans { cache.commit(app: plan.token, plan.histories, forget: plan.persons) }
            // The emptied partitions go now, each in a moment's lock, and only while still empty: an
            // old event written into one since the commit stays. One still in use stays too, empty,
            // and storage writes into it again should an old event arrive.
            for partition in dropped {
                do {
                    try await pool.withConnection { connection in
                        try connection.transaction { () throws(PostgresError) in
                            try connection.execute("SET LOCAL lock_timeout = '\(Self.dropLockTimeout)'")
                            try connection.execute("LOCK TABLE \(partition.name) IN ACCESS EXCLUSIVE MODE")
                            if try connection.execute("SELECT 1 FROM \(partition.name) LIMIT 1").rows.isEmpty {
                                try connection.execute("DROP TABLE \(partition.name)")
                            }
                        }
                    }
                } catch {
                    logger.info("retention: an emptied partition stays until its readers finish", metadata: ["partition": "\(partition.name)"])
                }
            }
        }
        let elapsed = (ContinuousClock.now - started).components
        let seconds = Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18
        let removed = plans.reduce(0) { $0 + $1.events }
        if !dryRun {
            CairnMetric.retentionRemoved.increment(by: removed, dropped.isEmpty ? "delete" : "drop")
            if removed > 0 || !dropped.isEmpty {
                logger.info(
                    "retention removed old events",
                    metadata: [
                        "events": "\(removed)", "apps": "\(plans.filter { $0.events > 0 }.map(\.name).joined(separator: ","))",
                        "partitions.dropped": "\(dropped.map(\.name).joined(separator: ","))", "seconds": "\(seconds)",
                    ]
                )
            }
        }
        return [
            "dry_run": .bool(dryRun), "apps": .array(plans.map(\.json)),
            "partitions_dropped": .array(dropped.map { ["partition": .string($0.name), "from": .string($0.start), "to": .string($0.end)] }),
            "events": .int(Int64(removed)), "seconds": .double((seconds * 1000).rounded() / 1000),
        ]
    }

    private func apply(app key: String?, dryRun: Bool, dropPartitions: Bool, on connection: PostgresConnection) throws -> ([AppPlan], [Partition]) {
        if dryRun { try connection.execute("SET TRANSACTION READ ONLY") }
        try connection.execute("SET LOCAL TimeZone = 'UTC'")
        var plans = try windows(app: key, on: connection)
        guard !plans.isEmpty else { return ([], []) }
        // As an erasure takes them, in token order: the app's writes held back, then the
        // follower's lock. Neither waits on a table lock meanwhile, so the two cannot deadlock.
        if !dryRun {
            for plan in plans { try Rollups.lockWrites(app: plan.token, exclusive: true, on: connection) }
            for plan in plans { try Rollups.lock(app: plan.token, on: connection) }
        }
        let cutoffs = Dictionary(plans.map { ($0.token, $0.cutoff) }, uniquingKeysWith: { first, _ in first })
        let dropped = dropPartitions ? try droppablePartitions(cutoffs: cutoffs, holding: !dryRun, on: connection) : []
        // Rows in a partition that goes whole are not deleted one by one: `$1` the app, `$2` its
        // cutoff, then each dropped partition's bounds.
        let outsideDropped = dropped.indices.map { index in
            "NOT (e.inserted_at >= $\(3 + 2 * index)::timestamptz AND e.inserted_at < $\(4 + 2 * index)::timestamptz)"
        }
        let deletable = (["e.app_token = $1", "e.inserted_at < $2::timestamptz"] + outsideDropped).joined(separator: " AND ")
        let droppedBounds: [String?] = dropped.flatMap { [$0.start, $0.end] }

        for index in plans.indices {
            var plan = plans[index]
            let (token, cutoff) = (plan.token, plan.cutoff)
            let through = try FollowerCheckpoint.read(app: token, on: connection)
            plan.persons = try connection.execute(
                """
                SELECT DISTINCT person FROM (\(Rollups.resolved(where: "e.app_token = $1 AND e.inserted_at < $2::timestamptz AND e.stored_xid <= $3::bigint"))) AS resolved
                """,
                [token, cutoff, String(through)]
            ).namedRows.compactMap { $0["person"] }
            plan.endedSessions =
                try connection.execute(
                    "SELECT count(*) AS n FROM user_sessions WHERE app_token = $1 AND ended_at < $2::timestamptz",
                    [token, cutoff]
                )
                .firstRow?["n", as: Int.self] ?? 0
            plan.spanningPersons = try connection.execute(
                "SELECT DISTINCT person FROM user_sessions WHERE app_token = $1 AND started_at < $2::timestamptz AND ended_at >= $2::timestamptz",
                [token, cutoff]
            ).namedRows.compactMap { $0["person"] }
            let mine = dropped.filter { $0.apps.contains(token) }
            plan.droppedRanges = mine.map { ($0.start, $0.end) }
            var inDropped = 0
            for partition in mine {
                inDropped +=
                    try connection.execute("SELECT count(*) AS n FROM \(partition.name) WHERE app_token = $1", [token]).firstRow?["n", as: Int.self]
                    ?? 0
            }
            if dryRun {
                plan.events =
                    inDropped
                    + (try connection.execute("SELECT count(*) AS n FROM events e WHERE \(deletable)", [token, cutoff] + droppedBounds)
                        .firstRow?["n", as: Int.self] ?? 0)
                plans[index] = plan
                continue
            }
            // The partitions that go whole take their hours and values out of the counting rollups exactly.
            for range in plan.droppedRanges {
                let bounds = [token, range.start, range.end]
                try connection.execute(
                    "DELETE FROM rollup_event_counts WHERE app_token = $1 AND hour >= $2::timestamptz AND hour < $3::timestamptz",
                    bounds
                )
                try connection.execute(
                    "DELETE FROM rollup_attribute_values WHERE app_token = $1 AND inserted_at >= $2::timestamptz AND inserted_at < $3::timestamptz",
                    bounds
                )
            }
            let deleted = try Rollups.subtractDeleted(
                app: token,
                deletedSQL: """
                    DELETE FROM events e WHERE \(deletable)
                    RETURNING e.event_type, e.event_name, e.inserted_at, e.internal_event_id, e.stored_xid
                    """,
                parameters: [token, cutoff] + droppedBounds,
                through: through,
                on: connection
            )
            plan.deleted = deleted
            plan.events = inDropped + deleted
            plans[index] = plan
        }
        guard !dryRun else { return (plans, dropped) }
        if !dropped.isEmpty {
            // Emptied here, dropped after the commit: TRUNCATE locks the partition alone, where
            // DROP would lock the whole events table (and so every write) until the run commits.
            // It waits for the partition's readers at most this long, then the run is retried
            // without it; queries that scan the partition wait for the commit.
            try connection.execute("SET LOCAL lock_timeout = '\(Self.dropLockTimeout)'")
            try connection.execute("TRUNCATE \(dropped.map(\.name).joined(separator: ", "))")
            try connection.execute("SET LOCAL lock_timeout = 0")
        }
        for index in plans.indices {
            var plan = plans[index]
            let through = try FollowerCheckpoint.read(app: plan.token, on: connection)
            try Rollups.refresh(app: plan.token, persons: plan.persons, through: through, on: connection)
            try Self.removeEndedSessions(app: plan.token, cutoff: plan.cutoff, on: connection)
            try Self.moveFirstSeen(app: plan.token, cutoff: plan.cutoff, on: connection)
            plan.histories = try SessionRecompute.recompute(app: plan.token, persons: plan.spanningPersons, through: through, on: connection)
            try connection.execute(
                """
                UPDATE apps SET retention_ran_at = now(), retention_cutoff = $2::timestamptz,
                    retention_removed_events = retention_removed_events + $3::bigint
                WHERE token = $1
                """,
                [plan.token, plan.cutoff, String(plan.events)]
            )
            plans[index] = plan
        }
        return (plans, dropped)
    }

    /// Removes the sessions that ended before the cutoff and numbers each person's remaining
    /// sessions from 1 again, as if the removed ones had never been.
    static func removeEndedSessions(app: String, cutoff: String, on connection: PostgresConnection) throws {
        let removed = try connection.execute(
            """
            WITH gone AS (DELETE FROM user_sessions WHERE app_token = $1 AND ended_at < $2::timestamptz RETURNING person)
            SELECT person, count(*) AS n FROM gone GROUP BY person
            """,
            [app, cutoff]
        ).namedRows
        guard !removed.isEmpty else { return }
        // The removed sessions were each person's first ones: the rest move down by their number.
        try connection.execute(
            """
            UPDATE user_sessions s SET session = s.session - c.n
            FROM unnest($2::text[], $3::int[]) AS c(person, n)
            WHERE s.app_token = $1 AND s.person = c.person
            """,
            [app, PostgresArray.text(removed.compactMap { $0["person"] }), PostgresArray.text(removed.compactMap { $0["n"] })]
        )
    }

    /// A user first seen before the cutoff is first seen at their earliest remaining event: one
    /// of their own id, or of an id aliased to them. One who has none left keeps the old time.
    static func moveFirstSeen(app: String, cutoff: String, on connection: PostgresConnection) throws {
        try connection.execute(
            """
            UPDATE users u SET first_seen = f.first
            FROM (
                SELECT v.user_id, LEAST(
                    (SELECT min(e.inserted_at) FROM events e WHERE e.app_token = $1 AND e.user_id = v.user_id),
                    (SELECT min(e.inserted_at) FROM identity_aliases a JOIN events e ON e.app_token = a.app_token
                         AND ((a.alias_kind = 'user' AND e.user_id = a.alias_id)
                              OR (a.alias_kind = 'anonymous' AND e.user_id IS NULL AND e.anonymous_id = a.alias_id))
                     WHERE a.app_token = $1 AND a.user_id = v.user_id)
                ) AS first
                FROM users v WHERE v.app_token = $1 AND v.first_seen < $2::timestamptz
            ) f
            WHERE u.app_token = $1 AND u.user_id = f.user_id AND f.first IS NOT NULL
            """,
            [app, cutoff]
        )
    }

    /// The apps with a retention window (or the one asked for), each with its cutoff.
    private func windows(app key: String?, on connection: PostgresConnection) throws -> [AppPlan] {
        let rows = try connection.execute(
            """
            SELECT token, name, \(RetentionColumns.sql),
                   to_char(date_trunc('day', now() - retention), 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS cutoff
            FROM apps WHERE retention IS NOT NULL AND ($1::text IS NULL OR token = $1 OR name = $1)
            ORDER BY token
            """,
            [key]
        ).namedRows
        if let key, rows.isEmpty {
            guard try connection.appToken(for: key) != nil else { throw IdentityError.unknownApp(key) }
            throw IdentityError(
                .invalidSetting,
                field: "app",
                "app '\(key)' keeps its events forever; give it a window first: cairn apps configure --app \(key) --retention 13mo"
            )
        }
        return rows.compactMap { row in
            guard let token = row["token"], let cutoff = row["cutoff"] else { return nil }
            return AppPlan(token: token, name: row["name"] ?? token, window: RetentionColumns.window(in: row)?.description ?? "?", cutoff: cutoff)
        }
    }

    /// Partitions that end by every cutoff and hold rows only of apps whose cutoff they end by.
    /// With `holding`, each candidate is locked against writes (`EXCLUSIVE`: readers go on)
    /// before its apps are read, until the run commits: an app without a window writing an old
    /// event into it meanwhile waits, instead of committing a row the run would then empty.
    private func droppablePartitions(cutoffs: [String: String], holding: Bool, on connection: PostgresConnection) throws -> [Partition] {
        guard let latest = cutoffs.values.max() else { return [] }
        // Cutoffs and bounds as the same ISO 8601 UTC text, which compares as the times do.
        let candidates = try EventPartitions.list(on: connection).map {
            (name: $0.name, start: $0.start.format(fractionDigits: 0), end: $0.end.format(fractionDigits: 0))
        }.filter { $0.end <= latest }
        var droppable: [Partition] = []
        for (name, start, end) in candidates {
            // The partition's name comes from the catalog (regclass quotes it), never from a client.
            if holding {
                try connection.execute("SET LOCAL lock_timeout = '\(Self.partitionLockTimeout)'")
                try connection.execute("LOCK TABLE \(name) IN EXCLUSIVE MODE")
                try connection.execute("SET LOCAL lock_timeout = 0")
            }
            let apps = Set(try connection.execute("SELECT DISTINCT app_token FROM \(name)").rows.compactMap { $0[0] })
            if apps.allSatisfy({ app in cutoffs[app].map { end <= $0 } ?? false }) {
                droppable.append(Partition(name: name, start: start, end: end, apps: apps))
            }
        }
        return droppable
    }
}

/// The daily run: the first a minute after the service starts, then every 24 hours.
struct RetentionSchedule: Service {
    let retention: Retention
    let logger: Logger
    var firstRunAfter: Duration = .seconds(60)
    var interval: Duration = .seconds(86_400)

    func run() async throws {
        var wait = firstRunAfter
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let pause = wait
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: pause) }
            if Task.isShuttingDownGracefully || Task.isCancelled { return }
            do {
                _ = try await retention.run(RetentionRun.Params())
            } catch {
                logger.error("retention run failed; the next is in 24 h (cairn retention run runs one now)", metadata: ["error": "\(error)"])
            }
            wait = interval
        }
    }
}
