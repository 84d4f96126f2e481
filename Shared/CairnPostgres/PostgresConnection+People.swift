/// One person as identity resolved them: the user any merged id now points to, and every id
/// whose events are theirs. Reports, the user view and erasure all select a person's events
/// through this, so they agree on who someone is.
public struct ResolvedPerson: Sendable, Equatable {
    /// The surviving user id (the requested one when it was never merged away).
    public var userId: String
    /// `userId` first, then every user merged into it.
    public var userIds: [String]
    /// Anonymous ids identity tied to the user.
    public var anonymousIds: [String]

    /// Whether identity has recorded any alias (merged user or anonymous id) for the user.
    public var hasAliases: Bool { userIds.count > 1 || !anonymousIds.isEmpty }
}

extension PostgresConnection {
    /// The user `user` was merged into, or `user` itself, in storage's `identity_aliases`.
    public func survivingUser(_ user: String, token: String) throws(PostgresError) -> String {
        try execute(
            "SELECT user_id FROM identity_aliases WHERE app_token = $1 AND alias_kind = 'user' AND alias_id = $2",
            [token, user]
        ).firstRow?["user_id"] ?? user
    }

    /// The surviving user of `user` and all the ids that are theirs.
    public func resolvedPerson(_ user: String, token: String) throws(PostgresError) -> ResolvedPerson {
        let survivor = try survivingUser(user, token: token)
        let aliases = try execute("SELECT alias_kind, alias_id FROM identity_aliases WHERE app_token = $1 AND user_id = $2", [token, survivor])
            .namedRows
        return ResolvedPerson(
            userId: survivor,
            userIds: [survivor] + aliases.filter { $0["alias_kind"] == "user" }.compactMap { $0["alias_id"] },
            anonymousIds: aliases.filter { $0["alias_kind"] == "anonymous" }.compactMap { $0["alias_id"] }
        )
    }
}
