import CairnCore
import CairnPostgres

/// Cairn's PostgreSQL schema, as ordered migrations. Storage owns it; the other
/// services only read.
///
/// Every primary key starts with `app_token`, so the tables can be distributed on it by
/// Citus; events are range-partitioned by month on `inserted_at`, with partitions created on
/// demand by ``EventWriter``.
public enum Schema {
    public static let migrations: [(version: Int, statements: [String])] = [
        (1, [
            """
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
            """,
            "CREATE INDEX events_inserted_at_brin ON events USING brin (inserted_at)",
            "CREATE INDEX events_app_name_time ON events (app_token, event_name, inserted_at)",
            "CREATE INDEX events_app_user_time ON events (app_token, user_id, inserted_at)",
            """
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
            """,
            """
            CREATE TABLE companies (
                app_token text NOT NULL,
                company_id text NOT NULL,
                first_seen timestamptz NOT NULL,
                last_seen timestamptz NOT NULL,
                traits jsonb NOT NULL DEFAULT '{}',
                traits_updated_at timestamptz,
                PRIMARY KEY (app_token, company_id)
            )
            """,
        ]),
        (2, [
            """
            CREATE TABLE apps (
                token text PRIMARY KEY,
                name text NOT NULL UNIQUE,
                write_key_hash text NOT NULL,
                personal_data text NOT NULL DEFAULT 'hash' CHECK (personal_data IN ('keep', 'hash', 'drop')),
                created_at timestamptz NOT NULL DEFAULT now(),
                key_rotated_at timestamptz
            )
            """,
            """
            CREATE TABLE app_attributes (
                app_token text NOT NULL REFERENCES apps (token) ON DELETE CASCADE,
                name text NOT NULL,
                type text NOT NULL CHECK (type IN ('string', 'number', 'date', 'boolean', 'json')),
                updated_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (app_token, name)
            )
            """,
        ]),
        (3, [
            // Traits merge key by key on event time: each key's time is kept beside it.
            "ALTER TABLE users ADD COLUMN trait_times jsonb NOT NULL DEFAULT '{}'",
            "ALTER TABLE users ADD COLUMN merged_into text",
            "ALTER TABLE companies ADD COLUMN trait_times jsonb NOT NULL DEFAULT '{}'",
            // Which companies a user was seen with, and when: the company as of an event's time
            // is the one whose first sighting is the latest at or before it.
            """
            CREATE TABLE user_companies (
                app_token text NOT NULL,
                user_id text NOT NULL,
                company_id text NOT NULL,
                first_seen timestamptz NOT NULL,
                last_seen timestamptz NOT NULL,
                PRIMARY KEY (app_token, user_id, company_id)
            )
            """,
            // An id that resolves to a user: an anonymous id once identified, or a user merged
            // into another. Kept flat (always pointing at the final user), so resolution is one lookup.
            """
            CREATE TABLE identity_aliases (
                app_token text NOT NULL,
                alias_kind text NOT NULL CHECK (alias_kind IN ('anonymous', 'user')),
                alias_id text NOT NULL,
                user_id text NOT NULL,
                aliased_at timestamptz NOT NULL,
                reason text NOT NULL,
                PRIMARY KEY (app_token, alias_kind, alias_id)
            )
            """,
            "CREATE INDEX identity_aliases_user ON identity_aliases (app_token, user_id)",
            """
            CREATE TABLE identity_merges (
                app_token text NOT NULL,
                from_user text NOT NULL,
                into_user text NOT NULL,
                merged_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (app_token, from_user)
            )
            """,
            "CREATE INDEX events_app_anonymous ON events (app_token, anonymous_id) WHERE anonymous_id IS NOT NULL",
            // Per-key trait merge: the later event time wins; at equal times the greater value
            // (as JSON text), so the result never depends on arrival order.
            """
            CREATE FUNCTION cairn_trait_wins(old_time timestamptz, old_value jsonb, new_time timestamptz, new_value jsonb)
            RETURNS boolean IMMUTABLE LANGUAGE sql AS $$
                SELECT new_time IS NOT NULL AND (old_time IS NULL OR new_time > old_time
                       OR (new_time = old_time AND new_value::text > old_value::text))
            $$
            """,
            """
            CREATE FUNCTION cairn_merge_traits(old_traits jsonb, old_times jsonb, new_traits jsonb, new_times jsonb)
            RETURNS jsonb IMMUTABLE LANGUAGE sql AS $$
                SELECT COALESCE(jsonb_object_agg(k, CASE
                    WHEN cairn_trait_wins((old_times->>k)::timestamptz, old_traits->k, (new_times->>k)::timestamptz, new_traits->k)
                    THEN new_traits->k ELSE old_traits->k END), '{}'::jsonb)
                FROM (SELECT jsonb_object_keys(old_traits) UNION SELECT jsonb_object_keys(new_traits)) AS keys(k)
            $$
            """,
            """
            CREATE FUNCTION cairn_merge_trait_times(old_traits jsonb, old_times jsonb, new_traits jsonb, new_times jsonb)
            RETURNS jsonb IMMUTABLE LANGUAGE sql AS $$
                SELECT COALESCE(jsonb_object_agg(k, CASE
                    WHEN cairn_trait_wins((old_times->>k)::timestamptz, old_traits->k, (new_times->>k)::timestamptz, new_traits->k)
                    THEN new_times->k ELSE old_times->k END), '{}'::jsonb)
                FROM (SELECT jsonb_object_keys(old_traits) UNION SELECT jsonb_object_keys(new_traits)) AS keys(k)
            $$
            """,
            // Events with the person they resolve to: a lookup, never a rewrite of the stored row.
            """
            CREATE VIEW events_resolved AS
            SELECT e.*,
                   COALESCE(mu.user_id, e.user_id, ma.user_id, 'anonymous:' || e.anonymous_id) AS person
            FROM events e
            LEFT JOIN identity_aliases mu
                   ON mu.app_token = e.app_token AND mu.alias_kind = 'user' AND mu.alias_id = e.user_id
            LEFT JOIN identity_aliases ma
                   ON ma.app_token = e.app_token AND ma.alias_kind = 'anonymous' AND ma.alias_id = e.anonymous_id
                  AND e.user_id IS NULL
            """,
        ]),
        (4, [
            // Sessions computed by identity from each person's event times (a lookup by time
            // range, never written into the events). A person is a user id, or
            // 'anonymous:<id>' for a visitor not yet identified.
            """
            CREATE TABLE user_sessions (
                app_token text NOT NULL,
                person text NOT NULL,
                session integer NOT NULL,
                started_at timestamptz NOT NULL,
                ended_at timestamptz NOT NULL,
                events integer NOT NULL,
                PRIMARY KEY (app_token, person, session)
            )
            """,
            "ALTER TABLE apps ADD COLUMN session_inactivity_s integer NOT NULL DEFAULT 1800 CHECK (session_inactivity_s > 0)",
            "ALTER TABLE apps ADD COLUMN session_max_length_s integer NOT NULL DEFAULT 86400 CHECK (session_max_length_s > 0)",
        ]),
        (5, [
            // Erased people: later events naming them are dropped on the write path, and counted.
            """
            CREATE TABLE suppressions (
                app_token text NOT NULL,
                kind text NOT NULL CHECK (kind IN ('user', 'anonymous')),
                id text NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now(),
                dropped bigint NOT NULL DEFAULT 0,
                PRIMARY KEY (app_token, kind, id)
            )
            """,
        ]),
        (6, [
            // The resolved view also gives each event its company: its own, else the user's
            // company as of the event's time (the latest membership begun at or before it).
            "DROP VIEW events_resolved",
            "CREATE VIEW events_resolved AS " + resolved(from: "events"),
            "ALTER TABLE apps ADD COLUMN identify_userlike_by_email boolean NOT NULL DEFAULT false",
        ]),
        (7, [
            // Report conditions compare dates stored as text; a text that is not a time never matches.
            """
            CREATE FUNCTION cairn_try_timestamptz(value text) RETURNS timestamptz STABLE LANGUAGE plpgsql AS $$
            BEGIN
                RETURN value::timestamptz;
            EXCEPTION WHEN others THEN
                RETURN NULL;
            END
            $$
            """,
        ]),
        (8, rollups),
        (9, continuousExport),
        (10, rollupWritePath),
        (11, triggers),
        (12, admissionWindow),
        (13, [numericWithinRange]),
    ]

