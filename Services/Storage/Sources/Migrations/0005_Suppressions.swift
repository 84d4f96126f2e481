// A shipped migration: never edit it. A change ships as a new migration (CONTRIBUTING.md).

extension Migration {
    /// Erased people: later events naming them are dropped on the write path, and counted.
    static let suppressions = Migration(
        version: 5,
        name: "suppressions",
        statements: [
            #"""
            CREATE TABLE suppressions (
                app_token text NOT NULL,
                kind text NOT NULL CHECK (kind IN ('user', 'anonymous')),
                id text NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now(),
                dropped bigint NOT NULL DEFAULT 0,
                PRIMARY KEY (app_token, kind, id)
            )
            """#
        ]
    )
}
