import CairnCore
import CairnPostgres
import CairnRollups

/// How merges and erasures wait for the identity follower to fold an app's events: first the
/// backlog, holding no connection or thread (the service's threads also serve writes, and a
/// write of the app may be waiting for the erasure's lock); then, in the method's transaction,
/// whatever committed since, which is at most a moment's worth.
public enum FollowerWait {
    /// Long enough for a follower at its usual lag; short enough to answer within the method's deadline.
    public static let limit: Duration = .seconds(10)
    /// For what commits between the backlog's end and the method's lock.
    public static let underLock: Duration = .seconds(5)

    /// Waits out the app's backlog; an unknown app is left for the method to refuse.
    public static func awaitBacklog(app: String, pool: PostgresPool, limit: Duration = limit) async throws {
        guard let token = try await pool.withConnection({ connection in try connection.appToken(for: app) }) else { return }
        if let unfolded = try await FollowerCheckpoint.awaitFolded(app: token, limit: limit, pool: pool) {
            throw behind(unfolded, app: app)
        }
    }

    /// Waits, in the method's transaction, until every event committed so far is folded.
    static func awaitFolded(app token: String, name: String, limit: Duration, on connection: PostgresConnection) throws {
        if let unfolded = try FollowerCheckpoint.awaitFolded(app: token, limit: limit, on: connection) {
            throw behind(unfolded, app: name)
        }
    }

    static func behind(_ unfolded: Int64, app: String) -> StorageError {
        StorageError(
            .followerBehind,
            "the identity follower has \(unfolded) events of app '\(app)' still to fold; merges and erasures wait for it so that no identify escapes them. `cairn status` shows its lag; retry once it has caught up"
        )
    }
}
