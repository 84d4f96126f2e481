import CairnCore
import CairnMethods
import CairnPostgres
import CairnWire

/// `users.show` and `companies.show`: one person or company as identity resolved them.
public enum IdentityViews {
    /// Traits, company, aliases, merges, first and last seen, and the count of events that
    /// resolve to the user (their own, those of users merged into them, and their anonymous
    /// events from before they identified).
    public static func user(_ params: UsersShow.Params, on connection: PostgresConnection) throws -> JSON {
        let (token, app) = try resolveApp(params.app, on: connection)
        let requested = params.user
        let person = try connection.resolvedPerson(requested, token: token)
        let user = person.userId
        guard
            let row = try connection.execute(
                """
                SELECT to_char(first_seen AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS first_seen, to_char(last_seen AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS last_seen,
                       traits::text, company_id
                FROM users WHERE app_token = $1 AND user_id = $2
                """,
                [token, user]
            ).firstRow
        else {
            throw ReportError.unknownUser(requested, app: app)
        }
        let aliases = try connection.execute(
            "SELECT alias_kind, alias_id, reason, to_char(aliased_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS since FROM identity_aliases WHERE app_token = $1 AND user_id = $2 ORDER BY aliased_at, alias_id",
            [token, user]
        ).namedRows
        let count = try connection.execute(
            """
            SELECT count(*) AS events FROM events WHERE app_token = $1
              AND (user_id = ANY($2::text[]) OR (user_id IS NULL AND anonymous_id = ANY($3::text[])))
            """,
            [token, PostgresArray.text(person.userIds), PostgresArray.text(person.anonymousIds)]
        ).firstRow?["events", as: Int64.self]
        let merges = try connection.execute(
            "SELECT from_user, to_char(merged_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS merged_at FROM identity_merges WHERE app_token = $1 AND into_user = $2 ORDER BY merged_at",
            [token, user]
        ).namedRows
        let sessions = try connection.execute(
            """
            SELECT session, to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS started_at,
                   to_char(ended_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS ended_at, events
            FROM user_sessions WHERE app_token = $1 AND person = $2 ORDER BY session
            """,
            [token, user]
        ).namedRows
        return [
            "user_id": .string(user), "requested": .string(requested),
            "first_seen": .optional(row["first_seen"]), "last_seen": .optional(row["last_seen"]),
            "traits": row["traits", as: JSON.self] ?? .object(JSONObject()),
            "company_id": .optional(row["company_id"]),
            "aliases": .array(
                aliases.map {
                    [
                        "kind": .optional($0["alias_kind"]), "id": .optional($0["alias_id"]), "reason": .optional($0["reason"]),
                        "since": .optional($0["since"]),
                    ]
                }
            ),
            "merged_from": .array(merges.map { ["user_id": .optional($0["from_user"]), "merged_at": .optional($0["merged_at"])] }),
            "sessions": .array(
                sessions.map {
                    [
                        "session": .int($0["session", as: Int64.self] ?? 0), "started_at": .optional($0["started_at"]),
                        "ended_at": .optional($0["ended_at"]), "events": .int($0["events", as: Int64.self] ?? 0),
                    ]
                }
            ),
            "events": .int(count ?? 0),
        ]
    }

    /// Traits, first and last seen, and members: users whose current company it is, and
    /// those seen with it before.
    public static func company(_ params: CompaniesShow.Params, on connection: PostgresConnection) throws -> JSON {
        let (token, app) = try resolveApp(params.app, on: connection)
        let company = params.company
        guard
            let row = try connection.execute(
                """
                SELECT to_char(first_seen AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS first_seen, to_char(last_seen AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS last_seen, traits::text
                FROM companies WHERE app_token = $1 AND company_id = $2
                """,
                [token, company]
            ).firstRow
        else {
            throw ReportError(.unknownCompany, "app '\(app)' has no company '\(company)'")
        }
        let members = try connection.execute(
            """
            SELECT m.user_id, u.company_id = m.company_id AS current,
                   to_char(m.first_seen AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS first_seen,
                   to_char(m.last_seen AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS last_seen
            FROM user_companies m JOIN users u ON u.app_token = m.app_token AND u.user_id = m.user_id
            WHERE m.app_token = $1 AND m.company_id = $2 AND u.merged_into IS NULL
            ORDER BY 2 DESC, m.user_id
            """,
            [token, company]
        ).namedRows
        return [
            "company_id": .string(company), "first_seen": .optional(row["first_seen"]), "last_seen": .optional(row["last_seen"]),
            "traits": row["traits", as: JSON.self] ?? .object(JSONObject()),
            "members": .array(
                members.map {
                    [
                        "user_id": .optional($0["user_id"]), "current": .bool($0["current", as: Bool.self] == true),
                        "first_seen": .optional($0["first_seen"]), "last_seen": .optional($0["last_seen"]),
                    ]
                }
            ),
        ]
    }

    private static func resolveApp(_ app: String, on connection: PostgresConnection) throws -> (token: String, app: String) {
        guard let token = try connection.appToken(for: app) else {
            throw ReportError.unknownApp(app)
        }
        return (token, app)
    }
}
