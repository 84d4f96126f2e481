import CairnCore
import CairnPostgres

/// The partitions of `events` (a month each near today, a year far from it), from PostgreSQL's
/// catalog: storage creates them as writes need them, and retention empties and drops them.
public enum EventPartitions {
    public struct Partition: Sendable {
        /// As `regclass` prints it: quoted where needed, so it goes into SQL as it is.
        public var name: String
        /// `[start, end)` of `inserted_at`.
        public var start: Timestamp
        public var end: Timestamp
    }

    /// Every partition, oldest first.
    public static func list(on connection: PostgresConnection) throws(PostgresError) -> [Partition] {
        try connection.execute(
            """
            SELECT c.oid::regclass::text AS name,
                   to_char(b[1]::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS start,
                   to_char(b[2]::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS "end"
            FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid,
                 regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''([^'']+)''\\) TO \\(''([^'']+)''\\)') AS b
            WHERE i.inhparent = 'events'::regclass
            ORDER BY b[1]::timestamptz
            """
        ).namedRows.compactMap { row in
            guard let name = row["name"], let start = row["start", as: Timestamp.self], let end = row["end", as: Timestamp.self] else { return nil }
            return Partition(name: name, start: start, end: end)
        }
    }
}
