import CairnCore
import CairnPostgres
import CairnRollups
import Synchronization

/// The write path: events are the log. One transaction per batch, events through COPY into
/// a staging table and then into `events` with `ON CONFLICT DO NOTHING`, so a batch delivered
/// twice leaves exactly the rows one delivery leaves. Nothing else rides in the transaction:
/// identity state, sessions and rollups follow the log (the identity follower).
public final class EventWriter: Sendable {
    /// The partitions of `events`, as time ranges; nil until read from the catalog.
    private let knownPartitions = Mutex<[PartitionRange]?>(nil)

    public init() {}

    /// What one batch did.
    public struct Outcome: Sendable, Equatable {
        public var inserted: Int
        public var duplicates: Int
        /// Events dropped because they name an erased person.
        public var suppressed: Int = 0
    }

    static let columns = [
        "app_token", "inserted_at", "internal_event_id", "event_type", "event_name", "user_id", "company_id",
        "anonymous_id", "source", "hostname", "pathname", "screen_width", "screen_height", "device_type", "user_agent",
        "operating_system", "browser", "browser_language", "session", "country_code", "metadata", "message_id",
        "received_at", "origin",
    ]

    /// Writes `events`, one transaction per app (in order of first appearance). One app's
    /// write touches one shard of a distributed database, which commits it before the
    /// transaction that stamped its `stored_xid` ends; a write of several apps would commit
    /// on the shards a moment after, where a follower could pass it by (docs/scale.md). A
    /// failure after an earlier app committed is retried whole, and that app's rows are then
    /// duplicates.
    public func write(events: [CanonicalEvent], on connection: PostgresConnection) throws(PostgresError) -> Outcome {
        var order: [String] = []
        var byApp: [String: [CanonicalEvent]] = [:]
        for event in events {
            if byApp[event.appToken] == nil { order.append(event.appToken) }
            byApp[event.appToken, default: []].append(event)
        }
        var total = Outcome(inserted: 0, duplicates: 0)
        for app in order {
            let outcome = try writeApp(events: byApp[app] ?? [], on: connection)
            total.inserted += outcome.inserted
            total.duplicates += outcome.duplicates
            total.suppressed += outcome.suppressed
        }
        return total
    }

    private func writeApp(events: [CanonicalEvent], on connection: PostgresConnection) throws(PostgresError) -> Outcome {
        do {
            return try writeOnce(events: events, on: connection)
        } catch  where error.sqlState == "23514" && error.message.contains("no partition") {
            // A partition this process made was dropped behind its back (by hand, or a restored
            // database): not the events' fault, so not a refusal. Learn the partitions again, once.
            resetPartitionCache()
            return try writeOnce(events: events, on: connection)
        }
    }

