extension PostgresConnection {
    /// The token of the app named `app` (by token or name) in storage's `apps` table, or nil
    /// when there is no such app. Reports and exports accept either, as the CLI does.
    public func appToken(for app: String) throws(PostgresError) -> String? {
        try execute("SELECT token FROM apps WHERE token = $1 OR name = $1 ORDER BY token = $1 DESC LIMIT 1", [app]).firstRow?["token"]
    }
}