    /// A JSON value as a number: a JSON number, or a string that spells one with at most 255
    /// digits on each side of the point (the most a PostgreSQL regex repeats) and an exponent of at most three digits; otherwise
    /// NULL. Without the bound, a stored string such as `"1e1000000"` overflowed `numeric` in
    /// every rollup, report and `attributes set` that read it, for good. Reports and triggers
    /// compare through it too.
    static let numericWithinRange = """
        CREATE OR REPLACE FUNCTION cairn_jsonb_numeric(value jsonb) RETURNS numeric IMMUTABLE LANGUAGE sql AS $$
            SELECT CASE
                WHEN jsonb_typeof(value) = 'number' THEN (value #>> '{}')::numeric
                WHEN jsonb_typeof(value) = 'string'
                     AND (value #>> '{}') ~ '^\\s*-?[0-9]{1,255}(\\.[0-9]{1,255})?([eE][-+]?0*[0-9]{1,3})?\\s*$'
                    THEN trim(value #>> '{}')::numeric
            END
        $$
        """

    /// Each app's window of accepted event times (`cairn apps configure`); ingest refuses
    /// events outside it before acknowledging them.
    static let admissionWindow: [String] = [
        "ALTER TABLE apps ADD COLUMN event_time_earliest timestamptz NOT NULL DEFAULT '1970-01-01T00:00:00Z'",
        "ALTER TABLE apps ADD COLUMN event_time_future_s bigint NOT NULL DEFAULT 86400",
    ]

