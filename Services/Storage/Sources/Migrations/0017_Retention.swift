// A shipped migration: never edit it. A change ships as a new migration (CONTRIBUTING.md).

extension Migration {
    /// Each app's retention window (`cairn apps configure --retention 13mo`): events older than
    /// it are removed by the daily retention job, with what derives from them. NULL keeps
    /// everything. The last run's time and totals are kept for `cairn retention status`.
    static let retention = Migration(
        version: 17,
        name: "retention",
        statements: [
            #"""
            ALTER TABLE apps ADD COLUMN retention interval CHECK (retention IS NULL OR retention >= interval '1 day'),
                ADD COLUMN retention_ran_at timestamptz, ADD COLUMN retention_cutoff timestamptz,
                ADD COLUMN retention_removed_events bigint NOT NULL DEFAULT 0
            """#
        ]
    )
}
