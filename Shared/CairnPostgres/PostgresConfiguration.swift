import Foundation

/// Helpers for libpq connection strings.
public enum PostgresConfiguration {
    /// `conninfo` with any password replaced by `***`, safe to log.
    public static func redacted(_ conninfo: String) -> String {
        if conninfo.contains("://") {
            // URL form: postgresql://user:password@host/db
            guard let schemeEnd = conninfo.range(of: "://"), let at = conninfo[schemeEnd.upperBound...].firstIndex(of: "@") else {
                return redactingKeyword(conninfo)
            }
            let credentials = conninfo[schemeEnd.upperBound..<at]
            guard let colon = credentials.firstIndex(of: ":") else { return redactingKeyword(conninfo) }
            return redactingKeyword(String(conninfo[..<colon]) + ":***" + String(conninfo[at...]))
        }
        return redactingKeyword(conninfo)
    }

    private static func redactingKeyword(_ text: String) -> String {
        var parts: [String] = []
        for part in text.split(separator: " ", omittingEmptySubsequences: false) {
            if part.hasPrefix("password=") {
                parts.append("password=***")
            } else if let range = part.range(of: "password=") {
                // ?password=… in a URL query
                let tail = part[range.upperBound...]
                let rest = tail.firstIndex(of: "&").map { String(tail[$0...]) } ?? ""
                parts.append(String(part[..<range.upperBound]) + "***" + rest)
            } else {
                parts.append(String(part))
            }
        }
        return parts.joined(separator: " ")
    }

    /// A keyword/value connection string for a server on a Unix socket directory.
    public static func unixSocket(directory: String, port: Int, user: String, database: String) -> String {
        "host=\(quote(directory)) port=\(port) user=\(quote(user)) dbname=\(quote(database)) connect_timeout=5"
    }

    /// Quotes a conninfo value (single quotes, backslash escapes), as libpq requires.
    public static func quote(_ value: String) -> String {
        "'" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
    }
}