    /// Triggers (README, "Triggers"): each follows its app's stored events from a checkpoint,
    /// as a continuous destination does, and POSTs a webhook for each one that matches.
    /// `trigger_deliveries` holds what is not done yet: an absence trigger's start events
    /// `waiting` for their window to close, deliveries parked (`failed`) after their last
    /// attempt, and parked ones `cairn triggers retry` queued to go again (`retry`).
    static let triggers: [String] = [
        """
        CREATE TABLE triggers (
            app_token text NOT NULL REFERENCES apps (token) ON DELETE CASCADE,
            name text NOT NULL,
            event text NOT NULL,
            condition text,
            trait_condition text,
            unless_event text,
            within_s bigint CHECK (within_s > 0),
            url text NOT NULL,
            secret text,
            max_attempts integer NOT NULL DEFAULT 10 CHECK (max_attempts > 0),
            timeout_ms integer NOT NULL DEFAULT 10000 CHECK (timeout_ms > 0),
            state text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'disabled')),
            state_reason text,
            after_xid bigint NOT NULL,
            after_at timestamptz NOT NULL DEFAULT 'infinity',
            after_event_id bigint NOT NULL DEFAULT 9223372036854775807,
            matched bigint NOT NULL DEFAULT 0,
            delivered bigint NOT NULL DEFAULT 0,
            failed bigint NOT NULL DEFAULT 0,
            cancelled bigint NOT NULL DEFAULT 0,
            last_delivered_at timestamptz,
            last_error text,
            last_error_at timestamptz,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (app_token, name),
            CHECK ((unless_event IS NULL) = (within_s IS NULL))
        )
        """,
        """
        CREATE TABLE trigger_deliveries (
            app_token text NOT NULL,
            trigger text NOT NULL,
            internal_event_id bigint NOT NULL,
            inserted_at timestamptz NOT NULL,
            person text NOT NULL,
            state text NOT NULL CHECK (state IN ('waiting', 'failed', 'retry')),
            due_at timestamptz,
            attempts integer NOT NULL DEFAULT 0,
            last_error text,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (app_token, trigger, internal_event_id, inserted_at),
            FOREIGN KEY (app_token, trigger) REFERENCES triggers (app_token, name) ON DELETE CASCADE
        )
        """,
        "CREATE INDEX trigger_deliveries_due ON trigger_deliveries (app_token, trigger, due_at) WHERE state = 'waiting'",
        // The view was made before events had `stored_xid`; triggers follow it by that column.
        "DROP VIEW events_resolved",
        "CREATE VIEW events_resolved AS " + resolved(from: "events"),
    ]

    /// The rows of `source` (the events, or a trigger's transition table of them) with each
    /// event's person and company, as `events_resolved` gives them: the person is the user it
    /// was merged into, else its own user id, else the user its anonymous id was identified as,
    /// else `anonymous:<id>`; the company is its own, else the person's company as of the
    /// event's time (the latest membership begun at or before it).
    static func resolved(from source: String) -> String {
        """
        SELECT r.*,
               COALESCE(r.company_id, (SELECT m.company_id FROM user_companies m
                                       WHERE m.app_token = r.app_token AND m.user_id = r.person AND m.first_seen <= r.inserted_at
                                       ORDER BY m.first_seen DESC, m.company_id DESC LIMIT 1)) AS company
        FROM (
            SELECT e.*, COALESCE(mu.user_id, e.user_id, ma.user_id, 'anonymous:' || e.anonymous_id) AS person
            FROM \(source) e
            LEFT JOIN identity_aliases mu
                   ON mu.app_token = e.app_token AND mu.alias_kind = 'user' AND mu.alias_id = e.user_id
            LEFT JOIN identity_aliases ma
                   ON ma.app_token = e.app_token AND ma.alias_kind = 'anonymous' AND ma.alias_id = e.anonymous_id
                  AND e.user_id IS NULL
        ) r
        """
    }

