import CairnCore
import CairnPostgres

/// What identity needs from the database to place one span's events:
/// who each anonymous id belongs to, the stored event history of each person it has not
/// cached, and the app's session settings.
///
/// The request: `app_token`, `user_ids`, `anonymous_ids` (of events without a user id),
/// `new_aliases` (`[{alias_id, user_id, aliased_at}]` from the span), `cached` (persons whose
/// history identity already holds). Result: `{aliases: {anonymous_id: user}, histories:
/// {person: [packed points]}, users: {merged user: survivor}, novel_aliases: [anonymous_id],
/// absorbing: [user], inactivity_s, max_length_s}`: `novel_aliases` are the batch's
/// identifications that change a stored alias (or add one), and `absorbing` the users they
/// join, whose histories are returned whole even when cached.
public enum IdentityContext {
    public struct Request: Sendable {
        public var app_token: String
        public var user_ids: [String]?
        public var anonymous_ids: [String]?
        /// People whose histories identity holds already.
        public var cached: [String]?
        /// The span's own identifications: `alias_id`, `user_id`, `aliased_at`.
        public var new_aliases: [JSON]?
        /// Histories hold the events at or below this checkpoint: the span's own are added to them.
        public var through: Int64

        public init(
            app_token: String,
            user_ids: [String]? = nil,
            anonymous_ids: [String]? = nil,
            cached: [String]? = nil,
            new_aliases: [JSON]? = nil,
            through: Int64 = .max
        ) {
            self.through = through
            self.app_token = app_token
            self.user_ids = user_ids
            self.anonymous_ids = anonymous_ids
            self.cached = cached
            self.new_aliases = new_aliases
        }
    }

    public static func load(_ params: Request, on connection: PostgresConnection) throws -> JSON {
        let token = params.app_token
        let userIds = params.user_ids ?? []
        let anonymousIds = params.anonymous_ids ?? []
        let cached = Set(params.cached ?? [])
        let settings = try connection.execute("SELECT session_inactivity_s, session_max_length_s FROM apps WHERE token = $1", [token]).firstRow

        // Users merged away resolve to their survivor.
        var finalUser: [String: String] = [:]
        for row in try connection.execute(
            "SELECT alias_id, user_id FROM identity_aliases WHERE app_token = $1 AND alias_kind = 'user' AND alias_id = ANY($2::text[])",
            [token, PostgresArray.text(userIds + (params.new_aliases ?? []).compactMap { $0["user_id"]?.stringValue })]
        ).namedRows {
            if let from = row["alias_id"], let to = row["user_id"] { finalUser[from] = to }
        }
        // Anonymous ids: the stored alias, unless the batch identifies them earlier. The stored
        // aliases of the batch's own identifications are read too, to tell which of those
        // change anything: most repeat an alias already stored.
        let newAliases = params.new_aliases ?? []
        var aliases: [String: (user: String, time: String)] = [:]
        for row in try connection.execute(
            """
            SELECT alias_id, user_id, to_char(aliased_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS aliased_at
            FROM identity_aliases WHERE app_token = $1 AND alias_kind = 'anonymous' AND alias_id = ANY($2::text[])
            """,
            [token, PostgresArray.text(anonymousIds + newAliases.compactMap { $0["alias_id"]?.stringValue })]
        ).namedRows {
            if let anonymous = row["alias_id"], let user = row["user_id"], let time = row["aliased_at"] { aliases[anonymous] = (user, time) }
        }
        // The visitors this batch identifies for the first time (or earlier than stored), and
        // the users who absorb them: those users' histories are read again whole, their
        // visitor's events included, whatever identity holds.
        var novel = Set<String>()
        var absorbing = Set<String>()
        for alias in newAliases {
            guard let anonymous = alias["alias_id"]?.stringValue, let user = alias["user_id"]?.stringValue,
                let time = alias["aliased_at"]?.stringValue.flatMap(Timestamp.init(parsing:))?.description
            else { continue }
            let candidate = (user: finalUser[user] ?? user, time: time)
            if let stored = aliases[anonymous], (stored.time, stored.user) <= (candidate.time, candidate.user) { continue }
            aliases[anonymous] = candidate
            novel.insert(anonymous)
            absorbing.insert(candidate.user)
        }

        // Histories of the persons identity does not hold yet, read in three queries for the
        // whole batch rather than per person.
        var persons = Set(userIds.map { finalUser[$0] ?? $0 })
        for anonymous in anonymousIds { persons.insert(aliases[anonymous]?.user ?? "anonymous:" + anonymous) }
        let wanted = persons.subtracting(cached).union(absorbing)
        let histories = try self.histories(of: wanted, token: token, aliases: aliases, through: params.through, on: connection)
        var aliasObject = JSONObject()
        for (anonymous, alias) in aliases.sorted(by: { $0.key < $1.key }) { aliasObject.append(anonymous, .string(alias.user)) }
        var userObject = JSONObject()
        for (from, to) in finalUser.sorted(by: { $0.key < $1.key }) { userObject.append(from, .string(to)) }
        return [
            "aliases": .object(aliasObject), "users": .object(userObject), "histories": .object(histories),
            "novel_aliases": .array(novel.sorted().map(JSON.string)), "absorbing": .array(absorbing.sorted().map(JSON.string)),
            "inactivity_s": .int(settings?["session_inactivity_s", as: Int64.self] ?? 1800),
            "max_length_s": .int(settings?["session_max_length_s", as: Int64.self] ?? 86400),
        ]
    }

