// A shipped migration: never edit it. A change ships as a new migration (CONTRIBUTING.md).

extension Migration {
    /// The rollups' write path made to cost what a batch holds: new events resolved from the
    /// transition table, memberships re-deriving only people they can move, scratch tables analyzed,
    /// and no JIT for the small statements.
    static let rollupWritePath = Migration(
        version: 10,
        name: "rollupWritePath",
        statements: [
            #"""
            CREATE FUNCTION cairn_rollup_apply_delta() RETURNS void LANGUAGE plpgsql AS $$
            BEGIN
                WITH added AS (
                INSERT INTO rollup_person_periods (app_token, person, grain, period)
                SELECT DISTINCT d.app_token, d.person, g.grain, date_trunc(g.grain, d.inserted_at AT TIME ZONE 'UTC')::date
                FROM cairn_rollup_delta d CROSS JOIN (VALUES ('day'), ('week'), ('month')) AS g(grain)
                ORDER BY 1, 2, 3, 4
                ON CONFLICT DO NOTHING
                RETURNING app_token, grain, period
            )
            INSERT INTO rollup_period_people AS p (app_token, grain, period, people)
            SELECT app_token, grain, period, count(*) FROM added GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
            ON CONFLICT (app_token, grain, period) DO UPDATE SET people = p.people + EXCLUDED.people;
            INSERT INTO rollup_company_people AS c (app_token, company, person, events)
            SELECT app_token, company, person, count(*) FROM cairn_rollup_delta WHERE company IS NOT NULL
            GROUP BY 1, 2, 3 ORDER BY 1, 3, 2
            ON CONFLICT (app_token, person, company) DO UPDATE SET events = c.events + EXCLUDED.events;
            INSERT INTO rollup_engagement_people (app_token, entity, tool, id, stage, person)
            SELECT DISTINCT d.app_token, g.entity, cairn_engagement_tool(g.entity, d.event_type),
                   cairn_engagement_id(g.entity, d.event_type, d.event_name, d.metadata), stage, d.person
            FROM cairn_rollup_delta d
            CROSS JOIN unnest(cairn_engagement_entities()) AS g(entity)
            CROSS JOIN LATERAL unnest(cairn_engagement_stages(g.entity, d.event_type, d.event_name, d.metadata)) AS stage
            WHERE cairn_engagement_candidate(d.event_type, d.event_name)
            ORDER BY 1, 2, 3, 4, 5, 6
            ON CONFLICT DO NOTHING;
                DELETE FROM cairn_rollup_delta;
            END
            $$
            """#,
            #"""
            CREATE OR REPLACE FUNCTION cairn_rollup_add_keyed(only_affected boolean) RETURNS void LANGUAGE plpgsql AS $$
            BEGIN
                DELETE FROM cairn_rollup_delta;
                INSERT INTO cairn_rollup_delta
            SELECT r.app_token, r.inserted_at, r.person, r.company, r.event_type, r.event_name, r.metadata
            FROM cairn_rollup_keys k
            JOIN events_resolved r ON r.app_token = k.app_token AND r.internal_event_id = k.internal_event_id AND r.inserted_at = k.inserted_at
            WHERE r.person IS NOT NULL
              AND (NOT only_affected OR (r.app_token, r.person) IN (SELECT app_token, person FROM cairn_rollup_affected));
                PERFORM cairn_rollup_apply_delta();
                DELETE FROM cairn_rollup_keys;
            END
            $$
            """#,
            #"""
            CREATE OR REPLACE FUNCTION cairn_rollup_events_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM cairn_rollup_begin();
                    INSERT INTO rollup_event_counts AS c (app_token, hour, event_type, event_name, events)
                SELECT app_token, date_trunc('hour', inserted_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', event_type, event_name, count(*)
                FROM new_rows GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
                ON CONFLICT (app_token, hour, event_type, event_name) DO UPDATE SET events = c.events + EXCLUDED.events;
                INSERT INTO rollup_attribute_values (app_token, event_name, attribute, inserted_at, internal_event_id, value)
                SELECT n.app_token, n.event_name, a.name, n.inserted_at, n.internal_event_id, cairn_jsonb_numeric(n.metadata -> a.name)
                FROM new_rows n JOIN app_attributes a ON a.app_token = n.app_token AND a.type = 'number' AND n.metadata ? a.name
                ON CONFLICT DO NOTHING;
                DELETE FROM cairn_rollup_delta;
                INSERT INTO cairn_rollup_delta
                SELECT r.app_token, r.inserted_at, r.person, r.company, r.event_type, r.event_name, r.metadata
                FROM (SELECT r.*,
                   COALESCE(r.company_id, (SELECT m.company_id FROM user_companies m
                                           WHERE m.app_token = r.app_token AND m.user_id = r.person AND m.first_seen <= r.inserted_at
                                           ORDER BY m.first_seen DESC, m.company_id DESC LIMIT 1)) AS company
            FROM (
                SELECT e.*, COALESCE(mu.user_id, e.user_id, ma.user_id, 'anonymous:' || e.anonymous_id) AS person
                FROM new_rows e
                LEFT JOIN identity_aliases mu
                       ON mu.app_token = e.app_token AND mu.alias_kind = 'user' AND mu.alias_id = e.user_id
                LEFT JOIN identity_aliases ma
                       ON ma.app_token = e.app_token AND ma.alias_kind = 'anonymous' AND ma.alias_id = e.anonymous_id
                      AND e.user_id IS NULL
            ) r) r
                WHERE r.person IS NOT NULL;
                PERFORM cairn_rollup_apply_delta();
                RETURN NULL;
            END
            $$
            """#,
            #"""
            CREATE OR REPLACE FUNCTION cairn_rollup_memberships_changed() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM cairn_rollup_begin();
                IF TG_OP = 'INSERT' THEN
                    INSERT INTO cairn_rollup_affected SELECT DISTINCT app_token, user_id FROM new_rows n
                    WHERE cairn_membership_may_move(n.app_token, n.user_id, n.first_seen);
                ELSIF TG_OP = 'UPDATE' THEN
                    INSERT INTO cairn_rollup_affected
                    SELECT DISTINCT n.app_token, n.user_id FROM new_rows n JOIN old_rows o
                        ON o.app_token = n.app_token AND o.user_id = n.user_id AND o.company_id = n.company_id
                    WHERE o.first_seen IS DISTINCT FROM n.first_seen AND cairn_membership_may_move(n.app_token, n.user_id, n.first_seen);
                ELSE
                    INSERT INTO cairn_rollup_affected SELECT DISTINCT app_token, user_id FROM old_rows o
                    WHERE cairn_membership_may_move(o.app_token, o.user_id, o.first_seen);
                END IF;
                IF FOUND THEN
                    PERFORM cairn_rollup_refresh();
                END IF;
                RETURN NULL;
            END
            $$
            """#,
            #"""
            CREATE FUNCTION cairn_membership_may_move(app text, user_id text, since timestamptz) RETURNS boolean STABLE LANGUAGE sql AS $$
                SELECT EXISTS (SELECT 1 FROM events e WHERE e.app_token = app AND e.user_id = cairn_membership_may_move.user_id
                                                        AND e.inserted_at >= since AND e.company_id IS NULL)
                    OR EXISTS (SELECT 1 FROM identity_aliases i WHERE i.app_token = app AND i.user_id = cairn_membership_may_move.user_id)
            $$
            """#,
            #"""
            CREATE OR REPLACE FUNCTION cairn_rollup_refresh() RETURNS void LANGUAGE plpgsql AS $$
            BEGIN
                ANALYZE cairn_rollup_affected;
                WITH removed AS (
                    DELETE FROM rollup_person_periods r USING cairn_rollup_affected a WHERE r.app_token = a.app_token AND r.person = a.person
                    RETURNING r.app_token, r.grain, r.period
                )
                UPDATE rollup_period_people p SET people = p.people - x.n
                FROM (SELECT app_token, grain, period, count(*) AS n FROM removed GROUP BY 1, 2, 3) x
                WHERE p.app_token = x.app_token AND p.grain = x.grain AND p.period = x.period;
                DELETE FROM rollup_company_people r USING cairn_rollup_affected a WHERE r.app_token = a.app_token AND r.person = a.person;
                DELETE FROM rollup_engagement_people r USING cairn_rollup_affected a WHERE r.app_token = a.app_token AND r.person = a.person;
                INSERT INTO cairn_rollup_keys
                WITH ids AS (
                    SELECT a.app_token, CASE WHEN a.person LIKE 'anonymous:%' THEN NULL ELSE a.person END AS user_id,
                           CASE WHEN a.person LIKE 'anonymous:%' THEN substr(a.person, 11) END AS anonymous_id
                    FROM cairn_rollup_affected a
                    UNION
                    SELECT i.app_token, CASE WHEN i.alias_kind = 'user' THEN i.alias_id END, CASE WHEN i.alias_kind = 'anonymous' THEN i.alias_id END
                    FROM identity_aliases i JOIN cairn_rollup_affected a ON i.app_token = a.app_token AND i.user_id = a.person
                )
                SELECT e.app_token, e.internal_event_id, e.inserted_at FROM ids JOIN events e ON e.app_token = ids.app_token AND e.user_id = ids.user_id
                UNION
                SELECT e.app_token, e.internal_event_id, e.inserted_at FROM ids JOIN events e
                    ON e.app_token = ids.app_token AND e.anonymous_id = ids.anonymous_id AND e.user_id IS NULL;
                ANALYZE cairn_rollup_keys;
                -- Only rows that still resolve to an affected person: the others belong to someone unaffected.
                PERFORM cairn_rollup_add_keyed(true);
                DELETE FROM rollup_period_people WHERE people <= 0;
                DELETE FROM cairn_rollup_affected;
            END
            $$
            """#,
            #"""
            ALTER FUNCTION cairn_rollup_refresh() SET jit = off
            """#,
            #"""
            ALTER FUNCTION cairn_rollup_add_keyed(boolean) SET jit = off
            """#,
            #"""
            ALTER FUNCTION cairn_rollup_apply_delta() SET jit = off
            """#,
            #"""
            ALTER FUNCTION cairn_rollup_events_inserted() SET jit = off
            """#,
            #"""
            ALTER FUNCTION cairn_rollup_events_deleted() SET jit = off
            """#,
            #"""
            ALTER FUNCTION cairn_rollup_aliases_changed() SET jit = off
            """#,
            #"""
            ALTER FUNCTION cairn_rollup_memberships_changed() SET jit = off
            """#,
        ]
    )
}
