import CairnCore
import CairnPostgres
import CairnTesting
import Testing

@Suite struct PostgresConnectionTests {
    /// An array literal escapes by Unicode scalar: a quote or backslash followed by a combining
    /// mark is one Swift Character, but still a quote to PostgreSQL.
    @Test func arrayLiteralsKeepEveryIdExactly() throws {
        let connection = try PostgresConnection(conninfo: try TestPostgres.freshDatabase())
        let ids = ["x\"\u{301}y", "a\\\u{301}b", "plain", "ann\u{e9}", "anne\u{301}", ""]
        let rows = try connection.execute("SELECT unnest($1::text[])", [PostgresArray.text(ids)]).rows
        #expect(rows.map { $0[0] ?? "NULL" }.map { Array($0.utf8) } == ids.map { Array($0.utf8) })
    }

    /// A parameter holding NUL is refused, never cut short at it (libpq reads C strings: "a\0b"
    /// would reach the server as "a"), and the connection stays usable.
    @Test func aParameterWithANulIsRefusedNotTruncated() throws {
        let connection = try PostgresConnection(conninfo: try TestPostgres.freshDatabase())
        #expect(throws: PostgresError.self) { try connection.execute("SELECT $1::text AS v", ["a\u{0}b"]) }
        #expect(throws: PostgresError.self) { try connection.execute("SELECT $1::text AS v, $2::text AS w", ["ok", "\u{0}"]) }
        #expect(try connection.execute("SELECT $1::text AS v", ["a b"]).firstRow?["v"] == "a b")
    }

