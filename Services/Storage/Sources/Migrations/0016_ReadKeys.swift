// A shipped migration: never edit it. A change ships as a new migration (CONTRIBUTING.md).

extension Migration {
    /// Each app's read key, for the HTTP report API and the console: stored as its SHA-256 only,
    /// like the write key, and unique so that a key names one app.
    static let readKeys = Migration(
        version: 16,
        name: "readKeys",
        statements: [
            #"""
            ALTER TABLE apps ADD COLUMN read_key_hash text, ADD COLUMN read_key_rotated_at timestamptz
            """#,
            #"""
            CREATE UNIQUE INDEX apps_read_key_hash ON apps (read_key_hash) WHERE read_key_hash IS NOT NULL
            """#,
        ]
    )
}
