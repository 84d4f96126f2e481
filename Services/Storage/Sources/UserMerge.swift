import CairnCore
import CairnMethods
import CairnPostgres
import CairnRollups
import CairnWire

/// `users.merge {app, from, into}`: the explicit merge of two identified users (PostHog's
/// "merge dangerously"), the only way two identified users become one.
///
/// In one transaction: `from` (and every id already resolving to it) now resolves to the
/// final target of `into`; the target's traits win conflicts, `from`'s fill the gaps; first
/// and last seen widen; the merge is logged. Merges are transitive (aliases stay flat) and
/// repeating one changes nothing.
public enum UserMerge {
    public static func merge(
        _ params: UsersMerge.Params,
        on connection: PostgresConnection,
        followerWait: Duration = FollowerWait.underLock
    ) throws -> JSON {
        let (app, from, into) = (params.app, params.from, params.into)
        guard let token = try connection.appToken(for: app) else {
            throw StorageError.unknownApp(app)
        }
        return try connection.inTransaction { () throws -> JSON in
            // Both users' identifies and traits must be folded before they are read below.
            try FollowerWait.awaitFolded(app: token, name: app, limit: followerWait, on: connection)
            // The identity follower folds under the same lock: the rollups move with the aliases.
            try Rollups.lock(app: token, on: connection)
            let source = try connection.survivingUser(from, token: token)
            let target = try connection.survivingUser(into, token: token)
            for user in [from, into] {
                let exists = try connection.execute("SELECT 1 FROM users WHERE app_token = $1 AND user_id = $2", [token, user]).rows
                guard !exists.isEmpty else { throw StorageError.unknownUser(user, app: app) }
            }
            if source == target {
                return [
                    "app_token": .string(token), "from": .string(from), "into": .string(target), "merged": false, "note": "already the same user",
                ]
            }
            try connection.execute(
                """
                INSERT INTO identity_aliases (app_token, alias_kind, alias_id, user_id, aliased_at, reason)
                VALUES ($1, 'user', $2, $3, now(), 'merge')
                ON CONFLICT (app_token, alias_kind, alias_id) DO UPDATE SET user_id = EXCLUDED.user_id, reason = 'merge', stored_xid = cairn_xid()
                """,
                [token, source, target]
            )
            try LogNotification.announce(LogNotification.folded, app: token, on: connection)
            // Keep aliases flat: whatever resolved to the source now resolves to the target.
            let moved = try connection.execute(
                "UPDATE identity_aliases SET user_id = $3 WHERE app_token = $1 AND user_id = $2",
                [token, source, target]
            ).affectedRows
            try connection.execute(
                """
                UPDATE users t SET
                    traits = f.traits || t.traits,
                    trait_times = f.trait_times || t.trait_times,
                    first_seen = LEAST(t.first_seen, f.first_seen),
                    last_seen = GREATEST(t.last_seen, f.last_seen)
                FROM users f
                WHERE t.app_token = $1 AND t.user_id = $3 AND f.app_token = $1 AND f.user_id = $2
                """,
                [token, source, target]
            )
            try connection.execute(
                "UPDATE users SET merged_into = $3 WHERE app_token = $1 AND (user_id = $2 OR merged_into = $2)",
                [token, source, target]
            )
            try connection.execute(
                """
                INSERT INTO identity_merges (app_token, from_user, into_user) VALUES ($1, $2, $3)
                ON CONFLICT (app_token, from_user) DO UPDATE SET into_user = EXCLUDED.into_user, merged_at = now()
                """,
                [token, source, target]
            )
            // Everyone whose events resolved to either user is derived again, as of the follower's checkpoint.
            let through = try FollowerCheckpoint.read(app: token, on: connection)
            try Rollups.refresh(app: token, persons: [source, target], through: through, on: connection)
            return [
                "app_token": .string(token), "from": .string(source), "into": .string(target), "merged": true, "aliases_moved": .int(Int64(moved)),
            ]
        }
    }
}
