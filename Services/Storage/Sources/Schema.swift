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
        (3, [
            // Traits merge key by key on event time: each key's time is kept beside it.
            "ALTER TABLE users ADD COLUMN trait_times jsonb NOT NULL DEFAULT '{}'",
            "ALTER TABLE users ADD COLUMN merged_into text",
            "ALTER TABLE companies ADD COLUMN trait_times jsonb NOT NULL DEFAULT '{}'",
            // Which companies a user was seen with, and when: the company as of an event's time
            // is the one whose first sighting is the latest at or before it.
            """
            CREATE TABLE user_companies (
                app_token text NOT NULL,
                user_id text NOT NULL,
                company_id text NOT NULL,
                first_seen timestamptz NOT NULL,
                last_seen timestamptz NOT NULL,
                PRIMARY KEY (app_token, user_id, company_id)
            )
            """,
            // An id that resolves to a user: an anonymous id once identified, or a user merged
            // into another. Kept flat (always pointing at the final user), so resolution is one lookup.
            """
            CREATE TABLE identity_aliases (
                app_token text NOT NULL,
                alias_kind text NOT NULL CHECK (alias_kind IN ('anonymous', 'user')),
                alias_id text NOT NULL,
                user_id text NOT NULL,
                aliased_at timestamptz NOT NULL,
                reason text NOT NULL,
                PRIMARY KEY (app_token, alias_kind, alias_id)
            )
            """,
            "CREATE INDEX identity_aliases_user ON identity_aliases (app_token, user_id)",
            """
            CREATE TABLE identity_merges (
                app_token text NOT NULL,
                from_user text NOT NULL,
                into_user text NOT NULL,
                merged_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (app_token, from_user)
            )
            """,
            "CREATE INDEX events_app_anonymous ON events (app_token, anonymous_id) WHERE anonymous_id IS NOT NULL",
            // Per-key trait merge: the later event time wins; at equal times the greater value
            // (as JSON text), so the result never depends on arrival order.
            """
            CREATE FUNCTION cairn_trait_wins(old_time timestamptz, old_value jsonb, new_time timestamptz, new_value jsonb)
            RETURNS boolean IMMUTABLE LANGUAGE sql AS $$
                SELECT new_time IS NOT NULL AND (old_time IS NULL OR new_time > old_time
                       OR (new_time = old_time AND new_value::text > old_value::text))
            $$
            """,
            """
            CREATE FUNCTION cairn_merge_traits(old_traits jsonb, old_times jsonb, new_traits jsonb, new_times jsonb)
            RETURNS jsonb IMMUTABLE LANGUAGE sql AS $$
                SELECT COALESCE(jsonb_object_agg(k, CASE
                    WHEN cairn_trait_wins((old_times->>k)::timestamptz, old_traits->k, (new_times->>k)::timestamptz, new_traits->k)
                    THEN new_traits->k ELSE old_traits->k END), '{}'::jsonb)
                FROM (SELECT jsonb_object_keys(old_traits) UNION SELECT jsonb_object_keys(new_traits)) AS keys(k)
            $$
            """,
            """
            CREATE FUNCTION cairn_merge_trait_times(old_traits jsonb, old_times jsonb, new_traits jsonb, new_times jsonb)
            RETURNS jsonb IMMUTABLE LANGUAGE sql AS $$
                SELECT COALESCE(jsonb_object_agg(k, CASE
                    WHEN cairn_trait_wins((old_times->>k)::timestamptz, old_traits->k, (new_times->>k)::timestamptz, new_traits->k)
                    THEN new_times->k ELSE old_times->k END), '{}'::jsonb)
                FROM (SELECT jsonb_object_keys(old_traits) UNION SELECT jsonb_object_keys(new_traits)) AS keys(k)
            $$
            """,
            // Events with the person they resolve to: a lookup, never a rewrite of the stored row.
            """
            CREATE VIEW events_resolved AS
            SELECT e.*,
                   COALESCE(mu.user_id, e.user_id, ma.user_id, 'anonymous:' || e.anonymous_id) AS person
            FROM events e
            LEFT JOIN identity_aliases mu
                   ON mu.app_token = e.app_token AND mu.alias_kind = 'user' AND mu.alias_id = e.user_id
            LEFT JOIN identity_aliases ma
                   ON ma.app_token = e.app_token AND ma.alias_kind = 'anonymous' AND ma.alias_id = e.anonymous_id
                  AND e.user_id IS NULL
            """,
        ]),
        (4, [
            // Sessions computed by identity from each person's event times (a lookup by time
            // range, never written into the events). A person is a user id, or
            // 'anonymous:<id>' for a visitor not yet identified.
            """
            CREATE TABLE user_sessions (
                app_token text NOT NULL,
                person text NOT NULL,
                session integer NOT NULL,
                started_at timestamptz NOT NULL,
                ended_at timestamptz NOT NULL,
                events integer NOT NULL,
                PRIMARY KEY (app_token, person, session)
            )
            """,
            "ALTER TABLE apps ADD COLUMN session_inactivity_s integer NOT NULL DEFAULT 1800 CHECK (session_inactivity_s > 0)",
            "ALTER TABLE apps ADD COLUMN session_max_length_s integer NOT NULL DEFAULT 86400 CHECK (session_max_length_s > 0)",
        ]),
        (5, [
            // Erased people: later events naming them are dropped on the write path, and counted.
            """
            CREATE TABLE suppressions (
                app_token text NOT NULL,
                kind text NOT NULL CHECK (kind IN ('user', 'anonymous')),
                id text NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now(),
                dropped bigint NOT NULL DEFAULT 0,
                PRIMARY KEY (app_token, kind, id)
            )
            """,
        ]),
        (6, [
            // The resolved view also gives each event its company: its own, else the user's
            // company as of the event's time (the latest membership begun at or before it).
            "DROP VIEW events_resolved",
            """
            CREATE VIEW events_resolved AS
            SELECT r.*,
                   COALESCE(r.company_id, (SELECT m.company_id FROM user_companies m
                                           WHERE m.app_token = r.app_token AND m.user_id = r.person AND m.first_seen <= r.inserted_at
                                           ORDER BY m.first_seen DESC, m.company_id DESC LIMIT 1)) AS company
            FROM (
                SELECT e.*, COALESCE(mu.user_id, e.user_id, ma.user_id, 'anonymous:' || e.anonymous_id) AS person
                FROM events e
                LEFT JOIN identity_aliases mu
                       ON mu.app_token = e.app_token AND mu.alias_kind = 'user' AND mu.alias_id = e.user_id
                LEFT JOIN identity_aliases ma
                       ON ma.app_token = e.app_token AND ma.alias_kind = 'anonymous' AND ma.alias_id = e.anonymous_id
                      AND e.user_id IS NULL
            ) r
            """,
            "ALTER TABLE apps ADD COLUMN identify_userlike_by_email boolean NOT NULL DEFAULT false",
        ]),
        (7, [
            // Report conditions compare dates stored as text; a text that is not a time never matches.
            """
            CREATE FUNCTION cairn_try_timestamptz(value text) RETURNS timestamptz STABLE LANGUAGE plpgsql AS $$
            BEGIN
                RETURN value::timestamptz;
            EXCEPTION WHEN others THEN
                RETURN NULL;
            END
            $$
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
