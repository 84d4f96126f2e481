import CairnCore

/// One row of a ``PostgresResult``, read by column name, as postgres-nio's random-access row:
/// `row["lag_s", as: Double.self]`. A query names what it reads, so reordering its select list
/// cannot shift a value into the wrong field.
public struct PostgresRow: Sendable {
    /// Column name → position, shared by every row of one result.
    let index: [String: Int]
    let values: [String?]

    /// The column's text as PostgreSQL wrote it, or nil for NULL.
    ///
    /// A name the query does not select is a programming error: debug builds (and so the tests)
    /// stop on it; release builds read it as NULL.
    public subscript(_ column: String) -> String? {
        guard let position = index[column] else {
            assertionFailure("the query selects no column named '\(column)' (it selects \(index.keys.sorted()))")
            return nil
        }
        return values[position]
    }

    /// The column decoded as `Value`, or nil when it is NULL or does not read as one.
    public subscript<Value: PostgresTextDecodable>(_ column: String, as type: Value.Type) -> Value? {
        self[column].flatMap(Value.init(postgresText:))
    }

    /// Whether the query selected `column`.
    public func has(_ column: String) -> Bool { index[column] != nil }
}

/// A type read from PostgreSQL's text output format.
public protocol PostgresTextDecodable {
    init?(postgresText text: String)
}

extension String: PostgresTextDecodable {
    public init?(postgresText text: String) { self = text }
}

extension Int: PostgresTextDecodable {
    public init?(postgresText text: String) { self.init(text) }
}

extension Int64: PostgresTextDecodable {
    public init?(postgresText text: String) { self.init(text) }
}

extension Double: PostgresTextDecodable {
    public init?(postgresText text: String) { self.init(text) }
}

extension Bool: PostgresTextDecodable {
    /// `t` and `f`, as PostgreSQL writes booleans.
    public init?(postgresText text: String) {
        switch text {
        case "t": self = true
        case "f": self = false
        default: return nil
        }
    }
}

extension Timestamp: PostgresTextDecodable {
    public init?(postgresText text: String) { self.init(parsing: text) }
}

extension JSON: PostgresTextDecodable {
    /// A `json`/`jsonb` column (or its `::text`).
    public init?(postgresText text: String) {
        guard let value = try? JSONParser.parse(text) else { return nil }
        self = value
    }
}

extension PostgresResult {
    /// The rows, each read by column name.
    public var namedRows: [PostgresRow] {
        let index = Dictionary(columns.enumerated().map { ($0.element, $0.offset) }, uniquingKeysWith: { first, _ in first })
        return rows.map { PostgresRow(index: index, values: $0) }
    }

    /// The first row, read by column name; nil when there is none.
    public var firstRow: PostgresRow? {
        guard let first = rows.first else { return nil }
        return PostgresRow(
            index: Dictionary(columns.enumerated().map { ($0.element, $0.offset) }, uniquingKeysWith: { first, _ in first }),
            values: first
        )
    }
}
