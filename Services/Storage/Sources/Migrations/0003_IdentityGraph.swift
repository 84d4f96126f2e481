// A shipped migration: never edit it. A change ships as a new migration (CONTRIBUTING.md).

extension Migration {
    /// The identity graph: per-key trait times, user–company memberships, aliases (kept flat, so
    /// resolution is one lookup), merges, the trait merge functions and `events_resolved`.
    static let identityGraph = Migration(
        version: 3,
        name: "identityGraph",
        statements: [
            #"""
            ALTER TABLE users ADD COLUMN trait_times jsonb NOT NULL DEFAULT '{}'
            """#,
            #"""
            ALTER TABLE users ADD COLUMN merged_into text
            """#,
            #"""
            ALTER TABLE companies ADD COLUMN trait_times jsonb NOT NULL DEFAULT '{}'
            """#,
            #"""
            CREATE TABLE user_companies (
                app_token text NOT NULL,
                user_id text NOT NULL,
                company_id text NOT NULL,
                first_seen timestamptz NOT NULL,
                last_seen timestamptz NOT NULL,
                PRIMARY KEY (app_token, user_id, company_id)
            )
            """#,
            #"""
            CREATE TABLE identity_aliases (
                app_token text NOT NULL,
                alias_kind text NOT NULL CHECK (alias_kind IN ('anonymous', 'user')),
                alias_id text NOT NULL,
                user_id text NOT NULL,
                aliased_at timestamptz NOT NULL,
                reason text NOT NULL,
                PRIMARY KEY (app_token, alias_kind, alias_id)
            )
            """#,
            #"""
            CREATE INDEX identity_aliases_user ON identity_aliases (app_token, user_id)
            """#,
            #"""
            CREATE TABLE identity_merges (
                app_token text NOT NULL,
                from_user text NOT NULL,
                into_user text NOT NULL,
                merged_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (app_token, from_user)
            )
            """#,
            #"""
            CREATE INDEX events_app_anonymous ON events (app_token, anonymous_id) WHERE anonymous_id IS NOT NULL
            """#,
            #"""
            CREATE FUNCTION cairn_trait_wins(old_time timestamptz, old_value jsonb, new_time timestamptz, new_value jsonb)
            RETURNS boolean IMMUTABLE LANGUAGE sql AS $$
                SELECT new_time IS NOT NULL AND (old_time IS NULL OR new_time > old_time
                       OR (new_time = old_time AND new_value::text > old_value::text))
            $$
            """#,
            #"""
            CREATE FUNCTION cairn_merge_traits(old_traits jsonb, old_times jsonb, new_traits jsonb, new_times jsonb)
            RETURNS jsonb IMMUTABLE LANGUAGE sql AS $$
                SELECT COALESCE(jsonb_object_agg(k, CASE
                    WHEN cairn_trait_wins((old_times->>k)::timestamptz, old_traits->k, (new_times->>k)::timestamptz, new_traits->k)
                    THEN new_traits->k ELSE old_traits->k END), '{}'::jsonb)
                FROM (SELECT jsonb_object_keys(old_traits) UNION SELECT jsonb_object_keys(new_traits)) AS keys(k)
            $$
            """#,
            #"""
            CREATE FUNCTION cairn_merge_trait_times(old_traits jsonb, old_times jsonb, new_traits jsonb, new_times jsonb)
            RETURNS jsonb IMMUTABLE LANGUAGE sql AS $$
                SELECT COALESCE(jsonb_object_agg(k, CASE
                    WHEN cairn_trait_wins((old_times->>k)::timestamptz, old_traits->k, (new_times->>k)::timestamptz, new_traits->k)
                    THEN new_times->k ELSE old_times->k END), '{}'::jsonb)
                FROM (SELECT jsonb_object_keys(old_traits) UNION SELECT jsonb_object_keys(new_traits)) AS keys(k)
            $$
            """#,
            #"""
            CREATE VIEW events_resolved AS
            SELECT e.*,
                   COALESCE(mu.user_id, e.user_id, ma.user_id, 'anonymous:' || e.anonymous_id) AS person
            FROM events e
            LEFT JOIN identity_aliases mu
                   ON mu.app_token = e.app_token AND mu.alias_kind = 'user' AND mu.alias_id = e.user_id
            LEFT JOIN identity_aliases ma
                   ON ma.app_token = e.app_token AND ma.alias_kind = 'anonymous' AND ma.alias_id = e.anonymous_id
                  AND e.user_id IS NULL
            """#,
        ]
    )
}
