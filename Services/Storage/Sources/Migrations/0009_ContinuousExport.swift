// A shipped migration: never edit it. A change ships as a new migration (CONTRIBUTING.md).

extension Migration {
    /// What continuous export needs: each event and identity link remembers the transaction that
    /// stored it (a commit-safe order), and each destination its checkpoint and refused batches.
    static let continuousExport = Migration(
        version: 9,
        name: "continuousExport",
        statements: [
            #"""
            CREATE FUNCTION cairn_xid() RETURNS bigint VOLATILE LANGUAGE sql AS $$
                SELECT pg_current_xact_id()::text::bigint
            $$
            """#,
            #"""
            ALTER TABLE events ADD COLUMN stored_xid bigint NOT NULL DEFAULT 0
            """#,
            #"""
            ALTER TABLE events ALTER COLUMN stored_xid SET DEFAULT cairn_xid()
            """#,
            #"""
            CREATE INDEX events_app_stored_xid ON events (app_token, stored_xid)
            """#,
            #"""
            ALTER TABLE identity_aliases ADD COLUMN stored_xid bigint NOT NULL DEFAULT 0
            """#,
            #"""
            ALTER TABLE identity_aliases ALTER COLUMN stored_xid SET DEFAULT cairn_xid()
            """#,
            #"""
            CREATE INDEX identity_aliases_stored_xid ON identity_aliases (app_token, stored_xid)
            """#,
            #"""
            CREATE TABLE export_checkpoints (
                app_token text NOT NULL,
                destination text NOT NULL,
                url text NOT NULL,
                after_xid bigint NOT NULL DEFAULT -1,
                after_at timestamptz NOT NULL DEFAULT '-infinity',
                after_event_id bigint NOT NULL DEFAULT -9223372036854775808,
                after_alias_kind text NOT NULL DEFAULT '',
                after_alias_id text NOT NULL DEFAULT '',
                delivered_messages bigint NOT NULL DEFAULT 0,
                delivered_batches bigint NOT NULL DEFAULT 0,
                failed_messages bigint NOT NULL DEFAULT 0,
                failed_batches bigint NOT NULL DEFAULT 0,
                skipped_messages bigint NOT NULL DEFAULT 0,
                last_delivered_at timestamptz,
                last_error text,
                last_error_at timestamptz,
                created_at timestamptz NOT NULL DEFAULT now(),
                updated_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (app_token, destination)
            )
            """#,
            #"""
            CREATE TABLE export_failed_batches (
                app_token text NOT NULL,
                destination text NOT NULL,
                failed_at timestamptz NOT NULL DEFAULT now(),
                status integer NOT NULL,
                response text NOT NULL,
                messages integer NOT NULL,
                body text NOT NULL
            )
            """#,
            #"""
            CREATE INDEX export_failed_batches_destination ON export_failed_batches (app_token, destination, failed_at)
            """#,
        ]
    )
}
