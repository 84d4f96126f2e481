import CairnCore
import CairnMethods
import CairnPostgres

/// A report's answer: named columns and rows of values, as every report returns it.
public struct ReportTable: Sendable, Equatable {
    public var columns: [String]
    public var rows: [[JSON]]

    public init(columns: [String], rows: [[JSON]]) {
        self.columns = columns
        self.rows = rows
    }

    /// `{"columns": [...], "rows": [{column: value, ...}]}`: the JSON report shape (docs/reports.md),
    /// plus the column order so that tables and CSV keep it.
    public var result: ReportTableResult {
        ReportTableResult(columns: columns, rows: rows.map { row in JSONObject(pairs: zip(columns, row).map { (key: $0.0, value: $0.1) }) })
    }

    public var json: JSON { JSONCoding.encode(result) }
}

/// A report: built from its method's parameters (refusing bad ones before any query), then run
/// in one read-only transaction.
public protocol Report: Sendable {
    associatedtype Method: ReportMethod
    init(params: Method.Params, now: Timestamp) throws(ReportError)
    func run(on connection: PostgresConnection) throws -> ReportTable
}
