import CairnCore

extension PostgresConnection {
    /// The token of the app named `app` (by token or name) in storage's `apps` table, or nil
    /// when there is no such app. Reports and exports accept either, as the CLI does.
    public func appToken(for app: String) throws(PostgresError) -> String? {
        try execute("SELECT token FROM apps WHERE token = $1 OR name = $1 ORDER BY token = $1 DESC LIMIT 1", [app]).firstRow?["token"]
    }
}

/// An app's retention window (`apps.retention`, an interval) read as whole months and days,
/// the form ``RetentionWindow`` is written back from.
public enum RetentionColumns {
    /// Select-list items of `apps`: `retention_months` and `retention_days`.
    public static let sql = """
        (extract(year FROM retention) * 12 + extract(month FROM retention))::int AS retention_months,
        extract(day FROM retention)::int AS retention_days
        """

    /// The window of a row selected with ``sql``; nil for `forever`.
    public static func window(in row: PostgresRow) -> RetentionWindow? {
        RetentionWindow(months: row["retention_months", as: Int.self] ?? 0, days: row["retention_days", as: Int.self] ?? 0)
    }
}