    /// What continuous export needs (README, "Continuous export"): each event and identity
    /// link remembers the transaction that stored it, and each destination its checkpoint.
    ///
    /// Transaction ids give a commit-safe order without serialising writers: a follower reads
    /// only rows whose `stored_xid` is below the oldest transaction still running
    /// (`pg_snapshot_xmin`), so no row can later appear behind its checkpoint. Rows stored
    /// before this migration read as transaction 0 and go first. The index hands the follower
    /// rows already in transaction order, so it starts sending at once instead of sorting
    /// everything after its checkpoint first.
    static let continuousExport: [String] = [
        """
        CREATE FUNCTION cairn_xid() RETURNS bigint VOLATILE LANGUAGE sql AS $$
            SELECT pg_current_xact_id()::text::bigint
        $$
        """,
        "ALTER TABLE events ADD COLUMN stored_xid bigint NOT NULL DEFAULT 0",
        "ALTER TABLE events ALTER COLUMN stored_xid SET DEFAULT cairn_xid()",
        "CREATE INDEX events_app_stored_xid ON events (app_token, stored_xid)",
        "ALTER TABLE identity_aliases ADD COLUMN stored_xid bigint NOT NULL DEFAULT 0",
        "ALTER TABLE identity_aliases ALTER COLUMN stored_xid SET DEFAULT cairn_xid()",
        "CREATE INDEX identity_aliases_stored_xid ON identity_aliases (app_token, stored_xid)",
        // The position is that of the last message a destination acknowledged (or refused for
        // good): the transaction, the time, then the event id or the alias's key.
        """
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
        """,
        // A batch a destination refused for good (a 4xx other than 408 and 429), kept whole.
        """
        CREATE TABLE export_failed_batches (
            app_token text NOT NULL,
            destination text NOT NULL,
            failed_at timestamptz NOT NULL DEFAULT now(),
            status integer NOT NULL,
            response text NOT NULL,
            messages integer NOT NULL,
            body text NOT NULL
        )
        """,
        "CREATE INDEX export_failed_batches_destination ON export_failed_batches (app_token, destination, failed_at)",
    ]

    /// The rollups' write path, made to cost what the batch holds rather than what the tables
    /// hold (it used to read back a month partition per batch, and re-derive every user a new
    /// membership named):
    ///
    /// - New events are resolved from the trigger's transition table itself, not looked up
    ///   again in `events` by key.
    /// - A membership re-derives a user only when it can move one of their stored events:
    ///   one without its own company at or after the membership began, or one that reaches
    ///   them through an alias. A batch's own events are stored after its memberships, so they
    ///   resolve against them at insert.
    /// - Re-deriving people analyzes its scratch tables first: without statistics the planner
    ///   guessed their size and sorted whole rollup tables, or scanned a whole month of events,
    ///   to join them.
    static let rollupWritePath: [String] = [
        """
        CREATE FUNCTION cairn_rollup_apply_delta() RETURNS void LANGUAGE plpgsql AS $$
        BEGIN
            \(applyDelta)
            DELETE FROM cairn_rollup_delta;
        END
        $$
        """,
        """
        CREATE OR REPLACE FUNCTION cairn_rollup_add_keyed(only_affected boolean) RETURNS void LANGUAGE plpgsql AS $$
        BEGIN
            DELETE FROM cairn_rollup_delta;
            \(deltaFromKeys)
            PERFORM cairn_rollup_apply_delta();
            DELETE FROM cairn_rollup_keys;
        END
        $$
        """,
        """
        CREATE OR REPLACE FUNCTION cairn_rollup_events_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM cairn_rollup_begin();
            \(countNewRows)
            DELETE FROM cairn_rollup_delta;
            INSERT INTO cairn_rollup_delta
            SELECT r.app_token, r.inserted_at, r.person, r.company, r.event_type, r.event_name, r.metadata
            FROM (\(resolved(from: "new_rows"))) r
            WHERE r.person IS NOT NULL;
            PERFORM cairn_rollup_apply_delta();
            RETURN NULL;
        END
        $$
        """,
        """
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
        """,
        // Whether a membership of `user_id` from `since` can change the company of a stored
        // event: one of theirs without a company of its own from then on, or any event that
        // reaches them through an alias (not worth telling apart: aliases are few).
        """
        CREATE FUNCTION cairn_membership_may_move(app text, user_id text, since timestamptz) RETURNS boolean STABLE LANGUAGE sql AS $$
            SELECT EXISTS (SELECT 1 FROM events e WHERE e.app_token = app AND e.user_id = cairn_membership_may_move.user_id
                                                    AND e.inserted_at >= since AND e.company_id IS NULL)
                OR EXISTS (SELECT 1 FROM identity_aliases i WHERE i.app_token = app AND i.user_id = cairn_membership_may_move.user_id)
        $$
        """,
    ] + refreshWithStatistics + [
        // Costs that grow with the tables make the planner compile these small statements to
        // machine code: 170 ms of JIT for a 5 ms statement, on every batch.
        "ALTER FUNCTION cairn_rollup_refresh() SET jit = off",
        "ALTER FUNCTION cairn_rollup_add_keyed(boolean) SET jit = off",
        "ALTER FUNCTION cairn_rollup_apply_delta() SET jit = off",
        "ALTER FUNCTION cairn_rollup_events_inserted() SET jit = off",
        "ALTER FUNCTION cairn_rollup_events_deleted() SET jit = off",
        "ALTER FUNCTION cairn_rollup_aliases_changed() SET jit = off",
        "ALTER FUNCTION cairn_rollup_memberships_changed() SET jit = off",
    ]

