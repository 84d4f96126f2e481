import CairnPostgres

/// The rollups the common reports read, kept by the identity follower from the events log.
///
/// Every rollup of an app reflects exactly the events whose `stored_xid` is at or below the
/// app's checkpoint (``FollowerCheckpoint``): a span of events folds in the same transaction
/// that moves the checkpoint, and a merge or an erasure re-derives the people it moves from
/// the events at or below it. A report adds the events after the checkpoint (the unfolded
/// tail) and so never misses a committed event.
///
/// Nothing here is a database trigger, and no statement joins a set-returning function to a
/// correlated subquery: both keep the schema distributable by `app_token` (docs/scale.md).
public enum Rollups {
    /// Serialises everything that moves one app's rollups and identity state: the follower's
    /// spans, merges, erasures and attribute registrations. Held until the transaction ends.
    public static func lock(app: String, on connection: PostgresConnection) throws(PostgresError) {
        _ = try connection.execute("SELECT pg_advisory_xact_lock(72617001, hashtext($1))", [app])
    }

    /// Taken shared by every write of the app's events and exclusively by an erasure, until the
    /// transaction ends. Writes never wait for one another; an erasure waits for the writes in
    /// flight and holds back new ones until its suppressions are committed, so an event of an
    /// erased person either commits before the erasure (which then deletes it) or is dropped
    /// by the write path (which then sees the suppression).
    public static func lockWrites(app: String, exclusive: Bool, on connection: PostgresConnection) throws(PostgresError) {
        let function = exclusive ? "pg_advisory_xact_lock" : "pg_advisory_xact_lock_shared"
        _ = try connection.execute("SELECT \(function)(72617002, hashtext($1))", [app])
    }

    /// Folds the app's events with `stored_xid` in `(after, through]` into every rollup. The
    /// identity state those events name must already be in place (the follower upserts it first).
    public static func fold(app: String, after: Int64, through: Int64, on connection: PostgresConnection) throws(PostgresError) {
        let span = [app, String(after), String(through)]
        let inSpan = "e.app_token = $1 AND e.stored_xid > $2::bigint AND e.stored_xid <= $3::bigint"
        try connection.execute(
            """
            INSERT INTO rollup_event_counts AS c (app_token, hour, event_type, event_name, events)
            SELECT e.app_token, date_trunc('hour', e.inserted_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', e.event_type, e.event_name, count(*)
            FROM events e WHERE \(inSpan)
            GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
            ON CONFLICT (app_token, hour, event_type, event_name) DO UPDATE SET events = c.events + EXCLUDED.events
            """,
            span
        )
        try connection.execute(
            """
            INSERT INTO rollup_attribute_values (app_token, event_name, attribute, inserted_at, internal_event_id, value)
            SELECT e.app_token, e.event_name, a.name, e.inserted_at, e.internal_event_id, cairn_jsonb_numeric(e.metadata -> a.name)
            FROM events e JOIN app_attributes a ON a.app_token = e.app_token AND a.type = 'number' AND e.metadata ? a.name
            WHERE \(inSpan)
            ON CONFLICT DO NOTHING
            """,
            span
        )
        try prepareDelta(on: connection)
        try connection.execute("INSERT INTO cairn_fold_delta \(resolved(where: inSpan))", span)
        try applyDelta(on: connection)
    }

    /// Re-derives the person rollups of `persons` (user ids, and `anonymous:<id>` for visitors)
    /// from their events at or below `through`, after identity moved them: an alias, a merge, a
    /// membership that changes the company of earlier events, or an erasure.
    public static func refresh(app: String, persons: [String], through: Int64, on connection: PostgresConnection) throws(PostgresError) {
        guard !persons.isEmpty else { return }
        let parameters = [app, PostgresArray.text(persons.sorted()), String(through)]
        try connection.execute(
            """
            WITH removed AS (
                DELETE FROM rollup_person_periods r WHERE r.app_token = $1 AND r.person = ANY($2::text[])
                RETURNING r.grain, r.period
            )
            UPDATE rollup_period_people p SET people = p.people - x.n
            FROM (SELECT grain, period, count(*) AS n FROM removed GROUP BY 1, 2) x
            WHERE p.app_token = $1 AND p.grain = x.grain AND p.period = x.period
            """,
            Array(parameters.prefix(2))
        )
        try connection.execute("DELETE FROM rollup_period_people WHERE app_token = $1 AND people <= 0", [app])
        try connection.execute("DELETE FROM rollup_company_people WHERE app_token = $1 AND person = ANY($2::text[])", Array(parameters.prefix(2)))
        try connection.execute("DELETE FROM rollup_engagement_people WHERE app_token = $1 AND person = ANY($2::text[])", Array(parameters.prefix(2)))
        // The ids whose events may resolve to these persons: their own, and every alias of theirs.
        let ids = try connection.execute(
            """
            SELECT alias_kind, alias_id FROM identity_aliases WHERE app_token = $1 AND user_id = ANY($2::text[])
            """,
            Array(parameters.prefix(2))
        ).namedRows
        var users = persons.filter { !$0.hasPrefix(anonymousPrefix) }
        var anonymous = persons.filter { $0.hasPrefix(anonymousPrefix) }.map { String($0.dropFirst(anonymousPrefix.count)) }
        for row in ids {
            guard let kind = row["alias_kind"], let id = row["alias_id"] else { continue }
            if kind == "user" { users.append(id) } else { anonymous.append(id) }
        }
        try prepareDelta(on: connection)
        try connection.execute(
            """
            INSERT INTO cairn_fold_delta \(resolved(where: """
                e.app_token = $1 AND e.stored_xid <= $3::bigint
                AND (e.user_id = ANY($4::text[]) OR (e.user_id IS NULL AND e.anonymous_id = ANY($5::text[])))
                """, person: "ANY($2::text[])"))
            """,
            parameters + [PostgresArray.text(users), PostgresArray.text(anonymous)]
        )
        try applyDelta(on: connection)
    }