    private func writeOnce(events: [CanonicalEvent], on connection: PostgresConnection) throws(PostgresError) -> Outcome {
        try ensurePartitions(for: events, on: connection)
        let copyData = Self.copyText(events)
        return try connection.transaction { () throws(PostgresError) -> Outcome in
            // An erasure of the app waits for this write, or this write for the erasure.
            try Rollups.lockWrites(app: events[0].appToken, exclusive: false, on: connection)
            try connection.execute("CREATE TEMP TABLE IF NOT EXISTS events_staging (LIKE events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
            try connection.copyIn("COPY events_staging (\(Self.columns.joined(separator: ", "))) FROM STDIN", data: copyData)
            let suppressed = try connection.execute(Self.dropSuppressedEvents).firstRow?["dropped", as: Int.self] ?? 0
            let inserted = try connection.execute("INSERT INTO events SELECT * FROM events_staging ON CONFLICT DO NOTHING").affectedRows
            if inserted > 0 { try LogNotification.announce(LogNotification.events, app: events[0].appToken, on: connection) }
            return Outcome(inserted: inserted, duplicates: events.count - inserted - suppressed, suppressed: suppressed)
        }
    }

    /// One partition's range of `inserted_at`, `[start, end)`.
    struct PartitionRange: Sendable, Equatable {
        var start: Timestamp
        var end: Timestamp
        func covers(_ time: Timestamp) -> Bool { start <= time && time < end }
    }

    /// Most partitions one write creates; the rest wait for the next (a halved batch, or its
    /// retry), so a request of scattered times cannot lock the catalog for long.
    public static let maximumNewPartitionsPerWrite = 64

    /// Creates the partitions the batch needs. Months near the present get a partition each
    /// (from 12 months before the current one to 2 after); any other time gets one partition
    /// for its whole year, clipped to the gap between the partitions already there. So every
    /// time an app's window allows costs at most one partition per year outside that span: a
    /// request with a message for every month of 1970-2025 makes 56 partitions, not 672.
    private func ensurePartitions(for events: [CanonicalEvent], on connection: PostgresConnection) throws(PostgresError) {
        guard !events.isEmpty else { return }
        var ranges: [PartitionRange]
        if let known = knownPartitions.withLock({ $0 }) { ranges = known } else { ranges = try Self.readPartitions(on: connection) }
        knownPartitions.withLock { $0 = ranges }
        let now = Timestamp.now()
        let recent = Self.monthStart(now, offset: -12)..<Self.monthStart(now, offset: 3)
        var created = 0
        var seenMonths = Set<Int64>()
        for event in events {
            let time = event.insertedAt
            guard seenMonths.insert(time.utcMonthBounds.start.microseconds).inserted else { continue }
            if ranges.contains(where: { $0.covers(time) }) { continue }
            guard created < Self.maximumNewPartitionsPerWrite else {
                throw PostgresError(.queryFailed, "the batch needs more than \(Self.maximumNewPartitionsPerWrite) new partitions", sqlState: "54000")
            }
            let parts = time.utcComponents
            let desired: (start: Timestamp, end: Timestamp) =
                recent.contains(time)
                ? time.utcMonthBounds
                : (Timestamp(year: parts.year, month: 1, day: 1), Timestamp(year: parts.year + 1, month: 1, day: 1))
            let start = max(desired.start, ranges.filter { $0.end <= time }.map(\.end).max() ?? desired.start)
            let end = min(desired.end, ranges.filter { $0.start > time }.map(\.start).min() ?? desired.end)
            let name =
                recent.contains(time) && start == desired.start && end == desired.end
                ? "events_y\(Self.digits(parts.year, 4))m\(Self.digits(parts.month, 2))"
                : "events_r\(Self.monthName(start))_\(Self.monthName(end))"
            do {
                // Partition names and bounds come from timestamps Cairn formatted, never from input text.
                try connection.execute(
                    "CREATE TABLE IF NOT EXISTS \(name) PARTITION OF events FOR VALUES FROM ('\(start.description)') TO ('\(end.description)')"
                )
            } catch let error as PostgresError {
                // Another writer may have made an overlapping one: read the catalog afresh next time.
                resetPartitionCache()
                throw error
            }
            ranges.append(PartitionRange(start: start, end: end))
            knownPartitions.withLock { $0 = ranges }
            created += 1
        }
    }

    /// The partitions of `events` from PostgreSQL's catalog (whatever made them).
    static func readPartitions(on connection: PostgresConnection) throws(PostgresError) -> [PartitionRange] {
        try EventPartitions.list(on: connection).map { PartitionRange(start: $0.start, end: $0.end) }
    }

    static func monthStart(_ time: Timestamp, offset: Int64) -> Timestamp {
        let parts = time.utcComponents
        let months = parts.year * 12 + (parts.month - 1) + offset
        return Timestamp(year: months / 12, month: months % 12 + 1, day: 1)
    }

    static func monthName(_ time: Timestamp) -> String {
        let parts = time.utcComponents
        return digits(parts.year, 4) + digits(parts.month, 2)
    }

    static func digits(_ value: Int64, _ width: Int) -> String {
        let text = String(value)
        return String(repeating: "0", count: max(0, width - text.count)) + text
    }

    /// Forgets cached partitions (after a reconnect to a possibly different database).
    public func resetPartitionCache() {
        knownPartitions.withLock { $0 = nil }
    }

    /// The events as PostgreSQL COPY text rows, in ``columns`` order.
    static func copyText(_ events: [CanonicalEvent]) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(events.count * 400)
        for event in events {
            append(&out, event.appToken)
            tab(&out)
            append(&out, event.insertedAt.description)
            tab(&out)
            append(&out, String(event.internalEventIdBigint))
            tab(&out)
            append(&out, event.eventType.rawValue)
            tab(&out)
            append(&out, event.eventName)
            tab(&out)
            append(&out, event.userId)
            tab(&out)
            append(&out, event.companyId)
            tab(&out)
            append(&out, event.anonymousId)
            tab(&out)
            append(&out, event.source)
            tab(&out)
            append(&out, event.hostname)
            tab(&out)
            append(&out, event.pathname)
            tab(&out)
            append(&out, event.screenWidth.map(String.init))
            tab(&out)
            append(&out, event.screenHeight.map(String.init))
            tab(&out)
            append(&out, event.deviceType)
            tab(&out)
            append(&out, event.userAgent)
            tab(&out)
            append(&out, event.operatingSystem)
            tab(&out)
            append(&out, event.browser)
            tab(&out)
            append(&out, event.browserLanguage)
            tab(&out)
            append(&out, event.session)
            tab(&out)
            append(&out, event.countryCode)
            tab(&out)
            appendEscaped(&out, JSON.object(event.metadata).serialized())
            tab(&out)
            append(&out, event.messageId)
            tab(&out)
            append(&out, event.receivedAt.description)
            tab(&out)
            append(&out, event.origin.rawValue)
            out.append(0x0A)
        }
        return out
    }