    /// Rollups that let the common reports read thousands of rows instead of every event
    /// (README, "Reports": which report reads which). Triggers keep them exact on every write
    /// path (the event writer, a bulk COPY, erasure, merges), in the writing transaction:
    ///
    /// - `rollup_event_counts`: events per UTC hour, type and name; added on insert,
    ///   subtracted on delete.
    /// - `rollup_person_periods`: which people were active in which UTC day, week and month,
    ///   and `rollup_period_people`: how many, per period.
    /// - `rollup_company_people`: events per company and person, all time, the company being
    ///   the one `events_resolved` gives.
    /// - `rollup_attribute_values`: the values of attributes registered as numbers.
    /// - `rollup_engagement_people`: who reached which stage of which engagement entity.
    ///
    /// People and companies are resolved through `events_resolved`, so they change when an
    /// alias, a merge or a membership does: those writes re-derive the rows of every person
    /// they touch from that person's events. One advisory lock serialises the maintenance, so
    /// two writers never derive from snapshots that miss each other's rows. A person listed
    /// twice for re-derivation is harmless: each step deletes or inserts a row once.
    static let rollups: [String] = [
        """
        CREATE TABLE rollup_event_counts (
            app_token text NOT NULL,
            hour timestamptz NOT NULL,
            event_type text NOT NULL,
            event_name text NOT NULL,
            events bigint NOT NULL,
            PRIMARY KEY (app_token, hour, event_type, event_name)
        )
        """,
        """
        CREATE TABLE rollup_person_periods (
            app_token text NOT NULL,
            grain text NOT NULL CHECK (grain IN ('day', 'week', 'month')),
            period date NOT NULL,
            person text NOT NULL,
            -- Person first: re-deriving a person deletes by it; counts live in rollup_period_people.
            PRIMARY KEY (app_token, person, grain, period)
        )
        """,
        """
        CREATE TABLE rollup_period_people (
            app_token text NOT NULL,
            grain text NOT NULL,
            period date NOT NULL,
            people bigint NOT NULL,
            PRIMARY KEY (app_token, grain, period)
        )
        """,
        """
        CREATE TABLE rollup_company_people (
            app_token text NOT NULL,
            company text NOT NULL,
            person text NOT NULL,
            events bigint NOT NULL,
            -- Person first: re-deriving a person deletes by it; the report reads the app's rows whole.
            PRIMARY KEY (app_token, person, company)
        )
        """,
        // Every rollup maintenance starts here: the lock that serialises it, and this
        // session's scratch tables (emptied at commit): the events to add, their resolved rows,
        // and the people to re-derive.
        """
        CREATE FUNCTION cairn_rollup_begin() RETURNS void LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_advisory_xact_lock(72617001);
            CREATE TEMP TABLE IF NOT EXISTS cairn_rollup_keys (app_token text, internal_event_id bigint, inserted_at timestamptz) ON COMMIT DELETE ROWS;
            CREATE TEMP TABLE IF NOT EXISTS cairn_rollup_delta (app_token text, inserted_at timestamptz, person text, company text,
                event_type text, event_name text, metadata jsonb) ON COMMIT DELETE ROWS;
            CREATE TEMP TABLE IF NOT EXISTS cairn_rollup_affected (app_token text, person text) ON COMMIT DELETE ROWS;
        END
        $$
        """,
        // A JSON value as a number: a JSON number, or a string that spells one; otherwise NULL.
        """
        CREATE FUNCTION cairn_jsonb_numeric(value jsonb) RETURNS numeric IMMUTABLE LANGUAGE sql AS $$
            SELECT CASE
                WHEN jsonb_typeof(value) = 'number' THEN (value #>> '{}')::numeric
                WHEN jsonb_typeof(value) = 'string' AND (value #>> '{}') ~ '^\\s*-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?\\s*$'
                    THEN trim(value #>> '{}')::numeric
            END
        $$
        """,
        // The values of attributes registered as numbers, one narrow row per event carrying
        // one, NULL when it is not a number: `report stats` reads these instead of the events.
        """
        CREATE TABLE rollup_attribute_values (
            app_token text NOT NULL,
            event_name text NOT NULL,
            attribute text NOT NULL,
            inserted_at timestamptz NOT NULL,
            internal_event_id bigint NOT NULL,
            value numeric,
            PRIMARY KEY (app_token, event_name, attribute, inserted_at, internal_event_id)
        )
        """,
        // Registering an attribute as a number fills its values in; any other type drops them.
        """
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
        """,
        "CREATE TRIGGER rollup_attributes_changed AFTER INSERT OR UPDATE OF type OR DELETE ON app_attributes FOR EACH ROW EXECUTE FUNCTION cairn_rollup_attributes_changed()",
    ] + engagementClassifier + [
        // Who reached which stage of which engagement entity, all time (`report engagement`).
        """
        CREATE TABLE rollup_engagement_people (
            app_token text NOT NULL,
            entity text NOT NULL,
            tool text NOT NULL,
            id text NOT NULL,
            stage text NOT NULL,
            person text NOT NULL,
            PRIMARY KEY (app_token, entity, tool, id, stage, person)
        )
        """,
        "CREATE INDEX rollup_engagement_people_person ON rollup_engagement_people (app_token, person)",
        // Adds the resolved rows of the events keyed in `cairn_rollup_keys` to the person rollups;
        // with `only_affected`, only the rows that resolve to a person in `cairn_rollup_affected`.
        """
        CREATE FUNCTION cairn_rollup_add_keyed(only_affected boolean) RETURNS void LANGUAGE plpgsql AS $$
        BEGIN
            DELETE FROM cairn_rollup_delta;
            \(deltaFromKeys)
            \(applyDelta)
            DELETE FROM cairn_rollup_keys;
        END
        $$
        """,
        refreshFunction(analyzingScratch: false),
        """
        CREATE FUNCTION cairn_rollup_events_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM cairn_rollup_begin();
            \(countNewRows)
            INSERT INTO cairn_rollup_keys SELECT app_token, internal_event_id, inserted_at FROM new_rows;
            PERFORM cairn_rollup_add_keyed(false);
            RETURN NULL;
        END
        $$
        """,
        """
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
        """,
        // An alias or merge moves events between people: both sides are re-derived.
        """
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
        """,
        // A membership that starts earlier, or a new one, changes which company events count for.
        """
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
        """,
        "CREATE TRIGGER rollup_events_inserted AFTER INSERT ON events REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION cairn_rollup_events_inserted()",
        "CREATE TRIGGER rollup_events_deleted AFTER DELETE ON events REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION cairn_rollup_events_deleted()",
        "CREATE TRIGGER rollup_aliases_inserted AFTER INSERT ON identity_aliases REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION cairn_rollup_aliases_changed()",
        "CREATE TRIGGER rollup_aliases_updated AFTER UPDATE ON identity_aliases REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION cairn_rollup_aliases_changed()",
        "CREATE TRIGGER rollup_aliases_deleted AFTER DELETE ON identity_aliases REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION cairn_rollup_aliases_changed()",
        "CREATE TRIGGER rollup_memberships_inserted AFTER INSERT ON user_companies REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION cairn_rollup_memberships_changed()",
        "CREATE TRIGGER rollup_memberships_updated AFTER UPDATE ON user_companies REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION cairn_rollup_memberships_changed()",
        "CREATE TRIGGER rollup_memberships_deleted AFTER DELETE ON user_companies REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION cairn_rollup_memberships_changed()",
        // Existing events, once.
        """
        INSERT INTO rollup_event_counts (app_token, hour, event_type, event_name, events)
        SELECT app_token, date_trunc('hour', inserted_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', event_type, event_name, count(*) FROM events GROUP BY 1, 2, 3, 4
        """,
        // Every existing event through the same path new ones take.
        "SELECT cairn_rollup_begin()",
        "INSERT INTO cairn_rollup_keys SELECT app_token, internal_event_id, inserted_at FROM events",
        "SELECT cairn_rollup_add_keyed(false)",
        """
        INSERT INTO rollup_attribute_values (app_token, event_name, attribute, inserted_at, internal_event_id, value)
        SELECT e.app_token, e.event_name, a.name, e.inserted_at, e.internal_event_id, cairn_jsonb_numeric(e.metadata -> a.name)
        FROM events e JOIN app_attributes a ON a.app_token = e.app_token AND a.type = 'number' AND e.metadata ? a.name
        """,
    ]

