import CairnCore
import CairnPostgres

/// Writes what one span of events says about identity: users, companies, memberships,
/// aliases and sessions, each as one upsert of rows folded in Swift (``IdentityBatch``).
///
/// Every upsert is order-independent and idempotent: first and last seen are extremes, traits
/// merge by time, the earliest identification of an anonymous id wins. So one span or many,
/// in any order, give the same state. Statements read their rows from one `jsonb` parameter
/// and join nothing else: erased people, merged users and ids that are users already are
/// taken out in Swift first, so no statement pairs a set-returning function with a
/// correlated subquery (which a distributed database cannot plan).
struct IdentityWriter {
    let app: String
    let connection: PostgresConnection

    /// The people erased from the app among `users` and `anonymous` ids.
    func suppressions(users: [String], anonymous: [String]) throws(PostgresError) -> (users: Set<String>, anonymous: Set<String>) {
        guard !users.isEmpty || !anonymous.isEmpty else { return ([], []) }
        var found: (users: Set<String>, anonymous: Set<String>) = ([], [])
        for row in try connection.execute(
            """
            SELECT kind, id FROM suppressions
            WHERE app_token = $1 AND ((kind = 'user' AND id = ANY($2::text[])) OR (kind = 'anonymous' AND id = ANY($3::text[])))
            """,
            [app, PostgresArray.text(users), PostgresArray.text(anonymous)]
        ).namedRows {
            guard let kind = row["kind"], let id = row["id"] else { continue }
            if kind == "user" { found.users.insert(id) } else { found.anonymous.insert(id) }
        }
        return found
    }

    /// Each upsert skips rows it would not change (a range already covering the span's, no
    /// traits, no company): no new row version, no index entries.
    func upsertUsers(_ rows: [JSON]) throws(PostgresError) {
        guard !rows.isEmpty else { return }
        try connection.execute(
            """
            INSERT INTO users AS u (app_token, user_id, first_seen, last_seen, traits, trait_times, traits_updated_at, company_id, company_updated_at)
            SELECT app_token, user_id, first_seen, last_seen, COALESCE(traits, '{}'::jsonb), COALESCE(trait_times, '{}'::jsonb),
                   traits_updated_at, company_id, company_updated_at
            FROM jsonb_to_recordset($1::jsonb) AS x(app_token text, user_id text, first_seen timestamptz, last_seen timestamptz,
                 traits jsonb, trait_times jsonb, traits_updated_at timestamptz, company_id text, company_updated_at timestamptz)
            ON CONFLICT (app_token, user_id) DO UPDATE SET
                first_seen = LEAST(u.first_seen, EXCLUDED.first_seen),
                last_seen = GREATEST(u.last_seen, EXCLUDED.last_seen),
                -- Most spans carry no traits for most users: skip the per-key merge then.
                traits = CASE WHEN EXCLUDED.trait_times = '{}'::jsonb THEN u.traits
                              ELSE cairn_merge_traits(u.traits, u.trait_times, EXCLUDED.traits, EXCLUDED.trait_times) END,
                trait_times = CASE WHEN EXCLUDED.trait_times = '{}'::jsonb THEN u.trait_times
                                   ELSE cairn_merge_trait_times(u.traits, u.trait_times, EXCLUDED.traits, EXCLUDED.trait_times) END,
                traits_updated_at = GREATEST(u.traits_updated_at, EXCLUDED.traits_updated_at),
                company_id = CASE
                    WHEN EXCLUDED.company_updated_at IS NOT NULL AND (u.company_updated_at IS NULL OR EXCLUDED.company_updated_at > u.company_updated_at
                         OR (EXCLUDED.company_updated_at = u.company_updated_at AND EXCLUDED.company_id > u.company_id))
                    THEN EXCLUDED.company_id ELSE u.company_id END,
                company_updated_at = GREATEST(u.company_updated_at, EXCLUDED.company_updated_at)
            WHERE EXCLUDED.first_seen < u.first_seen OR EXCLUDED.last_seen > u.last_seen
               OR EXCLUDED.trait_times <> '{}'::jsonb OR EXCLUDED.company_updated_at IS NOT NULL
            """,
            [JSON.array(rows).serializedString()]
        )
    }

