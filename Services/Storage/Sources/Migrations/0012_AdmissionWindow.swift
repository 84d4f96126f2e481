// A shipped migration: never edit it. A change ships as a new migration (CONTRIBUTING.md).

extension Migration {
    /// Each app's window of accepted event times; ingest refuses events outside it before
    /// acknowledging them.
    static let admissionWindow = Migration(
        version: 12,
        name: "admissionWindow",
        statements: [
            #"""
            ALTER TABLE apps ADD COLUMN event_time_earliest timestamptz NOT NULL DEFAULT '1970-01-01T00:00:00Z'
            """#,
            #"""
            ALTER TABLE apps ADD COLUMN event_time_future_s bigint NOT NULL DEFAULT 86400
            """#,
        ]
    )
}
