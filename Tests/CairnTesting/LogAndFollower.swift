import CairnCore
import CairnIdentity
import CairnPostgres
import CairnRollups
import CairnStorage

extension EventWriter {
    /// What one write did before events became the log, for tests of what derives from them:
    /// writes `events`, then, in one transaction, applies the identity rows given beside them
    /// (deriving again the rollups of the people they move) and folds the rollups of every
    /// committed event up to the log's horizon, moving the follower's checkpoint. Identity is
    /// taken from the rows given, not derived from the events: the identity follower's own
    /// tests and the end-to-end tests cover that.
    ///
    /// On a schema older than the follower (a migration test), the rows are upserted alone.
    @discardableResult
    public func write(
        events: [CanonicalEvent],
        users: JSON,
        companies: JSON,
        memberships: JSON = .array([]),
        aliases: JSON = .array([]),
        sessions: JSON = .array([]),
        on connection: PostgresConnection
    ) throws -> Outcome {
        let outcome = try write(events: events, on: connection)
        let rows = IdentityFollower.IdentityRows(
            users: users.arrayValue ?? [],
            companies: companies.arrayValue ?? [],
            memberships: memberships.arrayValue ?? [],
            aliases: aliases.arrayValue ?? [],
            sessions: sessions.arrayValue ?? []
        )
        let followed =
            try connection.execute("SELECT to_regclass('follower_checkpoints') IS NOT NULL AS present").firstRow?["present", as: Bool.self] == true
        var apps = Set(events.map(\.appToken))
        for row in rows.users + rows.companies + rows.memberships + rows.aliases + rows.sessions {
            if let app = row["app_token"]?.stringValue { apps.insert(app) }
        }
        for app in apps.sorted() {
            let only = { (list: [JSON]) in list.filter { $0["app_token"]?.stringValue == app } }
            let appRows = IdentityFollower.IdentityRows(
                users: only(rows.users),
                companies: only(rows.companies),
                memberships: only(rows.memberships),
                aliases: only(rows.aliases),
                sessions: only(rows.sessions)
            )
            try connection.inTransaction { () throws in
                guard followed else {
                    try IdentityFollower.write(appRows, app: app, through: -1, on: connection, rollups: false)
                    return
                }
                try Rollups.lock(app: app, on: connection)
                let after = try FollowerCheckpoint.read(app: app, on: connection)
                try IdentityFollower.write(appRows, app: app, through: after, on: connection)
                let through = try LogHorizon.read(on: connection) - 1
                guard through > after else { return }
                try Rollups.fold(app: app, after: after, through: through, on: connection)
                try FollowerCheckpoint.advance(app: app, to: through, events: events.count, on: connection)
            }
        }
        return outcome
    }
}

/// Folds everything committed so far, as the identity service's follower does.
public func foldCommittedEvents(on connection: PostgresConnection) throws {
    try IdentityFollower(cache: SessionCache()).catchUp(on: connection)
}