    @inline(__always) private static func tab(_ out: inout [UInt8]) { out.append(0x09) }

    private static func append(_ out: inout [UInt8], _ value: String?) {
        guard let value else {
            out.append(0x5C)
            out.append(UInt8(ascii: "N"))
            return
        }
        appendEscaped(&out, value.utf8)
    }

    /// COPY text escaping: backslash, tab, newline and carriage return; NUL cannot be stored
    /// in PostgreSQL text and is dropped.
    private static func appendEscaped<Bytes: Sequence<UInt8>>(_ out: inout [UInt8], _ bytes: Bytes) {
        for byte in bytes {
            switch byte {
            case 0x5C:
                out.append(0x5C)
                out.append(0x5C)
            case 0x09:
                out.append(0x5C)
                out.append(UInt8(ascii: "t"))
            case 0x0A:
                out.append(0x5C)
                out.append(UInt8(ascii: "n"))
            case 0x0D:
                out.append(0x5C)
                out.append(UInt8(ascii: "r"))
            case 0x00: break
            default: out.append(byte)
            }
        }
    }

    /// Erased people stay erased: their events never reach `events`, and each suppression
    /// counts what it dropped. Returns the number of events dropped.
    static let dropSuppressedEvents = """
        WITH dropped AS (
            DELETE FROM events_staging s USING suppressions p
            WHERE p.app_token = s.app_token
              AND ((p.kind = 'user' AND p.id = s.user_id) OR (p.kind = 'anonymous' AND s.user_id IS NULL AND p.id = s.anonymous_id))
            RETURNING p.app_token, p.kind, p.id
        ), counted AS (
            UPDATE suppressions q SET dropped = q.dropped + c.n
            FROM (SELECT app_token, kind, id, count(*) AS n FROM dropped GROUP BY 1, 2, 3) c
            WHERE q.app_token = c.app_token AND q.kind = c.kind AND q.id = c.id
            RETURNING c.n
        )
        SELECT COALESCE(sum(n), 0) AS dropped FROM counted
        """
}
