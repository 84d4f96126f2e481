/// PostgreSQL array literals for binding a list as one parameter (`$1::text[]`).
public enum PostgresArray {
    /// `{"a","b\"c"}`: every element quoted, quotes and backslashes escaped.
    public static func text(_ values: [String]) -> String {
        "{" + values.map { value in
            var escaped = "\""
            for character in value {
                if character == "\"" || character == "\\" { escaped.append("\\") }
                escaped.append(character)
            }
            return escaped + "\""
        }.joined(separator: ",") + "}"
    }
}
