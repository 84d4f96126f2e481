import CairnCore
import CairnPostgres

/// Cairn's PostgreSQL schema, as ordered migrations. Storage owns it; the other
/// services only read.
///
/// Every primary key starts with `app_token`, so the tables can be distributed on it by
/// Citus; events are range-partitioned by month on `inserted_at`, with partitions created on
/// demand by ``EventWriter``.
public enum Schema {
    /// Every migration, in the order they apply. Each is frozen in its own file under `Migrations/`.
    public static let migrations: [Migration] = [
        .events, .apps, .identityGraph, .sessions, .suppressions, .resolvedCompany, .tryTimestamp,
        .rollups, .continuousExport, .rollupWritePath, .triggers, .admissionWindow, .numericWithinRange, .logFirst, .linearTraitMerge,
        .readKeys, .retention, .emailTriggers, .engagementParts,
    ]

    /// Applies the migrations not yet applied, each in its own transaction, serialised
    /// across processes by an advisory lock.
    /// - Returns: the schema version now in place.
    /// - Parameter target: stop after this version (tests use it to build an older database).
    @discardableResult
    public static func migrate(_ connection: PostgresConnection, upTo target: Int = .max) throws(PostgresError) -> Int {
        try connection.execute(
            "CREATE TABLE IF NOT EXISTS cairn_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        try connection.execute("SELECT pg_advisory_lock(72617000)")
        defer { _ = try? connection.execute("SELECT pg_advisory_unlock(72617000)") }
        let applied = Set(try connection.execute("SELECT version FROM cairn_migrations").namedRows.compactMap { $0["version", as: Int.self] })
        for migration in migrations where !applied.contains(migration.version) && migration.version <= target {
            try connection.transaction { () throws(PostgresError) in
                for statement in migration.statements { try connection.execute(statement) }
                try connection.execute("INSERT INTO cairn_migrations (version) VALUES ($1)", [String(migration.version)])
            }
        }
        return min(target, migrations.last?.version ?? 0)
    }
}
