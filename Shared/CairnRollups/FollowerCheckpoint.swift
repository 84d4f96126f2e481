import CairnCore
import CairnPostgres

/// Where a follower of the events log stands for one app: every event whose `stored_xid` is
/// at or below `afterXid` has been folded into what the follower keeps.
///
/// `stored_xid` is the id of the transaction that stored the event. Below the log's horizon
/// (``LogHorizon``) every transaction has ended, so no event can appear there later: a
/// follower that folds up to the horizon never skips one, and one that folds a span twice
/// is stopped by its checkpoint, moved in the span's own transaction.
public enum FollowerCheckpoint {
    /// The follower that keeps identity state, sessions and rollups (in `cairn-identity`).
    public static let identity = "identity"

    /// The app's checkpoint (0, before anything was folded).
    public static func read(app: String, follower: String = identity, on connection: PostgresConnection) throws(PostgresError) -> Int64 {
        try connection.execute(
            "SELECT after_xid FROM follower_checkpoints WHERE app_token = $1 AND follower = $2",
            [app, follower]
        ).firstRow?["after_xid", as: Int64.self] ?? 0
    }

    /// The newest event of the app (its `stored_xid`, 0 for none), which a wait waits for.
    static func newest(app: String, on connection: PostgresConnection) throws(PostgresError) -> Int64 {
        try connection.execute("SELECT COALESCE(max(stored_xid), 0) AS newest FROM events WHERE app_token = $1", [app])
            .firstRow?["newest", as: Int64.self] ?? 0
    }

    /// The app's events the follower has not folded yet.
    static func unfolded(app: String, follower: String, on connection: PostgresConnection) throws(PostgresError) -> Int64 {
        try connection.execute(
            "SELECT count(*) AS unfolded FROM events WHERE app_token = $1 AND stored_xid > $2::bigint",
            [app, String(try read(app: app, follower: follower, on: connection))]
        ).firstRow?["unfolded", as: Int64.self] ?? 0
    }

    /// Waits, on this connection and its thread, until the follower has folded every event of
    /// the app committed when the wait began, for at most `limit`. Merges and erasures call it
    /// under their locks, after ``awaitFolded(app:follower:limit:pool:)`` has waited out the
    /// backlog. Returns nil once folded, else how many events are still unfolded. The
    /// caller's transaction must not have written yet: the follower folds only below the
    /// oldest running writer.
    public static func awaitFolded(
        app: String,
        follower: String = identity,
        limit: Duration,
        on connection: PostgresConnection
    ) throws(PostgresError) -> Int64? {
        let target = try newest(app: app, on: connection)
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: limit)
        while try read(app: app, follower: follower, on: connection) < target {
            if clock.now >= deadline { return try unfolded(app: app, follower: follower, on: connection) }
            _ = try connection.execute("SELECT pg_sleep(0.02)")
        }
        return nil
    }

    /// The same wait holding no connection or thread between its checks: for the backlog,
    /// which may take seconds to fold.
    public static func awaitFolded(
        app: String,
        follower: String = identity,
        limit: Duration,
        pool: PostgresPool
    ) async throws -> Int64? {
        let target = try await pool.withConnection { connection in try newest(app: app, on: connection) }
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: limit)
        while try await pool.withConnection({ connection in try read(app: app, follower: follower, on: connection) }) < target {
            if clock.now >= deadline {
                return try await pool.withConnection { connection in try unfolded(app: app, follower: follower, on: connection) }
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    /// Moves the checkpoint on after a span of `events` events, in the span's transaction.
    public static func advance(
        app: String,
        follower: String = identity,
        to xid: Int64,
        events: Int,
        on connection: PostgresConnection
    )
        throws(PostgresError)
    {
        try connection.execute(
            """
            INSERT INTO follower_checkpoints AS c (app_token, follower, after_xid, folded_events, spans, updated_at)
            VALUES ($1, $2, $3::bigint, $4::bigint, 1, now())
            ON CONFLICT (app_token, follower) DO UPDATE SET after_xid = GREATEST(c.after_xid, EXCLUDED.after_xid),
                folded_events = c.folded_events + EXCLUDED.folded_events, spans = c.spans + 1, updated_at = now()
            """,
            [app, follower, String(xid), String(events)]
        )
    }

    /// The SQL for an app's checkpoint as a scalar, for reports' tails: `$n` is the app token.
    public static func scalar(appParameter: String, follower: String = identity) -> String {
        "COALESCE((SELECT after_xid FROM follower_checkpoints WHERE app_token = \(appParameter) AND follower = '\(follower)'), 0)"
    }

    /// How far behind the log each app's follower is: events stored but not yet folded, and
    /// the age of the oldest of them (by the time ingest received it).
    public struct Lag: Sendable, Equatable {
        public var app: String
        public var appName: String
        public var follower: String
        public var events: Int64
        public var seconds: Double
        public var foldedEvents: Int64
        public var updatedAt: String?
    }

    public static func lag(follower: String = identity, on connection: PostgresConnection) throws(PostgresError) -> [Lag] {
        try connection.execute(
            """
            SELECT a.token, a.name, COALESCE(c.folded_events, 0) AS folded_events,
                   to_char(c.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS updated_at,
                   t.events, COALESCE(extract(epoch FROM now() - t.oldest), 0)::float8 AS seconds
            FROM apps a
            LEFT JOIN follower_checkpoints c ON c.app_token = a.token AND c.follower = $1
            CROSS JOIN LATERAL (
                SELECT count(*) AS events, min(e.received_at) AS oldest FROM events e
                WHERE e.app_token = a.token AND e.stored_xid > COALESCE(c.after_xid, 0)
            ) t
            ORDER BY a.name
            """,
            [follower]
        ).namedRows.map { row in
            Lag(
                app: row["token"] ?? "",
                appName: row["name"] ?? "",
                follower: follower,
                events: row["events", as: Int64.self] ?? 0,
                seconds: max(0, row["seconds", as: Double.self] ?? 0),
                foldedEvents: row["folded_events", as: Int64.self] ?? 0,
                updatedAt: row["updated_at"]
            )
        }
    }
}

/// The log's horizon: the first transaction id whose events a snapshot may not show yet.
public enum LogHorizon {
    /// The oldest transaction still running in this database (a running transaction of another
    /// database on the same server cannot hold rows of ours), else the first id not yet
    /// assigned. Every event below it that will ever be committed already is.
    ///
    /// A running transaction counts as another database's only when `pg_stat_activity` says
    /// so; one that ended meanwhile, or that the view hides, counts as ours, which only
    /// delays a follower until its next round. `backend_xid` is 32 bits: running ids never
    /// share them.
    public static let sql = """
        SELECT COALESCE(
            (SELECT min(x::text::bigint) FROM pg_snapshot_xip(pg_current_snapshot()) AS x
             WHERE x::text::bigint % 4294967296 NOT IN (
                 SELECT backend_xid::text::bigint FROM pg_stat_activity
                 WHERE backend_xid IS NOT NULL AND datid IS DISTINCT FROM (SELECT oid FROM pg_database WHERE datname = current_database()))),
            pg_snapshot_xmax(pg_current_snapshot())::text::bigint) AS horizon
        """

    public static func read(on connection: PostgresConnection) throws(PostgresError) -> Int64 {
        guard let horizon = try connection.execute(sql).firstRow?["horizon", as: Int64.self] else {
            throw PostgresError(.queryFailed, "no snapshot horizon")
        }
        return horizon
    }
}