    /// Adds a trigger's `new_rows` to the event counts and the numeric attribute values.
    /// Statements of a PL/pgSQL body.
    static let countNewRows = """
            INSERT INTO rollup_event_counts AS c (app_token, hour, event_type, event_name, events)
            SELECT app_token, date_trunc('hour', inserted_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', event_type, event_name, count(*)
            FROM new_rows GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
            ON CONFLICT (app_token, hour, event_type, event_name) DO UPDATE SET events = c.events + EXCLUDED.events;
            INSERT INTO rollup_attribute_values (app_token, event_name, attribute, inserted_at, internal_event_id, value)
            SELECT n.app_token, n.event_name, a.name, n.inserted_at, n.internal_event_id, cairn_jsonb_numeric(n.metadata -> a.name)
            FROM new_rows n JOIN app_attributes a ON a.app_token = n.app_token AND a.type = 'number' AND n.metadata ? a.name
            ON CONFLICT DO NOTHING;
        """

    /// Adds the rows in `cairn_rollup_delta` (resolved events: app, time, person, company, type,
    /// name, metadata) to the person rollups. Statements of a PL/pgSQL body.
    static let applyDelta = """
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
        """

    /// Fills `cairn_rollup_delta` with the resolved rows of the events keyed in
    /// `cairn_rollup_keys`; with `only_affected`, only those of people in `cairn_rollup_affected`.
    static let deltaFromKeys = """
        INSERT INTO cairn_rollup_delta
        SELECT r.app_token, r.inserted_at, r.person, r.company, r.event_type, r.event_name, r.metadata
        FROM cairn_rollup_keys k
        JOIN events_resolved r ON r.app_token = k.app_token AND r.internal_event_id = k.internal_event_id AND r.inserted_at = k.inserted_at
        WHERE r.person IS NOT NULL
          AND (NOT only_affected OR (r.app_token, r.person) IN (SELECT app_token, person FROM cairn_rollup_affected));
        """

