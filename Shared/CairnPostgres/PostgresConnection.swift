import CLibPQ
import CairnCore
import Foundation

/// One libpq connection. Not thread-safe: ``PostgresPool`` hands it to one caller at a time.
///
/// Parameters are always sent separately from the SQL text (`PQexecParams`), in text
/// format, so user input never becomes SQL.
public final class PostgresConnection: @unchecked Sendable {
    let handle: OpaquePointer
    /// Sees every statement this connection runs, as sent; the SQL rules test reads them.
    public var statementObserver: (@Sendable (String) -> Void)?

    /// Connects with a libpq connection string or URL.
    /// - Throws: ``PostgresError`` with code `unavailable` when the server cannot be reached.
    public init(conninfo: String) throws(PostgresError) {
        guard let connection = PQconnectdb(conninfo) else {
            throw PostgresError(.unavailable, "libpq could not allocate a connection")
        }
        guard PQstatus(connection) == CONNECTION_OK else {
            let message = Self.trimmed(PQerrorMessage(connection))
            PQfinish(connection)
            throw PostgresError(.unavailable, "cannot connect to PostgreSQL (\(PostgresConfiguration.redacted(conninfo))): \(message)")
        }
        handle = connection
        // JIT pays off for long analytic scans; Cairn's statements are index lookups whose
        // estimated cost outgrows the JIT threshold as tables grow, and then spend more time
        // compiling than running (170 ms for a 5 ms rollup statement, ~15% of a report).
        _ = try? execute("SET client_min_messages = warning")
        _ = try? execute("SET jit = off")
        // A commit Cairn reports (and so a spool entry it deletes) must survive a server crash,
        // whatever the server's default: with `synchronous_commit = off` an immediate stop
        // loses the last commits it had already confirmed (the fault suite caught it).
        _ = try? execute("SET synchronous_commit = on")
    }

    deinit {
        PQfinish(handle)
    }

    /// Whether the connection is still usable; a broken one is dropped by the pool.
    public var isHealthy: Bool { PQstatus(handle) == CONNECTION_OK }

    /// Runs one statement with bound parameters (`$1`, `$2`, …; `nil` binds NULL).
    @discardableResult
    public func execute(_ sql: String, _ parameters: [String?] = []) throws(PostgresError) -> PostgresResult {
        statementObserver?(sql)
        // libpq reads parameters as C strings: a NUL would silently cut the value short (a
        // query for "a\0b" would ask for "a"). PostgreSQL text cannot hold one anyway.
        if let index = parameters.firstIndex(where: { $0?.utf8.contains(0) == true }) {
            throw PostgresError(.queryFailed, "parameter $\(index + 1) holds a NUL character, which PostgreSQL text cannot hold", sqlState: "22021")
        }
        let result: OpaquePointer? = withCStrings(parameters) { values in
            PQexecParams(handle, sql, Int32(parameters.count), nil, values, nil, nil, 0)
        }
        return try consume(result, sql: sql)
    }