    /// The packed session points (time × 2, minus 1 for `session_start`) of the stored events
    /// of each of `persons`: their own, those of users merged into them, and their anonymous
    /// events from before they identified.
    static func histories(
        of persons: Set<String>,
        token: String,
        aliases: [String: (user: String, time: String)],
        through: Int64,
        on connection: PostgresConnection
    ) throws -> JSONObject {
        guard !persons.isEmpty else { return JSONObject() }
        let users = persons.filter { !$0.hasPrefix("anonymous:") }
        // Which stored ids belong to which person.
        var owner: [String: String] = [:]  // user id → person
        var anonymousOwner: [String: String] = [:]  // anonymous id → person
        for user in users { owner[user] = user }
        for person in persons where person.hasPrefix("anonymous:") { anonymousOwner[String(person.dropFirst("anonymous:".count))] = person }
        for row in try connection.execute(
            "SELECT alias_kind, alias_id, user_id FROM identity_aliases WHERE app_token = $1 AND user_id = ANY($2::text[])",
            [token, PostgresArray.text(users.sorted())]
        ).namedRows {
            guard let kind = row["alias_kind"], let id = row["alias_id"], let user = row["user_id"] else { continue }
            if kind == "user" { owner[id] = user } else { anonymousOwner[id] = user }
        }
        for (id, alias) in aliases where users.contains(alias.user) { anonymousOwner[id] = alias.user }
        var points: [String: [Int64]] = [:]
        for row in try connection.execute(
            """
            SELECT user_id, anonymous_id, (extract(epoch FROM inserted_at) * 1000000)::bigint AS micros, event_type = 'session_start' AS starts_session
            FROM events WHERE app_token = $1 AND stored_xid <= $4::bigint
              AND (user_id = ANY($2::text[]) OR (user_id IS NULL AND anonymous_id = ANY($3::text[])))
            """,
            [token, PostgresArray.text(owner.keys.sorted()), PostgresArray.text(anonymousOwner.keys.sorted()), String(through)]
        ).namedRows {
            guard let micros = row["micros", as: Int64.self] else { continue }
            let person = row["user_id"].flatMap { owner[$0] } ?? row["anonymous_id"].flatMap { anonymousOwner[$0] }
            guard let person else { continue }
            points[person, default: []].append(micros * 2 + (row["starts_session", as: Bool.self] == true ? 0 : 1))
        }
        var result = JSONObject()
        for person in persons.sorted() { result.append(person, .array((points[person] ?? []).map(JSON.int))) }
        return result
    }
}
