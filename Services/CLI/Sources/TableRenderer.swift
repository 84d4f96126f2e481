import CairnCore
import CairnMethods

/// Prints a `{columns, rows}` result as an aligned table, JSON (`{"rows": [...]}`), or CSV.
enum TableRenderer {
    static func render(_ result: JSON, format: OutputFormat) -> String {
        let rows = result["rows"]?.arrayValue ?? []
        var columns = result["columns"]?.arrayValue?.compactMap(\.stringValue) ?? []
        if columns.isEmpty, let first = rows.first?.objectValue { columns = first.keys }
        switch format {
        case .json:
            return JSON.object(["rows": .array(rows)]).serializedString()
        case .csv:
            return TableText.csv(columns: columns, rows: rows.compactMap(\.objectValue))
        case .table:
            let cells = rows.map { row in columns.map { text(row[$0]) } }
            var widths = columns.map(\.count)
            for row in cells {
                for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) }
            }
            func line(_ values: [String], numeric: [Bool]) -> String {
                values.enumerated().map { index, value in
                    let padding = String(repeating: " ", count: widths[index] - value.count)
                    return numeric[index] ? padding + value : value + padding
                }.joined(separator: "  ").trimmingTrailingSpaces()
            }
            let numeric = columns.map { column in
                !rows.isEmpty
                    && rows.allSatisfy { row in
                        switch row[column] {
                        case .int?, .double?, nil, .null?: return true
                        default: return false
                        }
                    }
            }
            var output = [line(columns, numeric: numeric), line(widths.map { String(repeating: "-", count: $0) }, numeric: numeric)]
            output += cells.map { line($0, numeric: numeric) }
            if rows.isEmpty { output.append("(no rows)") }
            return output.joined(separator: "\n")
        }
    }

    /// A cell as the terminal shows it: control characters (an event name or a dead letter a
    /// client chose may hold ESC sequences) become `?`, so that they cannot drive the terminal
    /// or break the table's lines.
    static func text(_ value: JSON?) -> String { visible(TableText.cell(value)) }

    /// `text` with control characters shown as `?`, for whatever a client chose that reaches the terminal.
    static func visible(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: isControl) else { return text }
        return String(String.UnicodeScalarView(text.unicodeScalars.map { isControl($0) ? "?" : $0 }))
    }

    private static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value)
    }
}

extension String {
    func trimmingTrailingSpaces() -> String {
        var copy = Substring(self)
        while copy.last == " " { copy.removeLast() }
        return String(copy)
    }
}
