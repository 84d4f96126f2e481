import CairnCore
import CairnPostgres
import CairnWire

/// `users.show` and `companies.show`: one person or company as identity resolved them.
public enum IdentityViews {
    /// Traits, company, aliases, merges, first and last seen, and the count of events that
    /// resolve to the user (their own, those of users merged into them, and their anonymous
    /// events from before they identified).
    public static func user(_ params: JSON, on connection: PostgresConnection) throws -> JSON {
        let (token, app) = try resolveApp(params, on: connection)
        guard let requested = params["user"]?.stringValue else { throw RPCError.invalidParams("params.user must name the user") }
        let person = try connection.resolvedPerson(requested, token: token)
        let user = person.userId
        guard let row = try connection.execute("""
            SELECT to_char(first_seen AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), to_char(last_seen AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                   traits::text, company_id
            FROM users WHERE app_token = $1 AND user_id = $2
            """, [token, user]).rows.first else {
            throw RPCError.application("unknown_user", "app '\(app)' has no user '\(requested)'")
        }
        let aliases = try connection.execute(
            "SELECT alias_kind, alias_id, reason, to_char(aliased_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM identity_aliases WHERE app_token = $1 AND user_id = $2 ORDER BY aliased_at, alias_id",
            [token, user]).rows
        let count = try connection.execute("""
            SELECT count(*) FROM events WHERE app_token = $1
              AND (user_id = ANY($2::text[]) OR (user_id IS NULL AND anonymous_id = ANY($3::text[])))
            """, [token, PostgresArray.text(person.userIds), PostgresArray.text(person.anonymousIds)]).rows[0][0]
        let merges = try connection.execute(
            "SELECT from_user, to_char(merged_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM identity_merges WHERE app_token = $1 AND into_user = $2 ORDER BY merged_at",
            [token, user]).rows
        let sessions = try connection.execute("""
            SELECT session, to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), to_char(ended_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), events
            FROM user_sessions WHERE app_token = $1 AND person = $2 ORDER BY session
            """, [token, user]).rows
        return [
            "user_id": .string(user), "requested": .string(requested),
            "first_seen": .optional(row[0]), "last_seen": .optional(row[1]),
            "traits": (try? JSONParser.parse(row[2] ?? "{}")) ?? .object(JSONObject()),
            "company_id": .optional(row[3]),
            "aliases": .array(aliases.map { ["kind": .optional($0[0]), "id": .optional($0[1]), "reason": .optional($0[2]), "since": .optional($0[3])] }),
            "merged_from": .array(merges.map { ["user_id": .optional($0[0]), "merged_at": .optional($0[1])] }),
            "sessions": .array(sessions.map { ["session": .int(Int64($0[0] ?? "0") ?? 0), "started_at": .optional($0[1]), "ended_at": .optional($0[2]), "events": .int(Int64($0[3] ?? "0") ?? 0)] }),
            "events": .int(Int64(count ?? "0") ?? 0),
        ]
    }

    /// Traits, first and last seen, and members: users whose current company it is, and
    /// those seen with it before.
    public static func company(_ params: JSON, on connection: PostgresConnection) throws -> JSON {
        let (token, app) = try resolveApp(params, on: connection)
        guard let company = params["company"]?.stringValue else { throw RPCError.invalidParams("params.company must name the company") }
        guard let row = try connection.execute("""
            SELECT to_char(first_seen AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), to_char(last_seen AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), traits::text
            FROM companies WHERE app_token = $1 AND company_id = $2
            """, [token, company]).rows.first else {
            throw RPCError.application("unknown_company", "app '\(app)' has no company '\(company)'")
        }
        let members = try connection.execute("""
            SELECT m.user_id, u.company_id = m.company_id,
                   to_char(m.first_seen AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), to_char(m.last_seen AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
            FROM user_companies m JOIN users u ON u.app_token = m.app_token AND u.user_id = m.user_id
            WHERE m.app_token = $1 AND m.company_id = $2 AND u.merged_into IS NULL
            ORDER BY 2 DESC, m.user_id
            """, [token, company]).rows
        return [
            "company_id": .string(company), "first_seen": .optional(row[0]), "last_seen": .optional(row[1]),
            "traits": (try? JSONParser.parse(row[2] ?? "{}")) ?? .object(JSONObject()),
            "members": .array(members.map { ["user_id": .optional($0[0]), "current": .bool($0[1] == "t"), "first_seen": .optional($0[2]), "last_seen": .optional($0[3])] }),
        ]
    }

    private static func resolveApp(_ params: JSON, on connection: PostgresConnection) throws -> (token: String, app: String) {
        guard let app = params["app"]?.stringValue else { throw RPCError.invalidParams("params.app must name the app") }
        guard let token = try connection.appToken(for: app) else {
            throw RPCError.application("unknown_app", "no app is named '\(app)' or has that token; create it with `cairn apps create \(app)`")
        }
        return (token, app)
    }
}
