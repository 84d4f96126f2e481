/// PostgreSQL array literals for binding a list as one parameter (`$1::text[]`).
public enum PostgresArray {
    /// `{"a","b\"c"}`: every element quoted, quotes and backslashes escaped.
    /// Escapes by Unicode scalar, not by Character: a quote followed by a combining mark is one
    /// Character (`"\u{301}`) but still a quote to PostgreSQL.
    public static func text(_ values: [String]) -> String {
        "{"
            + values.map { value in
                var escaped = String.UnicodeScalarView()
                escaped.append("\"")
                for scalar in value.unicodeScalars {
                    if scalar == "\"" || scalar == "\\" { escaped.append("\\") }
                    escaped.append(scalar)
                }
                escaped.append("\"")
                return String(escaped)
            }.joined(separator: ",") + "}"
    }
}
