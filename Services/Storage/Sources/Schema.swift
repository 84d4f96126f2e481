import CairnPostgres

/// Cairn's PostgreSQL schema, as ordered migrations. Storage owns it (DESIGN.md); the other
/// services only read.
///
/// Every primary key starts with `app_token`, so the tables can be distributed on it by
/// Citus; events are range-partitioned by month on `inserted_at`, with partitions created on
/// demand by ``EventWriter``.
public enum Schema {
    public static let migrations: [(version: Int, statements: [String])] = [
        (1, [
            """
            CREATE TABLE events (
                app_token text NOT NULL,
                inserted_at timestamptz NOT NULL,
                internal_event_id bigint NOT NULL,
                event_type text NOT NULL,
                event_name text NOT NULL DEFAULT '',
                user_id text,
                company_id text,
                anonymous_id text,
                source text NOT NULL,
                hostname text,
                pathname text,
                screen_width integer,
                screen_height integer,
                device_type text,
                user_agent text,
                operating_system text,
                browser text,
                browser_language text,
                session text,
                country_code text,
                metadata jsonb NOT NULL DEFAULT '{}',
                message_id text,
                received_at timestamptz NOT NULL,
                origin text NOT NULL,
                PRIMARY KEY (app_token, internal_event_id, inserted_at)
            ) PARTITION BY RANGE (inserted_at)
            """,
            "CREATE INDEX events_inserted_at_brin ON events USING brin (inserted_at)",
            "CREATE INDEX events_app_name_time ON events (app_token, event_name, inserted_at)",
            "CREATE INDEX events_app_user_time ON events (app_token, user_id, inserted_at)",
            """
            CREATE TABLE users (
                app_token text NOT NULL,
                user_id text NOT NULL,
                first_seen timestamptz NOT NULL,
                last_seen timestamptz NOT NULL,
                traits jsonb NOT NULL DEFAULT '{}',
                traits_updated_at timestamptz,
                company_id text,
                company_updated_at timestamptz,
                PRIMARY KEY (app_token, user_id)
            )
            """,
            """
            CREATE TABLE companies (
                app_token text NOT NULL,
                company_id text NOT NULL,
                first_seen timestamptz NOT NULL,
                last_seen timestamptz NOT NULL,
                traits jsonb NOT NULL DEFAULT '{}',
                traits_updated_at timestamptz,
                PRIMARY KEY (app_token, company_id)
            )
            """,
        ]),
        (2, [
            """
            CREATE TABLE apps (
                token text PRIMARY KEY,
                name text NOT NULL UNIQUE,
                write_key_hash text NOT NULL,
                personal_data text NOT NULL DEFAULT 'hash' CHECK (personal_data IN ('keep', 'hash', 'drop')),
                created_at timestamptz NOT NULL DEFAULT now(),
                key_rotated_at timestamptz
            )
            """,
            """
            CREATE TABLE app_attributes (
                app_token text NOT NULL REFERENCES apps (token) ON DELETE CASCADE,
                name text NOT NULL,
                type text NOT NULL CHECK (type IN ('string', 'number', 'date', 'boolean', 'json')),
                updated_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (app_token, name)
            )
            """,
        ]),
    ]

    /// Applies the migrations not yet applied, each in its own transaction, serialised
    /// across processes by an advisory lock.
    /// - Returns: the schema version now in place.
    @discardableResult
    public static func migrate(_ connection: PostgresConnection) throws(PostgresError) -> Int {
        try connection.execute("CREATE TABLE IF NOT EXISTS cairn_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
        try connection.execute("SELECT pg_advisory_lock(72617000)")
        defer { _ = try? connection.execute("SELECT pg_advisory_unlock(72617000)") }
        let applied = Set(try connection.execute("SELECT version FROM cairn_migrations").rows.compactMap { $0[0].flatMap { Int($0) } })
        for migration in migrations where !applied.contains(migration.version) {
            try connection.transaction { () throws(PostgresError) in
                for statement in migration.statements { try connection.execute(statement) }
                try connection.execute("INSERT INTO cairn_migrations (version) VALUES ($1)", [String(migration.version)])
            }
        }
        return migrations.last?.version ?? 0
    }
}
