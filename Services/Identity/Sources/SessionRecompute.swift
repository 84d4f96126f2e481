import CairnCore
import CairnPostgres

/// Recomputes persons' sessions from their events at or below the checkpoint, replacing what
/// is stored: after a merge or an erasure (`identity.refresh`), and for a session that spans a
/// retention cutoff.
enum SessionRecompute {
    /// Replaces the sessions of `persons` with those their events make, and removes those of
    /// `forget`; returns the persons' histories, for the session cache once committed.
    static func recompute(
        app: String,
        persons: [String],
        forget: [String] = [],
        through: Int64,
        on connection: PostgresConnection
    ) throws -> [String: SessionHistory] {
        guard !persons.isEmpty || !forget.isEmpty else { return [:] }
        var rows: [JSON] = forget.map { ["app_token": .string(app), "person": .string($0), "sessions": .array([])] }
        var histories: [String: SessionHistory] = [:]
        if !persons.isEmpty {
            let context = try IdentityContext.load(.init(app_token: app, user_ids: persons, through: through), on: connection)
            let sessionizer = Sessionizer(
                inactivity: .seconds(context["inactivity_s"]?.intValue ?? 1800),
                maximumLength: .seconds(context["max_length_s"]?.intValue ?? 86400)
            )
            for person in persons {
                let history = SessionHistory(
                    points: (context["histories"]?[person]?.arrayValue ?? []).compactMap(\.intValue).map(Sessionizer.Point.init(packed:))
                )
                histories[person] = history
                rows.append([
                    "app_token": .string(app), "person": .string(person),
                    "sessions": .array(sessionizer.sessions(of: history.points).map(\.json)),
                ])
            }
        }
        try IdentityWriter(app: app, connection: connection).replaceSessions(rows)
        return histories
    }
}
