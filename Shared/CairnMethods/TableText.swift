import CairnCore

/// A report table's cells as text, and as CSV: one spelling for the CLI's `--format csv` and the
/// report API's `format=csv`.
public enum TableText {
    /// A cell as a person reads it: strings bare, whole numbers without a fraction, others to two decimals.
    public static func cell(_ value: JSON?) -> String {
        switch value {
        case nil, .null?: return ""
        case .string(let text)?: return text
        case .int(let number)?: return String(number)
        case .double(let number)?:
            return number.rounded() == number && abs(number) < 1e15 ? String(Int64(number)) : String((number * 100).rounded() / 100)
        // A number kept as its text (one a double cannot hold exactly): shown as a double is, when it reads as one.
        case .number(let text)?:
            return Double(text).map { cell(.double($0)) } ?? text
        case .bool(let flag)?: return flag ? "true" : "false"
        case let other?: return other.serializedString()
        }
    }

    /// RFC 4180 CSV: a header of `columns`, then one line per row. A text cell that a spreadsheet
    /// would run as a formula (starting with `=`, `+`, `-`, `@`, a tab or a carriage return) gets
    /// a leading `'`, so that an event name a client chose cannot run in whoever opens the file.
    public static func csv(columns: [String], rows: [JSONObject]) -> String {
        var lines = [columns.map { field(defused($0)) }.joined(separator: ",")]
        for row in rows {
            lines.append(
                columns.map { column in
                    let text = cell(row[column])
                    if case .string? = row[column] { return field(defused(text)) }
                    return field(text)
                }.joined(separator: ",")
            )
        }
        return lines.joined(separator: "\n")
    }

    static func defused(_ text: String) -> String {
        guard let first = text.unicodeScalars.first, ["=", "+", "-", "@", "\t", "\r"].contains(first) else { return text }
        return "'" + text
    }

    static func field(_ text: String) -> String {
        // By scalar: "\r\n" is one Character, which a Character comparison with "\n" misses.
        guard text.unicodeScalars.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
        return "\"" + text.split(separator: "\"", omittingEmptySubsequences: false).joined(separator: "\"\"") + "\""
    }
}
