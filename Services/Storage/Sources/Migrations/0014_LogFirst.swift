// A shipped migration: never edit it. A change ships as a new migration (CONTRIBUTING.md).

extension Migration {
    /// Events are the log: no trigger on any per-app table. The rollups' triggers go; the
    /// identity follower keeps the rollups from its checkpoint instead, starting where the
    /// triggers left off (everything already stored was folded in its own transaction). The
    /// trigger tables lose their foreign keys, so that they can be distributed by `app_token`.
    static let logFirst = Migration(
        version: 14,
        name: "logFirst",
        statements: [
            "DROP TRIGGER rollup_events_inserted ON events",
            "DROP TRIGGER rollup_events_deleted ON events",
            "DROP TRIGGER rollup_aliases_inserted ON identity_aliases",
            "DROP TRIGGER rollup_aliases_updated ON identity_aliases",
            "DROP TRIGGER rollup_aliases_deleted ON identity_aliases",
            "DROP TRIGGER rollup_memberships_inserted ON user_companies",
            "DROP TRIGGER rollup_memberships_updated ON user_companies",
            "DROP TRIGGER rollup_memberships_deleted ON user_companies",
            "DROP TRIGGER rollup_attributes_changed ON app_attributes",
            "DROP FUNCTION cairn_rollup_events_inserted()",
            "DROP FUNCTION cairn_rollup_events_deleted()",
            "DROP FUNCTION cairn_rollup_aliases_changed()",
            "DROP FUNCTION cairn_rollup_memberships_changed()",
            "DROP FUNCTION cairn_rollup_attributes_changed()",
            "DROP FUNCTION cairn_rollup_refresh()",
            "DROP FUNCTION cairn_rollup_add_keyed(boolean)",
            "DROP FUNCTION cairn_rollup_apply_delta()",
            "DROP FUNCTION cairn_rollup_begin()",
            "DROP FUNCTION cairn_membership_may_move(text, text, timestamptz)",
            "ALTER TABLE trigger_deliveries DROP CONSTRAINT trigger_deliveries_app_token_trigger_fkey",
            "ALTER TABLE triggers DROP CONSTRAINT triggers_app_token_fkey",
            #"""
            CREATE TABLE follower_checkpoints (
                app_token text NOT NULL,
                follower text NOT NULL,
                after_xid bigint NOT NULL DEFAULT 0,
                folded_events bigint NOT NULL DEFAULT 0,
                spans bigint NOT NULL DEFAULT 0,
                updated_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (app_token, follower)
            )
            """#,
            #"""
            INSERT INTO follower_checkpoints (app_token, follower, after_xid)
            SELECT a.token, 'identity', COALESCE((SELECT max(e.stored_xid) FROM events e WHERE e.app_token = a.token), 0) FROM apps a
            """#,
        ]
    )
}