    func upsertCompanies(_ rows: [JSON]) throws(PostgresError) {
        guard !rows.isEmpty else { return }
        try connection.execute(
            """
            INSERT INTO companies AS c (app_token, company_id, first_seen, last_seen, traits, trait_times, traits_updated_at)
            SELECT app_token, company_id, first_seen, last_seen, COALESCE(traits, '{}'::jsonb), COALESCE(trait_times, '{}'::jsonb), traits_updated_at
            FROM jsonb_to_recordset($1::jsonb) AS x(app_token text, company_id text, first_seen timestamptz, last_seen timestamptz,
                 traits jsonb, trait_times jsonb, traits_updated_at timestamptz)
            ON CONFLICT (app_token, company_id) DO UPDATE SET
                first_seen = LEAST(c.first_seen, EXCLUDED.first_seen),
                last_seen = GREATEST(c.last_seen, EXCLUDED.last_seen),
                traits = CASE WHEN EXCLUDED.trait_times = '{}'::jsonb THEN c.traits
                              ELSE cairn_merge_traits(c.traits, c.trait_times, EXCLUDED.traits, EXCLUDED.trait_times) END,
                trait_times = CASE WHEN EXCLUDED.trait_times = '{}'::jsonb THEN c.trait_times
                                   ELSE cairn_merge_trait_times(c.traits, c.trait_times, EXCLUDED.traits, EXCLUDED.trait_times) END,
                traits_updated_at = GREATEST(c.traits_updated_at, EXCLUDED.traits_updated_at)
            WHERE EXCLUDED.first_seen < c.first_seen OR EXCLUDED.last_seen > c.last_seen OR EXCLUDED.trait_times <> '{}'::jsonb
            """,
            [JSON.array(rows).serializedString()]
        )
    }

    /// Upserts the (user, company) sightings; returns the users whose membership began (or
    /// began earlier), for whom a company resolved from the membership may have moved.
    func upsertMemberships(_ rows: [JSON]) throws(PostgresError) -> [(user: String, since: String)] {
        guard !rows.isEmpty else { return [] }
        var sent: [String: String] = [:]  // user \u{1} company → first_seen as sent
        for row in rows {
            if let user = row["user_id"]?.stringValue, let company = row["company_id"]?.stringValue, let first = row["first_seen"]?.stringValue {
                sent[user + "\u{1}" + company] = first
            }
        }
        let changed = try connection.execute(
            """
            INSERT INTO user_companies AS m (app_token, user_id, company_id, first_seen, last_seen)
            SELECT app_token, user_id, company_id, first_seen, last_seen
            FROM jsonb_to_recordset($1::jsonb) AS x(app_token text, user_id text, company_id text, first_seen timestamptz, last_seen timestamptz)
            ON CONFLICT (app_token, user_id, company_id) DO UPDATE SET
                first_seen = LEAST(m.first_seen, EXCLUDED.first_seen),
                last_seen = GREATEST(m.last_seen, EXCLUDED.last_seen)
            WHERE EXCLUDED.first_seen < m.first_seen OR EXCLUDED.last_seen > m.last_seen
            RETURNING m.user_id, m.company_id, to_char(m.first_seen AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS first_seen
            """,
            [JSON.array(rows).serializedString()]
        ).namedRows
        // A row whose first sighting is the span's own began now, or earlier than before; one
        // that only moved its last sighting changes no company.
        return changed.compactMap { row in
            guard let user = row["user_id"], let company = row["company_id"], let first = row["first_seen"],
                let mine = sent[user + "\u{1}" + company], Timestamp(parsing: mine) == Timestamp(parsing: first)
            else { return nil }
            return (user, first)
        }
    }

    /// Of `memberships`, the users some of whose events at or below `through` take their
    /// company from a membership (no company of their own, at or after its start), or who have
    /// aliases (whose events resolve to them): their person rollups must be derived again.
    func usersWhoseCompanyMayMove(_ memberships: [(user: String, since: String)], through: Int64) throws(PostgresError) -> Set<String> {
        guard !memberships.isEmpty else { return [] }
        var since: [String: Timestamp] = [:]
        for (user, first) in memberships {
            guard let time = Timestamp(parsing: first) else { continue }
            since[user] = min(since[user] ?? time, time)
        }
        let users = PostgresArray.text(since.keys.sorted())
        var moved = Set<String>()
        for row in try connection.execute(
            """
            SELECT e.user_id, to_char(max(e.inserted_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS latest FROM events e
            WHERE e.app_token = $1 AND e.user_id = ANY($2::text[]) AND e.company_id IS NULL AND e.stored_xid <= $3::bigint
            GROUP BY e.user_id
            """,
            [app, users, String(through)]
        ).namedRows {
            guard let user = row["user_id"], let latest = row["latest"].flatMap(Timestamp.init(parsing:)), let start = since[user] else { continue }
            if latest >= start { moved.insert(user) }
        }
        for row in try connection.execute(
            "SELECT DISTINCT user_id FROM identity_aliases WHERE app_token = $1 AND user_id = ANY($2::text[])",
            [app, users]
        ).namedRows {
            if let user = row["user_id"] { moved.insert(user) }
        }
        return moved
    }

