import CairnCore
import CairnSQLite

/// Ingest's durable queue: accepted events wait here, in arrival order, until storage has
/// committed them; rejected records are kept as dead letters with the reason.
///
/// WAL with `synchronous=FULL`, so a batch whose transaction returned survives a crash or a
/// power cut: that is the moment ingest may acknowledge.
public final class Spool: Sendable {
    private let database: SQLiteDatabase

    /// One record ingest refused, kept with why.
    public struct DeadLetter: Sendable {
        public var app: String
        public var origin: String
        /// Where it came from: a file name, `http`, or `forwarder`.
        public var source: String
        /// The 1-based line or element number in `source`, when known.
        public var record: Int?
        public var error: EventError
        public var raw: [UInt8]

        public init(app: String, origin: String, source: String, record: Int?, error: EventError, raw: [UInt8]) {
            self.app = app
            self.origin = origin
            self.source = source
            self.record = record
            self.error = error
            self.raw = raw
        }
    }

    /// One spooled event awaiting delivery.
    public struct Entry: Sendable {
        public var sequence: Int64
        /// The canonical event's JSON text.
        public var event: [UInt8]
    }

    public init(path: String) throws(SQLiteError) {
        database = try SQLiteDatabase(path: path)
        try database.withConnection { (connection) throws(SQLiteError) in
            try connection.execute("""
                PRAGMA journal_mode = WAL;
                PRAGMA synchronous = FULL;
                CREATE TABLE IF NOT EXISTS spool (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    app TEXT NOT NULL,
                    event BLOB NOT NULL
                );
                CREATE TABLE IF NOT EXISTS dead_letters (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    received_at TEXT NOT NULL,
                    app TEXT NOT NULL,
                    origin TEXT NOT NULL,
                    source TEXT NOT NULL,
                    record INTEGER,
                    error_code TEXT NOT NULL,
                    error_field TEXT,
                    error_message TEXT NOT NULL,
                    raw BLOB NOT NULL
                );
                """)
        }
    }

    /// Appends accepted events and dead letters in one durable transaction.
    public func append(events: [CanonicalEvent], deadLetters: [DeadLetter]) throws(SQLiteError) {
        guard !events.isEmpty || !deadLetters.isEmpty else { return }
        let now = Timestamp.now().description
        try database.transaction { (connection) throws(SQLiteError) in
            try connection.executeMany(
                "INSERT INTO spool (app, event) VALUES (?1, ?2)",
                events.lazy.map { [.text($0.appToken), .blob($0.json.serialized())] })
            try Self.insert(deadLetters, receivedAt: now, on: connection)
        }
    }

    /// The oldest `limit` entries.
    public func peek(limit: Int) throws(SQLiteError) -> [Entry] {
        try database.withConnection { (connection) throws(SQLiteError) -> [Entry] in
            var entries: [Entry] = []
            try connection.query("SELECT seq, event FROM spool ORDER BY seq LIMIT ?1", [.integer(Int64(limit))]) { row in
                entries.append(Entry(sequence: row.integer(0), event: row.blob(1)))
            }
            return entries
        }
    }

    /// Removes delivered entries and, in the same transaction, turns the ones storage refused
    /// into dead letters.
    public func complete(sequences: [Int64], refused: [(sequence: Int64, deadLetter: DeadLetter)]) throws(SQLiteError) {
        let now = Timestamp.now().description
        try database.transaction { (connection) throws(SQLiteError) in
            try Self.insert(refused.map(\.deadLetter), receivedAt: now, on: connection)
            try connection.executeMany("DELETE FROM spool WHERE seq = ?1", sequences.lazy.map { [.integer($0)] })
        }
    }

    public func depth() throws(SQLiteError) -> Int64 {
        try count("SELECT count(*) FROM spool")
    }

    public func deadLetterCount() throws(SQLiteError) -> Int64 {
        try count("SELECT count(*) FROM dead_letters")
    }

    /// The newest dead letters, optionally for one app, newest first.
    public func deadLetters(app: String?, limit: Int) throws(SQLiteError) -> [JSON] {
        try database.withConnection { (connection) throws(SQLiteError) -> [JSON] in
            var rows: [JSON] = []
            let sql = """
                SELECT id, received_at, app, origin, source, record, error_code, error_field, error_message, raw
                FROM dead_letters WHERE (?1 IS NULL OR app = ?1) ORDER BY id DESC LIMIT ?2
                """
            try connection.query(sql, [app.map(SQLiteValue.text) ?? .null, .integer(Int64(limit))]) { row in
                rows.append([
                    "id": .int(row.integer(0)), "received_at": .optional(row.text(1)), "app": .optional(row.text(2)),
                    "origin": .optional(row.text(3)), "source": .optional(row.text(4)),
                    "record": row.isNull(5) ? .null : .int(row.integer(5)), "code": .optional(row.text(6)),
                    "field": .optional(row.text(7)), "message": .optional(row.text(8)),
                    "raw": .string(String(decoding: row.blob(9), as: UTF8.self)),
                ])
            }
            return rows
        }
    }

    private func count(_ sql: String) throws(SQLiteError) -> Int64 {
        try database.withConnection { (connection) throws(SQLiteError) -> Int64 in
            var value: Int64 = 0
            try connection.query(sql) { row in value = row.integer(0) }
            return value
        }
    }

    private static func insert(_ deadLetters: [DeadLetter], receivedAt: String, on connection: borrowing SQLiteDatabase.Connection) throws(SQLiteError) {
        guard !deadLetters.isEmpty else { return }
        try connection.executeMany(
            """
            INSERT INTO dead_letters (received_at, app, origin, source, record, error_code, error_field, error_message, raw)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
            """,
            deadLetters.lazy.map { letter in
                [.text(receivedAt), .text(letter.app), .text(letter.origin), .text(letter.source),
                 letter.record.map { .integer(Int64($0)) } ?? .null, .text(letter.error.code.rawValue),
                 letter.error.field.map(SQLiteValue.text) ?? .null, .text(letter.error.message), .blob(letter.raw)]
            })
    }
}
