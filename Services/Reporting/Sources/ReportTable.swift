import CairnCore

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
    public var json: JSON {
        let objects: [JSON] = rows.map { row in
            .object(JSONObject(pairs: zip(columns, row).map { (key: $0.0, value: $0.1) }))
        }
        return ["columns": .array(columns.map(JSON.string)), "rows": .array(objects)]
    }
}
