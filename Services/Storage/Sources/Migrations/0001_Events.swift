// A shipped migration: never edit it. A change ships as a new migration (CONTRIBUTING.md).

extension Migration {
    /// Events (partitioned by month on `inserted_at`), users and companies. Every primary key starts with
    /// `app_token`, so the tables can be distributed on it.
    static let events = Migration(
        version: 1,
        name: "events",
        statements: [
            #"""
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
            """#,
            #"""
            CREATE INDEX events_inserted_at_brin ON events USING brin (inserted_at)
            """#,
            #"""
            CREATE INDEX events_app_name_time ON events (app_token, event_name, inserted_at)
            """#,
            #"""
            CREATE INDEX events_app_user_time ON events (app_token, user_id, inserted_at)
            """#,
            #"""
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
            """#,
            #"""
            CREATE TABLE companies (
                app_token text NOT NULL,
                company_id text NOT NULL,
                first_seen timestamptz NOT NULL,
                last_seen timestamptz NOT NULL,
                traits jsonb NOT NULL DEFAULT '{}',
                traits_updated_at timestamptz,
                PRIMARY KEY (app_token, company_id)
            )
            """#,
        ]
    )
}
