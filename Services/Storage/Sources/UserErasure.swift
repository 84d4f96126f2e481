import CairnCore
import CairnMethods
import CairnPostgres
import CairnRollups
import CairnWire

/// `users.delete {app, user}`: the right-to-erasure path in PostgreSQL. In one transaction it
/// removes the user, every user merged into them, their anonymous ids, traits, memberships,
/// sessions and all their events, and records suppressions so that later events naming any
/// of those ids are dropped (and counted) by the write path. It holds the app's writes back
/// (``Rollups/lockWrites``) and waits for the identity follower to fold what they committed,
/// so an id linked by an identify that is not folded yet is erased too. The service waits
/// out the follower's backlog first (``FollowerWait/awaitBacklog``), so the wait here is short.
///
/// Result: what was removed, and the ids suppressed (ingest purges its spool and dead
/// letters of them next).
public enum UserErasure {
    public static func delete(
        _ params: UsersDelete.Params,
        on connection: PostgresConnection,
        followerWait: Duration = FollowerWait.underLock
    ) throws -> JSON {
        let (app, requested) = (params.app, params.user)
        guard let token = try connection.appToken(for: app) else {
            throw StorageError.unknownApp(app)
        }
        return try connection.inTransaction { () throws -> JSON in
            // Every id the person's identifies and aliases link must be folded into the aliases
            // read below: with the app's writes held back, the events committed until now.
            try Rollups.lockWrites(app: token, exclusive: true, on: connection)
            try FollowerWait.awaitFolded(app: token, name: app, limit: followerWait, on: connection)
            // The identity follower folds under the same lock: nothing of the person is folded after this.
            try Rollups.lock(app: token, on: connection)
            let through = try FollowerCheckpoint.read(app: token, on: connection)
            let person = try connection.resolvedPerson(requested, token: token)
            let (user, userIds, anonymousIds) = (person.userId, person.userIds, person.anonymousIds)
            let known = try connection.execute("SELECT 1 FROM users WHERE app_token = $1 AND user_id = $2", [token, user]).rows
            guard !known.isEmpty || person.hasAliases else {
                throw StorageError.unknownUser(requested, app: app)
            }
            let users = PostgresArray.text(userIds)
            let anonymous = PostgresArray.text(anonymousIds)
            let persons = PostgresArray.text(userIds + anonymousIds.map { "anonymous:" + $0 })
            func count(_ sql: String, _ parameters: [String?]) throws(PostgresError) -> Int64 {
                Int64(try connection.execute(sql, parameters).affectedRows)
            }
            // The counting rollups lose the deleted events they counted; the person rollups of
            // everyone they resolved to are derived again once the aliases are gone.
            let rederive = try connection.execute(
                """
                SELECT DISTINCT person FROM (\(Rollups.resolved(where: """
                    e.app_token = $1 AND (e.user_id = ANY($2::text[]) OR (e.user_id IS NULL AND e.anonymous_id = ANY($3::text[])))
                    """))) AS resolved
                """,
                [token, users, anonymous]
            ).namedRows.compactMap { $0["person"] }
            let events = Int64(
                try Rollups.subtractDeleted(
                    app: token,
                    deletedSQL: """
                        DELETE FROM events WHERE app_token = $1
                          AND (user_id = ANY($2::text[]) OR (user_id IS NULL AND anonymous_id = ANY($3::text[])))
                        RETURNING event_type, event_name, inserted_at, internal_event_id, stored_xid
                        """,
                    parameters: [token, users, anonymous],
                    through: through,
                    on: connection
                )
            )
            let userRows = try count(
                "DELETE FROM users WHERE app_token = $1 AND (user_id = ANY($2::text[]) OR merged_into = ANY($2::text[]))",
                [token, users]
            )
            let memberships = try count("DELETE FROM user_companies WHERE app_token = $1 AND user_id = ANY($2::text[])", [token, users])
            let aliases = try count(
                "DELETE FROM identity_aliases WHERE app_token = $1 AND (user_id = ANY($2::text[]) OR alias_id = ANY($2::text[]) OR alias_id = ANY($3::text[]))",
                [token, users, anonymous]
            )
            let merges = try count(
                "DELETE FROM identity_merges WHERE app_token = $1 AND (into_user = ANY($2::text[]) OR from_user = ANY($2::text[]))",
                [token, users]
            )
            try Rollups.refresh(
                app: token,
                persons: Array(Set(rederive + userIds + anonymousIds.map { "anonymous:" + $0 })),
                through: through,
                on: connection
            )
            let sessions = try count("DELETE FROM user_sessions WHERE app_token = $1 AND person = ANY($2::text[])", [token, persons])
            // Triggers' waiting and parked deliveries name the person.
            let deliveries = try count("DELETE FROM trigger_deliveries WHERE app_token = $1 AND person = ANY($2::text[])", [token, persons])
            try connection.execute(
                """
                INSERT INTO suppressions (app_token, kind, id)
                SELECT $1, 'user', unnest($2::text[]) UNION ALL SELECT $1, 'anonymous', unnest($3::text[])
                ON CONFLICT DO NOTHING
                """,
                [token, users, anonymous]
            )
            return [
                "app_token": .string(token), "user": .string(user),
                "user_ids": .array(userIds.map(JSON.string)), "anonymous_ids": .array(anonymousIds.map(JSON.string)),
                "removed": [
                    "events": .int(events), "users": .int(userRows), "aliases": .int(aliases), "memberships": .int(memberships),
                    "sessions": .int(sessions), "merges": .int(merges), "trigger_deliveries": .int(deliveries),
                ],
            ]
        }
    }
}
