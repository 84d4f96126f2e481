// A shipped migration: never edit it. A change ships as a new migration (CONTRIBUTING.md).

extension Migration {
    /// Sessions computed by identity from each person's event times, and each app's session limits.
    static let sessions = Migration(
        version: 4,
        name: "sessions",
        statements: [
            #"""
            CREATE TABLE user_sessions (
                app_token text NOT NULL,
                person text NOT NULL,
                session integer NOT NULL,
                started_at timestamptz NOT NULL,
                ended_at timestamptz NOT NULL,
                events integer NOT NULL,
                PRIMARY KEY (app_token, person, session)
            )
            """#,
            #"""
            ALTER TABLE apps ADD COLUMN session_inactivity_s integer NOT NULL DEFAULT 1800 CHECK (session_inactivity_s > 0)
            """#,
            #"""
            ALTER TABLE apps ADD COLUMN session_max_length_s integer NOT NULL DEFAULT 86400 CHECK (session_max_length_s > 0)
            """#,
        ]
    )
}