    /// `cairn_rollup_refresh()`: re-derives the person rollups of every (app_token, person) in
    /// `cairn_rollup_affected` from the events that may resolve to them: their own, those of
    /// ids aliased to them, and (for 'anonymous:<id>') the anonymous id's. With
    /// `analyzingScratch`, it gives the planner the scratch tables' sizes first (migration 10).
    static func refreshFunction(analyzingScratch: Bool) -> String {
        """
        CREATE OR REPLACE FUNCTION cairn_rollup_refresh() RETURNS void LANGUAGE plpgsql AS $$
        BEGIN
            \(analyzingScratch ? "ANALYZE cairn_rollup_affected;" : "")
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
            \(analyzingScratch ? "ANALYZE cairn_rollup_keys;" : "")
            -- Only rows that still resolve to an affected person: the others belong to someone unaffected.
            PERFORM cairn_rollup_add_keyed(true);
            DELETE FROM rollup_period_people WHERE people <= 0;
            DELETE FROM cairn_rollup_affected;
        END
        $$
        """
    }

    static let refreshWithStatistics = [refreshFunction(analyzingScratch: true)]

    /// The engagement classifier, generated from ``EngagementCatalog`` as plain SQL expressions
    /// that PostgreSQL inlines into the queries that call them:
    /// `cairn_engagement_stages(entity, event_type, event_name, metadata)` gives the stages an
    /// event stands for in `entity` (NULL when it is not one of its sightings),
    /// `cairn_engagement_tool(entity, event_type)` and `cairn_engagement_id(entity, event_type,
    /// event_name, metadata)` the tool and the entity's id there.
    static var engagementClassifier: [String] {
        func literal(_ text: String) -> String { "'" + text.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "''") + "'" }
        func array(_ items: [String]) -> String { "ARRAY[" + items.map(literal).joined(separator: ", ") + "]::text[]" }
        let prefixEntity = EngagementCatalog.userpilotPrefixes.map { "WHEN \(literal($0.prefix)) THEN \(literal($0.entity.rawValue))" }
        let statuses = EngagementCatalog.userpilotStatuses.map { "WHEN \(literal($0.status)) THEN \(array($0.stages))" }
        let named = EngagementCatalog.namedEvents.map { named -> String in
            var stages = array(named.stages)
            if let condition = named.condition {
                stages = "CASE WHEN metadata ->> \(literal(condition.key)) IN (\(condition.values.map(literal).joined(separator: ", "))) THEN \(stages) ELSE \(named.otherwise.map(array) ?? "NULL::text[]") END"
            }
            return "WHEN entity = \(literal(named.entity.rawValue)) AND event_name = \(literal(named.event)) THEN \(stages)"
        }
        var idKeys: [String: String] = [:]
        var tools: [String: String] = [:]
        for named in EngagementCatalog.namedEvents {
            idKeys[named.entity.rawValue] = named.idKey
            tools[named.entity.rawValue] = named.tool
        }
        return [
            """
            CREATE FUNCTION cairn_engagement_stages(entity text, event_type text, event_name text, metadata jsonb)
            RETURNS text[] IMMUTABLE LANGUAGE sql AS $$
                SELECT CASE WHEN event_type = 'interaction' THEN
                    CASE WHEN length(event_name) - length(replace(event_name, ':', '')) = 2
                              AND (CASE split_part(event_name, ':', 1) \(prefixEntity.joined(separator: " ")) END) = entity
                         THEN CASE split_part(event_name, ':', 3) \(statuses.joined(separator: " ")) ELSE \(array(EngagementCatalog.userpilotOtherStatus)) END
                    END
                ELSE CASE
                    \(named.joined(separator: "\n            "))
                END END
            $$
            """,
            """
            CREATE FUNCTION cairn_engagement_tool(entity text, event_type text) RETURNS text IMMUTABLE LANGUAGE sql AS $$
                SELECT CASE WHEN event_type = 'interaction' THEN 'userpilot'
                            \(tools.sorted { $0.key < $1.key }.map { "WHEN entity = \(literal($0.key)) THEN \(literal($0.value))" }.joined(separator: " ")) END
            $$
            """,
            """
            CREATE FUNCTION cairn_engagement_id(entity text, event_type text, event_name text, metadata jsonb) RETURNS text IMMUTABLE LANGUAGE sql AS $$
                SELECT CASE WHEN event_type = 'interaction' THEN split_part(event_name, ':', 2)
                            ELSE COALESCE(metadata ->> CASE \(idKeys.sorted { $0.key < $1.key }.map { "WHEN entity = \(literal($0.key)) THEN \(literal($0.value))" }.joined(separator: " ")) END, '') END
            $$
            """,
            // Whether an event can be a sighting at all: the rollup classifies only those.
            """
            CREATE FUNCTION cairn_engagement_candidate(event_type text, event_name text) RETURNS boolean IMMUTABLE LANGUAGE sql AS $$
                SELECT event_type = 'interaction' OR event_name = ANY (\(array(Array(Set(EngagementCatalog.namedEvents.map(\.event))).sorted())))
            $$
            """,
            // Every entity, for the rollup to classify each event against.
            """
            CREATE FUNCTION cairn_engagement_entities() RETURNS text[] IMMUTABLE LANGUAGE sql AS $$
                SELECT \(array(EngagementCatalog.Entity.allCases.map(\.rawValue)))
            $$
            """,
        ]
    }

    /// Applies the migrations not yet applied, each in its own transaction, serialised
    /// across processes by an advisory lock.
    /// - Returns: the schema version now in place.
    /// - Parameter target: stop after this version (tests use it to build an older database).
    @discardableResult
    public static func migrate(_ connection: PostgresConnection, upTo target: Int = .max) throws(PostgresError) -> Int {
        try connection.execute("CREATE TABLE IF NOT EXISTS cairn_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
        try connection.execute("SELECT pg_advisory_lock(72617000)")
        defer { _ = try? connection.execute("SELECT pg_advisory_unlock(72617000)") }
        let applied = Set(try connection.execute("SELECT version FROM cairn_migrations").rows.compactMap { $0[0].flatMap { Int($0) } })
        for migration in migrations where !applied.contains(migration.version) && migration.version <= target {
            try connection.transaction { () throws(PostgresError) in
                for statement in migration.statements { try connection.execute(statement) }
                try connection.execute("INSERT INTO cairn_migrations (version) VALUES ($1)", [String(migration.version)])
            }
        }
        return min(target, migrations.last?.version ?? 0)
    }
}
