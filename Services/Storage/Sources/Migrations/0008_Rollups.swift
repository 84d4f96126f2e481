// A shipped migration: never edit it. A change ships as a new migration (CONTRIBUTING.md).

extension Migration {
    /// The rollups the common reports read, kept exact by triggers in the writing transaction, and
    /// filled from the events already stored. The engagement classifier is generated SQL, frozen here
    /// as it was generated.
    static let rollups = Migration(
        version: 8,
        name: "rollups",
        statements: [
            #"""
            CREATE TABLE rollup_event_counts (
                app_token text NOT NULL,
                hour timestamptz NOT NULL,
                event_type text NOT NULL,
                event_name text NOT NULL,
                events bigint NOT NULL,
                PRIMARY KEY (app_token, hour, event_type, event_name)
            )
            """#,
            #"""
            CREATE TABLE rollup_person_periods (
                app_token text NOT NULL,
                grain text NOT NULL CHECK (grain IN ('day', 'week', 'month')),
                period date NOT NULL,
                person text NOT NULL,
                -- Person first: re-deriving a person deletes by it; counts live in rollup_period_people.
                PRIMARY KEY (app_token, person, grain, period)
            )
            """#,
            #"""
            CREATE TABLE rollup_period_people (
                app_token text NOT NULL,
                grain text NOT NULL,
                period date NOT NULL,
                people bigint NOT NULL,
                PRIMARY KEY (app_token, grain, period)
            )
            """#,
            #"""
            CREATE TABLE rollup_company_people (
                app_token text NOT NULL,
                company text NOT NULL,
                person text NOT NULL,
                events bigint NOT NULL,
                -- Person first: re-deriving a person deletes by it; the report reads the app's rows whole.
                PRIMARY KEY (app_token, person, company)
            )
            """#,
            #"""
            CREATE FUNCTION cairn_rollup_begin() RETURNS void LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM pg_advisory_xact_lock(72617001);
                CREATE TEMP TABLE IF NOT EXISTS cairn_rollup_keys (app_token text, internal_event_id bigint, inserted_at timestamptz) ON COMMIT DELETE ROWS;
                CREATE TEMP TABLE IF NOT EXISTS cairn_rollup_delta (app_token text, inserted_at timestamptz, person text, company text,
                    event_type text, event_name text, metadata jsonb) ON COMMIT DELETE ROWS;
                CREATE TEMP TABLE IF NOT EXISTS cairn_rollup_affected (app_token text, person text) ON COMMIT DELETE ROWS;
            END
            $$
            """#,
            #"""
            CREATE FUNCTION cairn_jsonb_numeric(value jsonb) RETURNS numeric IMMUTABLE LANGUAGE sql AS $$
                SELECT CASE
                    WHEN jsonb_typeof(value) = 'number' THEN (value #>> '{}')::numeric
                    WHEN jsonb_typeof(value) = 'string' AND (value #>> '{}') ~ '^\s*-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?\s*$'
                        THEN trim(value #>> '{}')::numeric
                END
            $$
            """#,
            #"""
            CREATE TABLE rollup_attribute_values (
                app_token text NOT NULL,
                event_name text NOT NULL,
                attribute text NOT NULL,
                inserted_at timestamptz NOT NULL,
                internal_event_id bigint NOT NULL,
                value numeric,
                PRIMARY KEY (app_token, event_name, attribute, inserted_at, internal_event_id)
            )
            """#,
            #"""
            CREATE FUNCTION cairn_rollup_attributes_changed() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'UPDATE' AND OLD.type = NEW.type THEN
                    RETURN NULL;
                END IF;
                PERFORM cairn_rollup_begin();
                IF TG_OP IN ('UPDATE', 'DELETE') THEN
                    DELETE FROM rollup_attribute_values v WHERE v.app_token = OLD.app_token AND v.attribute = OLD.name;
                END IF;
                IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.type = 'number' THEN
                    INSERT INTO rollup_attribute_values (app_token, event_name, attribute, inserted_at, internal_event_id, value)
                    SELECT e.app_token, e.event_name, NEW.name, e.inserted_at, e.internal_event_id, cairn_jsonb_numeric(e.metadata -> NEW.name)
                    FROM events e WHERE e.app_token = NEW.app_token AND e.metadata ? NEW.name
                    ON CONFLICT DO NOTHING;
                END IF;
                RETURN NULL;
            END
            $$
            """#,
            #"""
            CREATE TRIGGER rollup_attributes_changed AFTER INSERT OR UPDATE OF type OR DELETE ON app_attributes FOR EACH ROW EXECUTE FUNCTION cairn_rollup_attributes_changed()
            """#,
            #"""
            CREATE FUNCTION cairn_engagement_stages(entity text, event_type text, event_name text, metadata jsonb)
            RETURNS text[] IMMUTABLE LANGUAGE sql AS $$
                SELECT CASE WHEN event_type = 'interaction' THEN
                    CASE WHEN length(event_name) - length(replace(event_name, ':', '')) = 2
                              AND (CASE split_part(event_name, ':', 1) WHEN 'experience' THEN 'flow' WHEN 'experience_step' THEN 'flow' WHEN 'checklist' THEN 'checklist' WHEN 'checklist_task' THEN 'checklist' WHEN 'survey_module' THEN 'survey' WHEN 'nps' THEN 'nps' WHEN 'resource_center' THEN 'resource_center' WHEN 'resource_center_article' THEN 'resource_center' WHEN 'experiment' THEN 'experiment' END) = entity
                         THEN CASE split_part(event_name, ':', 3) WHEN 'SEEN' THEN ARRAY['seen']::text[] WHEN 'COMPLETED' THEN ARRAY['seen', 'started', 'completed']::text[] WHEN 'DISMISSED' THEN ARRAY['seen', 'dismissed']::text[] ELSE ARRAY['seen', 'started']::text[] END
                    END
                ELSE CASE
                    WHEN entity = 'flow' AND event_name = 'Guide Started' THEN ARRAY['seen', 'started']::text[]
                        WHEN entity = 'flow' AND event_name = 'Guide Completed' THEN ARRAY['seen', 'started', 'completed']::text[]
                        WHEN entity = 'flow' AND event_name = 'Guide Button Click' THEN CASE WHEN metadata ->> 'action' IN ('dismiss-guide') THEN ARRAY['seen', 'dismissed']::text[] ELSE NULL::text[] END
                        WHEN entity = 'checklist' AND event_name = 'Checklist Item Trigger' THEN ARRAY['seen', 'started']::text[]
                        WHEN entity = 'checklist' AND event_name = 'Checklist Item Url Click' THEN ARRAY['seen', 'started']::text[]
                        WHEN entity = 'checklist' AND event_name = 'Checklist Completed' THEN ARRAY['seen', 'started', 'completed']::text[]
                        WHEN entity = 'survey' AND event_name = 'Survey Shown' THEN ARRAY['seen']::text[]
                        WHEN entity = 'survey' AND event_name = 'Survey Question Answer' THEN ARRAY['seen', 'started']::text[]
                        WHEN entity = 'nps' AND event_name = 'Survey Question Answer' THEN CASE WHEN metadata ->> 'question_type' IN ('NPS Rating') THEN ARRAY['seen', 'started', 'completed']::text[] ELSE NULL::text[] END
                        WHEN entity = 'resource_center' AND event_name = 'Resource Center Guide Trigger' THEN ARRAY['seen', 'started']::text[]
                        WHEN entity = 'resource_center' AND event_name = 'Resource Center Survey Trigger' THEN ARRAY['seen', 'started']::text[]
                        WHEN entity = 'resource_center' AND event_name = 'Resource Center Checklist Guide Trigger' THEN ARRAY['seen', 'started']::text[]
                        WHEN entity = 'resource_center' AND event_name = 'Resource Center Checklist Item Url Click' THEN ARRAY['seen', 'started']::text[]
                        WHEN entity = 'resource_center' AND event_name = 'Resource Center External URL Click' THEN ARRAY['seen', 'started']::text[]
                        WHEN entity = 'resource_center' AND event_name = 'Resource Center Article Link Click' THEN ARRAY['seen', 'started']::text[]
                        WHEN entity = 'hotspot' AND event_name = 'Hotspot Interacted' THEN ARRAY['seen']::text[]
                        WHEN entity = 'hotspot' AND event_name = 'Hotspot Button Click' THEN CASE WHEN metadata ->> 'action' IN ('dismiss-hotspot', 'close-hotspot') THEN ARRAY['seen', 'dismissed']::text[] ELSE ARRAY['seen', 'started']::text[] END
                        WHEN entity = 'banner' AND event_name = 'Banner Button Click' THEN ARRAY['seen', 'started']::text[]
                        WHEN entity = 'chat' AND event_name = 'button_displayed' THEN ARRAY['seen']::text[]
                        WHEN entity = 'chat' AND event_name = 'chat_requested' THEN ARRAY['seen', 'started']::text[]
                        WHEN entity = 'chat' AND event_name = 'chat_started' THEN ARRAY['seen', 'started', 'completed']::text[]
                        WHEN entity = 'chat' AND event_name = 'rating_submit' THEN ARRAY['rated']::text[]
                END END
            $$
            """#,
            #"""
            CREATE FUNCTION cairn_engagement_tool(entity text, event_type text) RETURNS text IMMUTABLE LANGUAGE sql AS $$
                SELECT CASE WHEN event_type = 'interaction' THEN 'userpilot'
                            WHEN entity = 'banner' THEN 'userguiding' WHEN entity = 'chat' THEN 'userlike' WHEN entity = 'checklist' THEN 'userguiding' WHEN entity = 'flow' THEN 'userguiding' WHEN entity = 'hotspot' THEN 'userguiding' WHEN entity = 'nps' THEN 'userguiding' WHEN entity = 'resource_center' THEN 'userguiding' WHEN entity = 'survey' THEN 'userguiding' END
            $$
            """#,
            #"""
            CREATE FUNCTION cairn_engagement_id(entity text, event_type text, event_name text, metadata jsonb) RETURNS text IMMUTABLE LANGUAGE sql AS $$
                SELECT CASE WHEN event_type = 'interaction' THEN split_part(event_name, ':', 2)
                            ELSE COALESCE(metadata ->> CASE WHEN entity = 'banner' THEN 'banner_id' WHEN entity = 'chat' THEN 'widget_id' WHEN entity = 'checklist' THEN 'checklist_id' WHEN entity = 'flow' THEN 'guide_id' WHEN entity = 'hotspot' THEN 'hotspot_group_id' WHEN entity = 'nps' THEN 'survey_id' WHEN entity = 'resource_center' THEN 'resource_center_id' WHEN entity = 'survey' THEN 'survey_id' END, '') END
            $$
            """#,
            #"""
            CREATE FUNCTION cairn_engagement_candidate(event_type text, event_name text) RETURNS boolean IMMUTABLE LANGUAGE sql AS $$
                SELECT event_type = 'interaction' OR event_name = ANY (ARRAY['Banner Button Click', 'Checklist Completed', 'Checklist Item Trigger', 'Checklist Item Url Click', 'Guide Button Click', 'Guide Completed', 'Guide Started', 'Hotspot Button Click', 'Hotspot Interacted', 'Resource Center Article Link Click', 'Resource Center Checklist Guide Trigger', 'Resource Center Checklist Item Url Click', 'Resource Center External URL Click', 'Resource Center Guide Trigger', 'Resource Center Survey Trigger', 'Survey Question Answer', 'Survey Shown', 'button_displayed', 'chat_requested', 'chat_started', 'rating_submit']::text[])
            $$
            """#,
            #"""
            CREATE FUNCTION cairn_engagement_entities() RETURNS text[] IMMUTABLE LANGUAGE sql AS $$
                SELECT ARRAY['flow', 'checklist', 'survey', 'nps', 'resource_center', 'experiment', 'hotspot', 'banner', 'chat']::text[]
            $$
            """#,
            #"""
            CREATE TABLE rollup_engagement_people (
                app_token text NOT NULL,
                entity text NOT NULL,
                tool text NOT NULL,
                id text NOT NULL,
                stage text NOT NULL,
                person text NOT NULL,
                PRIMARY KEY (app_token, entity, tool, id, stage, person)
            )
            """#,
            #"""
            CREATE INDEX rollup_engagement_people_person ON rollup_engagement_people (app_token, person)
            """#,
            #"""
            CREATE FUNCTION cairn_rollup_add_keyed(only_affected boolean) RETURNS void LANGUAGE plpgsql AS $$
            BEGIN
                DELETE FROM cairn_rollup_delta;
                INSERT INTO cairn_rollup_delta
            SELECT r.app_token, r.inserted_at, r.person, r.company, r.event_type, r.event_name, r.metadata
            FROM cairn_rollup_keys k
            JOIN events_resolved r ON r.app_token = k.app_token AND r.internal_event_id = k.internal_event_id AND r.inserted_at = k.inserted_at
            WHERE r.person IS NOT NULL
              AND (NOT only_affected OR (r.app_token, r.person) IN (SELECT app_token, person FROM cairn_rollup_affected));
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
                DELETE FROM cairn_rollup_keys;
            END
            $$
            """#,
            #"""
            CREATE OR REPLACE FUNCTION cairn_rollup_refresh() RETURNS void LANGUAGE plpgsql AS $$
            BEGIN
               \#u{20}
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
               \#u{20}
                -- Only rows that still resolve to an affected person: the others belong to someone unaffected.
                PERFORM cairn_rollup_add_keyed(true);
                DELETE FROM rollup_period_people WHERE people <= 0;
                DELETE FROM cairn_rollup_affected;
            END
            $$
            """#,
            #"""
            CREATE FUNCTION cairn_rollup_events_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
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
                INSERT INTO cairn_rollup_keys SELECT app_token, internal_event_id, inserted_at FROM new_rows;
                PERFORM cairn_rollup_add_keyed(false);
                RETURN NULL;
            END
            $$
            """#,
            #"""
            CREATE FUNCTION cairn_rollup_events_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM cairn_rollup_begin();
                UPDATE rollup_event_counts c SET events = c.events - o.n
                FROM (SELECT app_token, date_trunc('hour', inserted_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS hour, event_type, event_name, count(*) AS n
                      FROM old_rows GROUP BY 1, 2, 3, 4) o
                WHERE c.app_token = o.app_token AND c.hour = o.hour AND c.event_type = o.event_type AND c.event_name = o.event_name;
                DELETE FROM rollup_event_counts WHERE events <= 0;
                DELETE FROM rollup_attribute_values v USING old_rows o
                WHERE v.app_token = o.app_token AND v.event_name = o.event_name AND v.inserted_at = o.inserted_at AND v.internal_event_id = o.internal_event_id;
                -- Everyone the deleted rows may have counted for: their raw ids and what those resolve to.
                INSERT INTO cairn_rollup_affected
                WITH raw AS (
                    SELECT DISTINCT app_token, COALESCE(user_id, 'anonymous:' || anonymous_id) AS person, user_id, anonymous_id FROM old_rows
                )
                SELECT app_token, person FROM raw WHERE person IS NOT NULL
                UNION
                SELECT i.app_token, i.user_id FROM raw JOIN identity_aliases i ON i.app_token = raw.app_token
                    AND ((i.alias_kind = 'user' AND i.alias_id = raw.user_id) OR (i.alias_kind = 'anonymous' AND i.alias_id = raw.anonymous_id));
                PERFORM cairn_rollup_refresh();
                RETURN NULL;
            END
            $$
            """#,
            #"""
            CREATE FUNCTION cairn_rollup_aliases_changed() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM cairn_rollup_begin();
                IF TG_OP IN ('INSERT', 'UPDATE') THEN
                    INSERT INTO cairn_rollup_affected
                    SELECT app_token, user_id FROM new_rows
                    UNION SELECT app_token, CASE WHEN alias_kind = 'anonymous' THEN 'anonymous:' || alias_id ELSE alias_id END FROM new_rows;
                END IF;
                IF TG_OP IN ('UPDATE', 'DELETE') THEN
                    INSERT INTO cairn_rollup_affected
                    SELECT app_token, user_id FROM old_rows
                    UNION SELECT app_token, CASE WHEN alias_kind = 'anonymous' THEN 'anonymous:' || alias_id ELSE alias_id END FROM old_rows;
                END IF;
                PERFORM cairn_rollup_refresh();
                RETURN NULL;
            END
            $$
            """#,
            #"""
            CREATE FUNCTION cairn_rollup_memberships_changed() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM cairn_rollup_begin();
                IF TG_OP = 'INSERT' THEN
                    INSERT INTO cairn_rollup_affected SELECT DISTINCT app_token, user_id FROM new_rows;
                ELSIF TG_OP = 'UPDATE' THEN
                    INSERT INTO cairn_rollup_affected
                    SELECT DISTINCT n.app_token, n.user_id FROM new_rows n JOIN old_rows o
                        ON o.app_token = n.app_token AND o.user_id = n.user_id AND o.company_id = n.company_id
                    WHERE o.first_seen IS DISTINCT FROM n.first_seen;
                ELSE
                    INSERT INTO cairn_rollup_affected SELECT DISTINCT app_token, user_id FROM old_rows;
                END IF;
                PERFORM cairn_rollup_refresh();
                RETURN NULL;
            END
            $$
            """#,
            #"""
            CREATE TRIGGER rollup_events_inserted AFTER INSERT ON events REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION cairn_rollup_events_inserted()
            """#,
            #"""
            CREATE TRIGGER rollup_events_deleted AFTER DELETE ON events REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION cairn_rollup_events_deleted()
            """#,
            #"""
            CREATE TRIGGER rollup_aliases_inserted AFTER INSERT ON identity_aliases REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION cairn_rollup_aliases_changed()
            """#,
            #"""
            CREATE TRIGGER rollup_aliases_updated AFTER UPDATE ON identity_aliases REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION cairn_rollup_aliases_changed()
            """#,
            #"""
            CREATE TRIGGER rollup_aliases_deleted AFTER DELETE ON identity_aliases REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION cairn_rollup_aliases_changed()
            """#,
            #"""
            CREATE TRIGGER rollup_memberships_inserted AFTER INSERT ON user_companies REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION cairn_rollup_memberships_changed()
            """#,
            #"""
            CREATE TRIGGER rollup_memberships_updated AFTER UPDATE ON user_companies REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION cairn_rollup_memberships_changed()
            """#,
            #"""
            CREATE TRIGGER rollup_memberships_deleted AFTER DELETE ON user_companies REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION cairn_rollup_memberships_changed()
            """#,
            #"""
            INSERT INTO rollup_event_counts (app_token, hour, event_type, event_name, events)
            SELECT app_token, date_trunc('hour', inserted_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', event_type, event_name, count(*) FROM events GROUP BY 1, 2, 3, 4
            """#,
            #"""
            SELECT cairn_rollup_begin()
            """#,
            #"""
            INSERT INTO cairn_rollup_keys SELECT app_token, internal_event_id, inserted_at FROM events
            """#,
            #"""
            SELECT cairn_rollup_add_keyed(false)
            """#,
            #"""
            INSERT INTO rollup_attribute_values (app_token, event_name, attribute, inserted_at, internal_event_id, value)
            SELECT e.app_token, e.event_name, a.name, e.inserted_at, e.internal_event_id, cairn_jsonb_numeric(e.metadata -> a.name)
            FROM events e JOIN app_attributes a ON a.app_token = e.app_token AND a.type = 'number' AND e.metadata ? a.name
            """#,
        ]
    )
}
