import CairnPostgres

/// The notifications that announce commits to the log's followers (`LISTEN`/`NOTIFY`; see
/// ``PostgresNotifications``). Each is sent inside the transaction it announces, so it reaches
/// listeners only if, and once, that transaction commits. The payload is the app's token.
public enum LogNotification {
    /// A write of an app's events: storage. Identity, continuous export and triggers wake.
    public static let events = "cairn_events"
    /// Identity state and links of an app moved (a folded span, a merge, an erasure):
    /// continuous export and triggers wake.
    public static let folded = "cairn_folded"
    /// A trigger of the app was added, removed, disabled or resumed: the trigger runner wakes.
    public static let triggers = "cairn_triggers"

    /// Announces `channel` for `app` when the current transaction commits.
    public static func announce(_ channel: String, app: String, on connection: PostgresConnection) throws(PostgresError) {
        try connection.execute("SELECT pg_notify($1, $2)", [channel, app])
    }
}