    /// An anonymous id joins the user it was identified as, resolved through merges. The earliest identification wins (then the smaller user id), so arrival order
    /// never matters; an id that is itself an identified user is never aliased away (PostHog's
    /// rule: two identified users are never merged silently). Returns how resolution moved:
    /// the persons who lost events (the visitors identified, and a user an earlier
    /// identification took a visitor from), and for each user the visitors they gained.
    func upsertAliases(_ rows: [JSON]) throws(PostgresError) -> AliasChanges {
        guard !rows.isEmpty else { return AliasChanges() }
        // An identification of a user merged away joins the survivor.
        let survivors = try aliasTargets(kind: "user", of: rows.compactMap { $0["user_id"]?.stringValue })
        let rows = rows.map { row -> JSON in
            guard let user = row["user_id"]?.stringValue, let survivor = survivors[user], case .object(var object) = row else { return row }
            object["user_id"] = .string(survivor)
            return .object(object)
        }
        let ids = rows.compactMap { $0["alias_id"]?.stringValue }
        let identified = Set(
            try connection.execute("SELECT user_id FROM users WHERE app_token = $1 AND user_id = ANY($2::text[])", [app, PostgresArray.text(ids)])
                .namedRows.compactMap { $0["user_id"] }
        )
        let kept = rows.filter { row in row["alias_id"]?.stringValue.map { !identified.contains($0) } ?? false }
        guard !kept.isEmpty else { return AliasChanges() }
        let before = try aliasTargets(kind: "anonymous", of: kept.compactMap { $0["alias_id"]?.stringValue })
        var changes = AliasChanges()
        for row in try connection.execute(
            """
            INSERT INTO identity_aliases AS a (app_token, alias_kind, alias_id, user_id, aliased_at, reason)
            SELECT app_token, 'anonymous', alias_id, user_id, aliased_at, 'identify'
            FROM jsonb_to_recordset($1::jsonb) AS x(app_token text, alias_id text, user_id text, aliased_at timestamptz)
            ON CONFLICT (app_token, alias_kind, alias_id) DO UPDATE SET user_id = EXCLUDED.user_id, aliased_at = EXCLUDED.aliased_at, stored_xid = cairn_xid()
            WHERE EXCLUDED.aliased_at < a.aliased_at OR (EXCLUDED.aliased_at = a.aliased_at AND EXCLUDED.user_id < a.user_id)
            RETURNING a.alias_id, a.user_id
            """,
            [JSON.array(kept).serializedString()]
        ).namedRows {
            guard let id = row["alias_id"], let user = row["user_id"] else { continue }
            // An earlier identification as the same user moves no event.
            if let previous = before[id] {
                guard previous != user else { continue }
                changes.lost.insert(previous)
            }
            changes.lost.insert("anonymous:" + id)
            changes.gained[user, default: []].append(id)
        }
        return changes
    }

    /// The user each of `ids` (aliases of `kind`) resolves to now, where it has an alias.
    private func aliasTargets(kind: String, of ids: [String]) throws(PostgresError) -> [String: String] {
        var targets: [String: String] = [:]
        for row in try connection.execute(
            "SELECT alias_id, user_id FROM identity_aliases WHERE app_token = $1 AND alias_kind = $2 AND alias_id = ANY($3::text[])",
            [app, kind, PostgresArray.text(ids)]
        ).namedRows {
            if let id = row["alias_id"], let user = row["user_id"] { targets[id] = user }
        }
        return targets
    }

    /// How a span's aliases moved events between people.
    struct AliasChanges {
        /// Persons some of whose events now resolve to someone else: derived again whole.
        var lost = Set<String>()
        /// Users, and the visitors whose events now resolve to them: only those events are added.
        var gained: [String: [String]] = [:]
    }

    /// Each listed person's sessions are replaced from `from` on (whole without it): identity
    /// recomputes them from the full history and writes what changed.
    func replaceSessions(_ rows: [JSON]) throws(PostgresError) {
        guard !rows.isEmpty else { return }
        let parameter = JSON.array(rows).serializedString()
        try connection.execute(
            """
            DELETE FROM user_sessions s USING jsonb_to_recordset($1::jsonb) AS x(app_token text, person text, "from" integer)
            WHERE s.app_token = x.app_token AND s.person = x.person AND s.session >= COALESCE(x."from", 0)
            """,
            [parameter]
        )
        try connection.execute(
            """
            INSERT INTO user_sessions (app_token, person, session, started_at, ended_at, events)
            SELECT x.app_token, x.person, (s->>0)::integer, (s->>1)::timestamptz, (s->>2)::timestamptz, (s->>3)::integer
            FROM jsonb_to_recordset($1::jsonb) AS x(app_token text, person text, sessions jsonb), jsonb_array_elements(x.sessions) AS s
            """,
            [parameter]
        )
    }
}