    /// Rows are read by column name and decoded to the type asked for; NULL and text that is
    /// not of that type read as nil.
    @Test func rowsReadByNameAndType() throws {
        let connection = try PostgresConnection(conninfo: try TestPostgres.freshDatabase())
        try connection.execute("SET TimeZone = 'UTC'")
        let row = try #require(
            try connection.execute(
                """
                SELECT 42::bigint AS n, 2.5::float8 AS lag_s, true AS on, false AS off, '2024-05-01T08:00:00Z'::timestamptz AS at,
                       '{"a": [1, "x"]}'::jsonb AS doc, NULL::text AS missing, 'seven' AS word
                """
            ).firstRow
        )
        #expect(row["n", as: Int64.self] == 42)
        #expect(row["n", as: Int.self] == 42)
        #expect(row["lag_s", as: Double.self] == 2.5)
        #expect(row["on", as: Bool.self] == true)
        #expect(row["off", as: Bool.self] == false)
        #expect(row["at", as: Timestamp.self] == Timestamp(parsing: "2024-05-01T08:00:00Z"))
        #expect(row["doc", as: JSON.self] == ["a": [1, "x"]])
        #expect(row["missing"] == nil)
        #expect(row["missing", as: Int.self] == nil)
        #expect(row["word", as: Int.self] == nil)
        #expect(row["word"] == "seven")
        #expect(row.has("word") && !row.has("nothing"))
        let named = try connection.execute("SELECT g AS value FROM generate_series(1, 3) g").namedRows
        #expect(named.compactMap { $0["value", as: Int.self] } == [1, 2, 3])
        #expect(try connection.execute("SELECT 1 AS one WHERE false").firstRow == nil)
    }

    @Test func bindsParametersNeverSplicesThem() throws {
        let connection = try PostgresConnection(conninfo: try TestPostgres.freshDatabase())
        try connection.execute("CREATE TABLE t (name text, n integer)")
        let hostile = "x'); DROP TABLE t; --"
        try connection.execute("INSERT INTO t VALUES ($1, $2)", [hostile, "7"])
        try connection.execute("INSERT INTO t VALUES ($1, $2)", [nil, nil])
        let rows = try connection.execute("SELECT name, n FROM t ORDER BY n NULLS LAST").rows
        #expect(rows.count == 2)
        #expect(rows[0] == [hostile, "7"])
        #expect(rows[1] == [nil, nil])
    }

    @Test func copiesRowsInAndReportsTheCount() throws {
        let connection = try PostgresConnection(conninfo: try TestPostgres.freshDatabase())
        try connection.execute("CREATE TABLE t (a text, b integer)")
        let copied = try connection.copyIn("COPY t (a, b) FROM STDIN", data: Array("one\t1\ntwo\\tTab\t2\n\\N\t3\n".utf8))
        #expect(copied == 3)
        let rows = try connection.execute("SELECT a FROM t ORDER BY b").rows
        #expect(rows.map { $0[0] } == ["one", "two\tTab", nil])
    }

    @Test func badCopyDataFailsCleanlyAndTheConnectionStaysUsable() throws {
        let connection = try PostgresConnection(conninfo: try TestPostgres.freshDatabase())
        try connection.execute("CREATE TABLE t (a integer)")
        #expect(throws: PostgresError.self) { try connection.copyIn("COPY t (a) FROM STDIN", data: Array("not-a-number\n".utf8)) }
        #expect(try connection.execute("SELECT count(*) FROM t").rows[0][0] == "0")
    }

    @Test func transactionsRollBackOnError() throws {
        let connection = try PostgresConnection(conninfo: try TestPostgres.freshDatabase())
        try connection.execute("CREATE TABLE t (a integer PRIMARY KEY)")
        #expect(throws: PostgresError.self) {
            try connection.transaction { () throws(PostgresError) in
                try connection.execute("INSERT INTO t VALUES (1)")
                try connection.execute("INSERT INTO t VALUES (1)")
            }
        }
        #expect(try connection.execute("SELECT count(*) FROM t").rows[0][0] == "0")
    }

    @Test func queryErrorsCarryTheSQLState() throws {
        let connection = try PostgresConnection(conninfo: try TestPostgres.freshDatabase())
        do {
            try connection.execute("SELECT * FROM no_such_table")
            Issue.record("expected an error")
        } catch {
            #expect(error.code == .queryFailed)
            #expect(error.sqlState == "42P01")
        }
    }

    @Test func anUnreachableServerIsOneClearMessage() {
        do {
            _ = try PostgresConnection(conninfo: "host=/nonexistent/dir port=5999 dbname=x user=y password=secret connect_timeout=1")
            Issue.record("expected an error")
        } catch {
            #expect(error.code == .unavailable)
            #expect(error.message.hasPrefix("cannot connect to PostgreSQL"))
            #expect(!error.message.contains("secret"))
            #expect(!error.message.contains("\n"))
        }
    }

    @Test func redactsPasswords() {
        #expect(PostgresConfiguration.redacted("postgresql://u:hunter2@db/x") == "postgresql://u:***@db/x")
        #expect(PostgresConfiguration.redacted("host=db password=hunter2 dbname=x") == "host=db password=*** dbname=x")
        #expect(PostgresConfiguration.redacted("postgresql://db/x?password=hunter2&sslmode=off") == "postgresql://db/x?password=***&sslmode=off")
    }

    @Test func poolRunsOnThreadsAndReconnects() async throws {
        let pool = PostgresPool(conninfo: try TestPostgres.freshDatabase())
        let values = try await withThrowingTaskGroup(of: String?.self) { group in
            for n in 0..<8 {
                group.addTask { try await pool.withConnection { try $0.execute("SELECT $1::int * 2", [String(n)]).rows[0][0] } }
            }
            var all: [String] = []
            for try await value in group { all.append(value ?? "") }
            return all.sorted { Int($0)! < Int($1)! }
        }
        #expect(values == (0..<8).map { String($0 * 2) })
        // A connection killed server-side is dropped, and the next call reconnects.
        _ = try await pool.withConnection { connection in
            _ = try? connection.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        }
        let after = try await pool.withConnection { try $0.execute("SELECT 1").rows[0][0] }
        #expect(after == "1")
    }
}