    /// Streams `data` (COPY text format) into the table named by `sql`
    /// (`COPY t (cols) FROM STDIN`). Returns the number of rows copied.
    @discardableResult
    public func copyIn(_ sql: String, data: [UInt8]) throws(PostgresError) -> Int {
        statementObserver?(sql)
        let started = PQexec(handle, sql)
        guard let started, PQresultStatus(started) == PGRES_COPY_IN else {
            _ = try consume(started, sql: sql)
            throw PostgresError(.queryFailed, "COPY did not start: \(sql)")
        }
        PQclear(started)
        // Send in 1 MiB pieces so libpq's own buffer stays small.
        var offset = 0
        let chunk = 1 << 20
        while offset < data.count {
            let end = min(offset + chunk, data.count)
            let status = data[offset..<end].withUnsafeBufferPointer { buffer in
                buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: buffer.count) {
                    PQputCopyData(handle, $0, Int32(buffer.count))
                }
            }
            guard status == 1 else { throw connectionError("COPY data could not be sent") }
            offset = end
        }
        guard PQputCopyEnd(handle, nil) == 1 else { throw connectionError("COPY could not be finished") }
        var rows = 0
        var failure: PostgresError?
        while let result = PQgetResult(handle) {
            if PQresultStatus(result) == PGRES_COMMAND_OK {
                rows = Int(String(cString: PQcmdTuples(result))) ?? 0
            } else if failure == nil {
                failure = Self.error(from: result, sql: sql, connection: handle)
            }
            PQclear(result)
        }
        if let failure { throw failure }
        return rows
    }

    /// Runs `body` inside `BEGIN … COMMIT`, rolling back if it throws.
    public func transaction<T>(_ body: () throws(PostgresError) -> T) throws(PostgresError) -> T {
        do {
            return try inTransaction(body)
        } catch let error as PostgresError {
            throw error
        } catch {
            // `body` throws only PostgresError; nothing else can reach here.
            throw PostgresError(.queryFailed, "\(error)")
        }
    }

    /// Runs `body` inside `BEGIN … COMMIT`; any error rolls back and is rethrown as it is, for
    /// bodies that also throw errors of their own (an RPC refusal found half-way).
    public func inTransaction<T>(_ body: () throws -> T) throws -> T {
        try execute("BEGIN")
        do {
            let value = try body()
            try execute("COMMIT")
            return value
        } catch {
            if isHealthy { _ = try? execute("ROLLBACK") }
            throw error
        }
    }

    private func consume(_ result: OpaquePointer?, sql: String) throws(PostgresError) -> PostgresResult {
        guard let result else { throw connectionError("no result") }
        defer { PQclear(result) }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
            return PostgresResult(columns: [], rows: [], affectedRows: Int(String(cString: PQcmdTuples(result))) ?? 0)
        case PGRES_TUPLES_OK:
            let rowCount = Int(PQntuples(result))
            let columnCount = Int(PQnfields(result))
            let columns = (0..<columnCount).map { String(cString: PQfname(result, Int32($0))) }
            var rows: [[String?]] = []
            rows.reserveCapacity(rowCount)
            for row in 0..<rowCount {
                var values: [String?] = []
                values.reserveCapacity(columnCount)
                for column in 0..<columnCount {
                    if PQgetisnull(result, Int32(row), Int32(column)) == 1 {
                        values.append(nil)
                    } else {
                        values.append(String(cString: PQgetvalue(result, Int32(row), Int32(column))))
                    }
                }
                rows.append(values)
            }
            return PostgresResult(columns: columns, rows: rows, affectedRows: rowCount)
        default:
            throw Self.error(from: result, sql: sql, connection: handle)
        }
    }

    private func connectionError(_ what: String) -> PostgresError {
        PostgresError(.unavailable, "\(what): \(Self.trimmed(PQerrorMessage(handle)))")
    }

    private static func error(from result: OpaquePointer, sql: String, connection: OpaquePointer) -> PostgresError {
        let message = trimmed(PQresultErrorMessage(result))
        let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
        // Class 08 is connection trouble; 57P0x is the server shutting down: both are retryable.
        if PQstatus(connection) != CONNECTION_OK || state?.hasPrefix("08") == true || state?.hasPrefix("57P") == true {
            return PostgresError(.unavailable, message, sqlState: state)
        }
        return PostgresError(.queryFailed, message, sqlState: state)
    }

    /// libpq's message folded onto one line (it spreads hints over several).
    private static func trimmed(_ text: UnsafePointer<CChar>?) -> String {
        guard let text else { return "" }
        return String(cString: text).split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.joined(separator: " ")
    }
}

/// The rows of a query, as text (PostgreSQL's text output format).
public struct PostgresResult: Sendable {
    public var columns: [String]
    public var rows: [[String?]]
    /// Rows returned, or rows affected for INSERT/UPDATE/DELETE/COPY.
    public var affectedRows: Int
}

/// A PostgreSQL failure with a stable code.
public struct PostgresError: Error, Sendable, CustomStringConvertible {
    public struct Code: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The server cannot be reached or went away; retry later.
        public static let unavailable = Code(rawValue: "storage_unavailable")
        /// The server refused a statement.
        public static let queryFailed = Code(rawValue: "query_failed")
        /// The embedded cluster could not be set up or started.
        public static let clusterFailed = Code(rawValue: "cluster_failed")
    }

    public var code: Code
    public var message: String
    /// The SQLSTATE, when the server sent one.
    public var sqlState: String?

    public init(_ code: Code, _ message: String, sqlState: String? = nil) {
        self.code = code
        self.message = message
        self.sqlState = sqlState
    }

    public var description: String { message }
}

private func withCStrings<R>(_ strings: [String?], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
    let pointers: [UnsafeMutablePointer<CChar>?] = strings.map { $0.flatMap { strdup($0) } }
    defer { for pointer in pointers { free(pointer) } }
    return body(pointers.map { $0.map { UnsafePointer($0) } })
}

extension String {
    func trimmingTrailingWhitespace() -> String {
        var scalars = Substring(self)
        while let last = scalars.last, last.isWhitespace { scalars.removeLast() }
        return String(scalars)
    }
}

#if canImport(Glibc)
import Glibc
#endif

extension PostgresError: ApplicationError {
    /// `storage_unavailable` when the server cannot be reached (retry later), else `query_failed`.
    public var applicationCode: ErrorCode { code == .unavailable ? .storageUnavailable : .queryFailed }
    public var reason: String { message }
}
