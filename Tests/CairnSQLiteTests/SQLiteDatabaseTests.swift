import CairnSQLite
import Foundation
import Testing

@Suite struct SQLiteDatabaseTests {
    func temporaryPath() -> String { "/tmp/cairn-sqlite-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sqlite" }

    @Test func bindsAndReadsEveryType() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let database = try SQLiteDatabase(path: path)
        try database.withConnection { (connection) throws(SQLiteError) in
            try connection.execute("CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, n TEXT)")
            try connection.executeMany(
                "INSERT INTO t VALUES (?1, ?2, ?3, ?4, ?5)",
                [[.integer(42), .real(1.5), .text("it's \"quoted\""), .blob([0, 1, 255]), .null]]
            )
            var seen = 0
            try connection.query("SELECT i, r, s, b, n FROM t WHERE s = ?1", [.text("it's \"quoted\"")]) { row in
                seen += 1
                let (integer, real, text, blob, isNull) = (row.integer("i"), row.real("r"), row.text("s"), row.blob("b"), row.isNull("n"))
                #expect(integer == 42)
                #expect(real == 1.5)
                #expect(text == "it's \"quoted\"")
                #expect(blob == [0, 1, 255])
                #expect(isNull)
            }
            #expect(seen == 1)
        }
    }

    @Test func transactionsRollBackOnError() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let database = try SQLiteDatabase(path: path)
        try database.withConnection { (connection) throws(SQLiteError) in try connection.execute("CREATE TABLE t (a INTEGER PRIMARY KEY)") }
        #expect(throws: SQLiteError.self) {
            try database.transaction { (connection) throws(SQLiteError) in
                try connection.executeMany("INSERT INTO t VALUES (?1)", [[.integer(1)], [.integer(1)]])
            }
        }
        var count: Int64 = -1
        try database.withConnection { (connection) throws(SQLiteError) in
            try connection.query("SELECT count(*) AS n FROM t") { row in count = row.integer("n") }
        }
        #expect(count == 0)
    }

    @Test func badSQLIsAnErrorNotACrash() throws {
        let database = try SQLiteDatabase(path: ":memory:")
        #expect(throws: SQLiteError.self) {
            try database.withConnection { (connection) throws(SQLiteError) in try connection.execute("SELEC nonsense") }
        }
        #expect(throws: SQLiteError.self) { _ = try SQLiteDatabase(path: "/nonexistent-dir/x.sqlite") }
    }
}