    /// Adds to the person rollups of `users` the events at or below `through` of the
    /// `visitors` (anonymous ids) now aliased to them, and nothing else: their own events are
    /// counted already, and the visitors' were counted for the visitors, whom
    /// ``refresh(app:persons:through:)`` takes out.
    public static func addVisitors(
        app: String,
        users: [String],
        visitors: [String],
        through: Int64,
        on connection: PostgresConnection
    )
        throws(PostgresError)
    {
        guard !users.isEmpty, !visitors.isEmpty else { return }
        try prepareDelta(on: connection)
        try connection.execute(
            """
            INSERT INTO cairn_fold_delta \(resolved(where: """
                e.app_token = $1 AND e.stored_xid <= $3::bigint AND e.user_id IS NULL AND e.anonymous_id = ANY($4::text[])
                """, person: "ANY($2::text[])"))
            """,
            [app, PostgresArray.text(users.sorted()), String(through), PostgresArray.text(visitors.sorted())]
        )
        try applyDelta(on: connection)
    }

    /// Takes deleted events out of the counting rollups: those at or below the checkpoint
    /// were counted, the rest never were. `deleted` is a query of the deleted rows'
    /// `(event_type, event_name, inserted_at, internal_event_id, stored_xid)` (a `RETURNING`).
    /// The person rollups of whoever they named are re-derived with ``refresh(app:persons:through:)``.
    public static func subtractDeleted(
        app: String,
        deletedSQL: String,
        parameters: [String?],
        through: Int64,
        on connection: PostgresConnection
    )
        throws(PostgresError) -> Int
    {
        let n = parameters.count
        let result = try connection.execute(
            """
            WITH gone AS (\(deletedSQL)), counted AS (
                UPDATE rollup_event_counts c SET events = c.events - g.n
                FROM (SELECT date_trunc('hour', inserted_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS hour, event_type, event_name, count(*) AS n
                      FROM gone WHERE stored_xid <= $\(n + 1)::bigint GROUP BY 1, 2, 3) g
                WHERE c.app_token = $\(n + 2) AND c.hour = g.hour AND c.event_type = g.event_type AND c.event_name = g.event_name
                RETURNING 1
            ), valued AS (
                DELETE FROM rollup_attribute_values v USING gone g
                WHERE v.app_token = $\(n + 2) AND v.event_name = g.event_name AND v.inserted_at = g.inserted_at AND v.internal_event_id = g.internal_event_id
                RETURNING 1
            )
            SELECT (SELECT count(*) FROM gone) AS deleted
            """,
            parameters + [String(through), app]
        )
        try connection.execute("DELETE FROM rollup_event_counts WHERE app_token = $1 AND events <= 0", [app])
        return result.firstRow?["deleted", as: Int.self] ?? 0
    }

    /// Fills a newly registered number attribute's values from the events at or below the
    /// checkpoint (the follower folds later ones), or drops them when the type changes away.
    public static func attributeChanged(
        app: String,
        name: String,
        isNumber: Bool,
        through: Int64,
        on connection: PostgresConnection
    )
        throws(PostgresError)
    {
        try connection.execute("DELETE FROM rollup_attribute_values WHERE app_token = $1 AND attribute = $2", [app, name])
        guard isNumber else { return }
        try connection.execute(
            """
            INSERT INTO rollup_attribute_values (app_token, event_name, attribute, inserted_at, internal_event_id, value)
            SELECT e.app_token, e.event_name, $2, e.inserted_at, e.internal_event_id, cairn_jsonb_numeric(e.metadata -> $2)
            FROM events e WHERE e.app_token = $1 AND e.metadata ? $2 AND e.stored_xid <= $3::bigint
            ON CONFLICT DO NOTHING
            """,
            [app, name, String(through)]
        )
    }

    static let anonymousPrefix = "anonymous:"

    /// The longest engagement id (a guide, survey or checklist id from the event's attributes)
    /// with its part (`checklist_task:11`) that engagement reports count, so that the rollup's
    /// key fits an index row beside the person; the engagement report applies the same bound.
    public static let maximumEngagementIdBytes = 1024

