import CSQLite3
import Synchronization

/// The libsqlite3 destructor constant, which Swift cannot import because it is a cast macro.
private let SQLITE_TRANSIENT = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

/// A value bound to, or read from, an SQLite statement.
public enum SQLiteValue: Sendable, Equatable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])
}

/// One SQLite database connection.
///
/// The handle is used by one thread at a time: every access goes through ``withConnection(_:)``,
/// which holds a lock. Callers keep statements inside that closure.
public final class SQLiteDatabase: Sendable {
    private let handle: Mutex<Connection>

    /// Opens (creating if needed) the database at `path`.
    public init(path: String) throws(SQLiteError) {
        var db: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        let status = sqlite3_open_v2(path, &db, flags, nil)
        guard status == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close(db)
            throw SQLiteError(.openFailed, "cannot open \(path): \(message)")
        }
        sqlite3_busy_timeout(db, 5_000)
        handle = Mutex(Connection(db: db))
    }

    deinit {
        _ = handle.withLock { sqlite3_close_v2($0.db) }
    }

    /// Runs `body` with exclusive use of the connection.
    public func withConnection<T>(_ body: (borrowing Connection) throws(SQLiteError) -> T) throws(SQLiteError) -> T {
        try handle.withLock { (connection) throws(SQLiteError) -> T in try body(connection) }
    }

    /// Runs `body` inside `BEGIN IMMEDIATE … COMMIT`, rolling back if it throws.
    public func transaction<T>(_ body: (borrowing Connection) throws(SQLiteError) -> T) throws(SQLiteError) -> T {
        try withConnection { (connection) throws(SQLiteError) -> T in
            try connection.execute("BEGIN IMMEDIATE")
            let result: T
            do throws(SQLiteError) {
                result = try body(connection)
                try connection.execute("COMMIT")
            } catch {
                try? connection.execute("ROLLBACK")
                throw error
            }
            return result
        }
    }

    /// A raw connection handle, only reachable inside ``withConnection(_:)``.
    public struct Connection: ~Copyable, @unchecked Sendable {
        let db: OpaquePointer

        /// Runs one or more statements that bind nothing and return nothing.
        public func execute(_ sql: String) throws(SQLiteError) {
            var message: UnsafeMutablePointer<CChar>?
            let status = sqlite3_exec(db, sql, nil, nil, &message)
            if status != SQLITE_OK {
                let text = message.map { String(cString: $0) } ?? String(cString: sqlite3_errmsg(db))
                sqlite3_free(message)
                throw SQLiteError(code(status), text)
            }
        }

        /// Prepares `sql`, binds `parameters` (1-based, in order) and calls `row` for each result row.
        public func query(
            _ sql: String,
            _ parameters: [SQLiteValue] = [],
            row: (borrowing Row) throws(SQLiteError) -> Void = { _ in }
        ) throws(SQLiteError) {
            let statement = try prepare(sql)
            defer { sqlite3_finalize(statement) }
            try bind(statement, parameters)
            while true {
                let status = sqlite3_step(statement)
                if status == SQLITE_DONE { return }
                guard status == SQLITE_ROW else { throw SQLiteError(code(status), String(cString: sqlite3_errmsg(db))) }
                try row(Row(statement: statement))
            }
        }

        /// Runs `sql` once per parameter list, reusing one prepared statement.
        public func executeMany(_ sql: String, _ parameterLists: some Sequence<[SQLiteValue]>) throws(SQLiteError) {
            try executeEach(sql, parameterLists) { _, _ in }
        }

        /// Runs `sql` once per parameter list on one prepared statement, telling `changed` how
        /// many rows each run changed (0 for an `INSERT OR IGNORE` that hit an existing key).
        public func executeEach(_ sql: String, _ parameterLists: some Sequence<[SQLiteValue]>, changed: (Int, Int) -> Void) throws(SQLiteError) {
            let statement = try prepare(sql)
            defer { sqlite3_finalize(statement) }
            for (index, parameters) in parameterLists.enumerated() {
                sqlite3_reset(statement)
                sqlite3_clear_bindings(statement)
                try bind(statement, parameters)
                let status = sqlite3_step(statement)
                guard status == SQLITE_DONE || status == SQLITE_ROW else {
                    throw SQLiteError(code(status), String(cString: sqlite3_errmsg(db)))
                }
                changed(index, Int(sqlite3_changes(db)))
            }
        }

        /// Rows changed by the last statement.
        public var changes: Int { Int(sqlite3_changes(db)) }

        public var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(db) }

        private func prepare(_ sql: String) throws(SQLiteError) -> OpaquePointer {
            var statement: OpaquePointer?
            let status = sqlite3_prepare_v2(db, sql, -1, &statement, nil)
            guard status == SQLITE_OK, let statement else {
                throw SQLiteError(code(status), "\(String(cString: sqlite3_errmsg(db))) in: \(sql)")
            }
            return statement
        }

        private func bind(_ statement: OpaquePointer, _ parameters: [SQLiteValue]) throws(SQLiteError) {
            for (offset, value) in parameters.enumerated() {
                let index = Int32(offset + 1)
                let status: Int32
                switch value {
                case .null: status = sqlite3_bind_null(statement, index)
                case .integer(let number): status = sqlite3_bind_int64(statement, index, number)
                case .real(let number): status = sqlite3_bind_double(statement, index, number)
                case .text(let text): status = sqlite3_bind_text(statement, index, text, -1, SQLITE_TRANSIENT)
                case .blob(let bytes):
                    status = bytes.withUnsafeBytes { buffer in
                        sqlite3_bind_blob64(
                            statement,
                            index,
                            buffer.baseAddress ?? UnsafeRawPointer(bitPattern: 1),
                            sqlite3_uint64(buffer.count),
                            SQLITE_TRANSIENT
                        )
                    }
                }
                guard status == SQLITE_OK else { throw SQLiteError(code(status), String(cString: sqlite3_errmsg(db))) }
            }
        }

        private func code(_ status: Int32) -> SQLiteError.Code {
            switch status & 0xFF {
            case SQLITE_FULL: return .diskFull
            case SQLITE_BUSY, SQLITE_LOCKED: return .busy
            case SQLITE_IOERR, SQLITE_CANTOPEN: return .ioError
            case SQLITE_CORRUPT, SQLITE_NOTADB: return .corrupt
            default: return .statementFailed
            }
        }
    }

    /// One result row; valid only inside the `row` closure of ``Connection/query(_:_:row:)``.
    /// Read by column name (`row.integer("seq")`), so a reordered select list cannot shift a
    /// value into the wrong field.
    public struct Row: ~Copyable {
        let statement: OpaquePointer

        public func integer(_ column: String) -> Int64 { integer(position(column)) }
        public func real(_ column: String) -> Double { real(position(column)) }
        public func isNull(_ column: String) -> Bool { isNull(position(column)) }
        public func text(_ column: String) -> String? { text(position(column)) }
        public func blob(_ column: String) -> [UInt8] { blob(position(column)) }

        /// The position of the column the query names `name`. A name it does not select is a
        /// programming error: debug builds stop on it; release builds read column -1 (NULL).
        private func position(_ name: String) -> Int {
            let count = sqlite3_column_count(statement)
            var found: Int?
            for column in 0..<count where sqlite3_column_name(statement, column).map({ String(cString: $0) }) == name {
                found = Int(column)
                break
            }
            guard let found else {
                assertionFailure("the query selects no column named '\(name)'")
                return -1
            }
            return found
        }

        func integer(_ column: Int) -> Int64 { sqlite3_column_int64(statement, Int32(column)) }
        func real(_ column: Int) -> Double { sqlite3_column_double(statement, Int32(column)) }
        func isNull(_ column: Int) -> Bool { sqlite3_column_type(statement, Int32(column)) == SQLITE_NULL }

        func text(_ column: Int) -> String? {
            guard let pointer = sqlite3_column_text(statement, Int32(column)) else { return nil }
            return String(cString: pointer)
        }

        func blob(_ column: Int) -> [UInt8] {
            let count = Int(sqlite3_column_bytes(statement, Int32(column)))
            guard count > 0, let pointer = sqlite3_column_blob(statement, Int32(column)) else { return [] }
            return Array(UnsafeRawBufferPointer(start: pointer, count: count))
        }
    }
}

/// An SQLite failure with a stable code.
public struct SQLiteError: Error, Sendable, CustomStringConvertible {
    public struct Code: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        public static let openFailed = Code(rawValue: "sqlite_open_failed")
        public static let statementFailed = Code(rawValue: "sqlite_statement_failed")
        /// The disk or file system is full: callers must refuse new work rather than acknowledge it.
        public static let diskFull = Code(rawValue: "sqlite_disk_full")
        public static let busy = Code(rawValue: "sqlite_busy")
        public static let ioError = Code(rawValue: "sqlite_io_error")
        public static let corrupt = Code(rawValue: "sqlite_corrupt")
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
