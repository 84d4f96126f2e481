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
        case .bool(let flag)?: return flag ? "true" : "false"
        case let other?: return other.serializedString()
        }
    }

    /// RFC 4180 CSV: a header of `columns`, then one line per row.
    public static func csv(columns: [String], rows: [JSONObject]) -> String {
        var lines = [columns.map(field).joined(separator: ",")]
        for row in rows { lines.append(columns.map { field(cell(row[$0])) }.joined(separator: ",")) }
        return lines.joined(separator: "\n")
    }

    static func field(_ text: String) -> String {
        // By scalar: "\r\n" is one Character, which a Character comparison with "\n" misses.
        guard text.unicodeScalars.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
        return "\"" + text.split(separator: "\"", omittingEmptySubsequences: false).joined(separator: "\"\"") + "\""
    }
}