    /// The events matching `condition` (on `events e`) as the person rollups count them: the
    /// person each resolves to through the aliases, and the company from the event or, failing
    /// that, the person's membership as of the event's time (what `events_resolved` says).
    /// Only engagement candidates keep their metadata.
    public static func resolved(where condition: String, person: String? = nil) -> String {
        """
        SELECT r.app_token, r.inserted_at, r.person, COALESCE(r.company_id, m.company_id) AS company, r.event_type, r.event_name,
               CASE WHEN cairn_engagement_candidate(r.event_type, r.event_name) THEN r.metadata END AS metadata
        FROM (
            SELECT e.app_token, e.inserted_at, e.company_id, e.event_type, e.event_name, e.metadata,
                   COALESCE(mu.user_id, e.user_id, ma.user_id, 'anonymous:' || e.anonymous_id) AS person
            FROM events e
            -- One key lookup per event: a span is small beside the aliases, which a hash join would read whole.
            LEFT JOIN LATERAL (
                SELECT i.user_id FROM identity_aliases i
                WHERE i.app_token = e.app_token AND i.alias_kind = 'user' AND i.alias_id = e.user_id LIMIT 1
            ) mu ON true
            LEFT JOIN LATERAL (
                SELECT i.user_id FROM identity_aliases i
                WHERE e.user_id IS NULL AND i.app_token = e.app_token AND i.alias_kind = 'anonymous' AND i.alias_id = e.anonymous_id LIMIT 1
            ) ma ON true
            WHERE \(condition)
        ) r
        LEFT JOIN LATERAL (
            SELECT m.company_id FROM user_companies m
            WHERE r.company_id IS NULL AND m.app_token = r.app_token AND m.user_id = r.person AND m.first_seen <= r.inserted_at
            ORDER BY m.first_seen DESC, m.company_id DESC LIMIT 1
        ) m ON true
        WHERE r.person IS NOT NULL\(person.map { " AND r.person = \($0)" } ?? "")
        """
    }

    private static func prepareDelta(on connection: PostgresConnection) throws(PostgresError) {
        try connection.execute(
            """
            CREATE TEMP TABLE IF NOT EXISTS cairn_fold_delta (app_token text, inserted_at timestamptz, person text, company text,
                event_type text, event_name text, metadata jsonb) ON COMMIT DELETE ROWS
            """
        )
    }

    /// Adds what `cairn_fold_delta` holds to the person rollups, then empties it.
    private static func applyDelta(on connection: PostgresConnection) throws(PostgresError) {
        try connection.execute(
            """
            WITH added AS (
                INSERT INTO rollup_person_periods (app_token, person, grain, period)
                SELECT DISTINCT d.app_token, d.person, g.grain, date_trunc(g.grain, d.inserted_at AT TIME ZONE 'UTC')::date
                FROM cairn_fold_delta d CROSS JOIN (VALUES ('day'), ('week'), ('month')) AS g(grain)
                ORDER BY 1, 2, 3, 4
                ON CONFLICT DO NOTHING
                RETURNING app_token, grain, period
            )
            INSERT INTO rollup_period_people AS p (app_token, grain, period, people)
            SELECT app_token, grain, period, count(*) FROM added GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
            ON CONFLICT (app_token, grain, period) DO UPDATE SET people = p.people + EXCLUDED.people
            """
        )
        try connection.execute(
            """
            INSERT INTO rollup_company_people AS c (app_token, company, person, events)
            SELECT app_token, company, person, count(*) FROM cairn_fold_delta WHERE company IS NOT NULL
            GROUP BY 1, 2, 3 ORDER BY 1, 3, 2
            ON CONFLICT (app_token, person, company) DO UPDATE SET events = c.events + EXCLUDED.events
            """
        )
        try connection.execute(
            """
            INSERT INTO rollup_engagement_people (app_token, entity, tool, id, part, stage, person)
            SELECT DISTINCT d.app_token, g.entity, cairn_engagement_tool(g.entity, d.event_type),
                   cairn_engagement_id(g.entity, d.event_type, d.event_name, d.metadata),
                   cairn_engagement_part(d.event_type, d.event_name, d.metadata), s.stage, d.person
            FROM cairn_fold_delta d
            CROSS JOIN unnest(cairn_engagement_entities()) AS g(entity)
            CROSS JOIN LATERAL unnest(cairn_engagement_stages(g.entity, d.event_type, d.event_name, d.metadata)) AS s(stage)
            WHERE cairn_engagement_candidate(d.event_type, d.event_name)
              -- An id longer than this cannot be indexed; were it folded, every later span would fail.
              AND octet_length(cairn_engagement_id(g.entity, d.event_type, d.event_name, d.metadata))
                  + octet_length(cairn_engagement_part(d.event_type, d.event_name, d.metadata)) <= \(maximumEngagementIdBytes)
            ORDER BY 1, 2, 3, 4, 5, 6, 7
            ON CONFLICT DO NOTHING
            """
        )
        try connection.execute("DELETE FROM cairn_fold_delta")
    }
}
