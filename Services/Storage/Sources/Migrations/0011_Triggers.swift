// A shipped migration: never edit it. A change ships as a new migration (CONTRIBUTING.md).

extension Migration {
    /// Triggers and their pending deliveries; `events_resolved` made again to include `stored_xid`.
    static let triggers = Migration(
        version: 11,
        name: "triggers",
        statements: [
            #"""
            CREATE TABLE triggers (
                app_token text NOT NULL REFERENCES apps (token) ON DELETE CASCADE,
                name text NOT NULL,
                event text NOT NULL,
                condition text,
                trait_condition text,
                unless_event text,
                within_s bigint CHECK (within_s > 0),
                url text NOT NULL,
                secret text,
                max_attempts integer NOT NULL DEFAULT 10 CHECK (max_attempts > 0),
                timeout_ms integer NOT NULL DEFAULT 10000 CHECK (timeout_ms > 0),
                state text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'disabled')),
                state_reason text,
                after_xid bigint NOT NULL,
                after_at timestamptz NOT NULL DEFAULT 'infinity',
                after_event_id bigint NOT NULL DEFAULT 9223372036854775807,
                matched bigint NOT NULL DEFAULT 0,
                delivered bigint NOT NULL DEFAULT 0,
                failed bigint NOT NULL DEFAULT 0,
                cancelled bigint NOT NULL DEFAULT 0,
                last_delivered_at timestamptz,
                last_error text,
                last_error_at timestamptz,
                created_at timestamptz NOT NULL DEFAULT now(),
                updated_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (app_token, name),
                CHECK ((unless_event IS NULL) = (within_s IS NULL))
            )
            """#,
            #"""
            CREATE TABLE trigger_deliveries (
                app_token text NOT NULL,
                trigger text NOT NULL,
                internal_event_id bigint NOT NULL,
                inserted_at timestamptz NOT NULL,
                person text NOT NULL,
                state text NOT NULL CHECK (state IN ('waiting', 'failed', 'retry')),
                due_at timestamptz,
                attempts integer NOT NULL DEFAULT 0,
                last_error text,
                created_at timestamptz NOT NULL DEFAULT now(),
                updated_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (app_token, trigger, internal_event_id, inserted_at),
                FOREIGN KEY (app_token, trigger) REFERENCES triggers (app_token, name) ON DELETE CASCADE
            )
            """#,
            #"""
            CREATE INDEX trigger_deliveries_due ON trigger_deliveries (app_token, trigger, due_at) WHERE state = 'waiting'
            """#,
            #"""
            DROP VIEW events_resolved
            """#,
            #"""
            CREATE VIEW events_resolved AS SELECT r.*,
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
            """#,
        ]
    )
}
