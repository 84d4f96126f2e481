import CairnCore
import CairnPostgres
import Synchronization

/// The write path: one transaction per batch, events through COPY into a staging table and
/// then into `events` with `ON CONFLICT DO NOTHING`, so a batch delivered twice leaves
/// exactly the rows one delivery leaves. User and company upserts ride in the same
/// transaction and are idempotent too.
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

    /// Writes `events` and applies the identity upserts in one transaction.
    public func write(
        events: [CanonicalEvent],
        users: JSON,
        companies: JSON,
        memberships: JSON = .array([]),
        aliases: JSON = .array([]),
        sessions: JSON = .array([]),
        on connection: PostgresConnection
    ) throws(PostgresError) -> Outcome {
        do {
            return try writeOnce(
                events: events,
                users: users,
                companies: companies,
                memberships: memberships,
                aliases: aliases,
                sessions: sessions,
                on: connection
            )
        } catch  where error.sqlState == "23514" && error.message.contains("no partition") {
            // A partition this process made was dropped behind its back (by hand, or a restored
            // database): not the events' fault, so not a refusal. Learn the partitions again, once.
            resetPartitionCache()
            return try writeOnce(
                events: events,
                users: users,
                companies: companies,
                memberships: memberships,
                aliases: aliases,
                sessions: sessions,
                on: connection
            )
        }
    }

    private func writeOnce(
        events: [CanonicalEvent],
        users: JSON,
        companies: JSON,
        memberships: JSON,
        aliases: JSON,
        sessions: JSON,
        on connection: PostgresConnection
    ) throws(PostgresError) -> Outcome {
        try ensurePartitions(for: events, on: connection)
        let copyData = Self.copyText(events)
        return try connection.transaction { () throws(PostgresError) -> Outcome in
            try connection.execute("CREATE TEMP TABLE IF NOT EXISTS events_staging (LIKE events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
            var inserted = 0
            var suppressed = 0
            if !events.isEmpty {
                try connection.copyIn("COPY events_staging (\(Self.columns.joined(separator: ", "))) FROM STDIN", data: copyData)
                suppressed = try connection.execute(Self.dropSuppressedEvents).firstRow?["dropped", as: Int.self] ?? 0
            }
            if case .array(let rows) = users, !rows.isEmpty {
                try connection.execute(Self.upsertUsers, [users.serializedString()])
            }
            if case .array(let rows) = companies, !rows.isEmpty {
                try connection.execute(Self.upsertCompanies, [companies.serializedString()])
            }
            if case .array(let rows) = memberships, !rows.isEmpty {
                try connection.execute(Self.upsertMemberships, [memberships.serializedString()])
            }
            if case .array(let rows) = aliases, !rows.isEmpty {
                try connection.execute(Self.upsertAliases, [aliases.serializedString()])
            }
            // Identity first, events after: the rollup triggers then resolve the new events
            // once, and re-derive only the people whose earlier events identity moved.
            if !events.isEmpty {
                inserted = try connection.execute("INSERT INTO events SELECT * FROM events_staging ON CONFLICT DO NOTHING").affectedRows
            }
            if case .array(let rows) = sessions, !rows.isEmpty {
                // Each listed person's sessions are replaced from `from` on (whole without it):
                // identity recomputes them from the full history and sends what changed.
                try connection.execute(
                    """
                    DELETE FROM user_sessions s USING jsonb_to_recordset($1::jsonb) AS x(app_token text, person text, "from" integer)
                    WHERE s.app_token = x.app_token AND s.person = x.person AND s.session >= COALESCE(x."from", 0)
                    """,
                    [sessions.serializedString()]
                )
                try connection.execute(
                    """
                    INSERT INTO user_sessions (app_token, person, session, started_at, ended_at, events)
                    SELECT x.app_token, x.person, (s->>0)::integer, (s->>1)::timestamptz, (s->>2)::timestamptz, (s->>3)::integer
                    FROM jsonb_to_recordset($1::jsonb) AS x(app_token text, person text, sessions jsonb), jsonb_array_elements(x.sessions) AS s
                    WHERE NOT EXISTS (SELECT 1 FROM suppressions p WHERE p.app_token = x.app_token
                                      AND ((p.kind = 'user' AND p.id = x.person) OR (p.kind = 'anonymous' AND 'anonymous:' || p.id = x.person)))
                    """,
                    [sessions.serializedString()]
                )
            }
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
        try connection.execute(
            """
            SELECT to_char(b[1]::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS start,
                   to_char(b[2]::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS "end"
            FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid,
                 regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''([^'']+)''\\) TO \\(''([^'']+)''\\)') AS b
            WHERE i.inhparent = 'events'::regclass
            """
        ).namedRows.compactMap { row in
            guard let start = row["start", as: Timestamp.self], let end = row["end", as: Timestamp.self] else { return nil }
            return PartitionRange(start: start, end: end)
        }
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

    /// Each upsert skips rows it would not change (a range already covering the batch's, no
    /// traits, no company): no new row version, no index entries, no trigger rows.
    static let upsertUsers = """
        INSERT INTO users AS u (app_token, user_id, first_seen, last_seen, traits, trait_times, traits_updated_at, company_id, company_updated_at)
        SELECT app_token, user_id, first_seen, last_seen, COALESCE(traits, '{}'::jsonb), COALESCE(trait_times, '{}'::jsonb),
               (SELECT max(value::text::timestamptz) FROM jsonb_each_text(COALESCE(trait_times, '{}'::jsonb))), company_id, company_updated_at
        FROM jsonb_to_recordset($1::jsonb) AS x(app_token text, user_id text, first_seen timestamptz, last_seen timestamptz,
             traits jsonb, trait_times jsonb, company_id text, company_updated_at timestamptz)
        WHERE NOT EXISTS (SELECT 1 FROM suppressions p WHERE p.app_token = x.app_token AND p.kind = 'user' AND p.id = x.user_id)
        ON CONFLICT (app_token, user_id) DO UPDATE SET
            first_seen = LEAST(u.first_seen, EXCLUDED.first_seen),
            last_seen = GREATEST(u.last_seen, EXCLUDED.last_seen),
            -- Most batches carry no traits for most users: skip the per-key merge then.
            traits = CASE WHEN EXCLUDED.trait_times = '{}'::jsonb THEN u.traits
                          ELSE cairn_merge_traits(u.traits, u.trait_times, EXCLUDED.traits, EXCLUDED.trait_times) END,
            trait_times = CASE WHEN EXCLUDED.trait_times = '{}'::jsonb THEN u.trait_times
                               ELSE cairn_merge_trait_times(u.traits, u.trait_times, EXCLUDED.traits, EXCLUDED.trait_times) END,
            traits_updated_at = GREATEST(u.traits_updated_at, EXCLUDED.traits_updated_at),
            company_id = CASE
                WHEN EXCLUDED.company_updated_at IS NOT NULL AND (u.company_updated_at IS NULL OR EXCLUDED.company_updated_at > u.company_updated_at
                     OR (EXCLUDED.company_updated_at = u.company_updated_at AND EXCLUDED.company_id > u.company_id))
                THEN EXCLUDED.company_id ELSE u.company_id END,
            company_updated_at = GREATEST(u.company_updated_at, EXCLUDED.company_updated_at)
        WHERE EXCLUDED.first_seen < u.first_seen OR EXCLUDED.last_seen > u.last_seen
           OR EXCLUDED.trait_times <> '{}'::jsonb OR EXCLUDED.company_updated_at IS NOT NULL
        """

    static let upsertCompanies = """
        INSERT INTO companies AS c (app_token, company_id, first_seen, last_seen, traits, trait_times, traits_updated_at)
        SELECT app_token, company_id, first_seen, last_seen, COALESCE(traits, '{}'::jsonb), COALESCE(trait_times, '{}'::jsonb),
               (SELECT max(value::text::timestamptz) FROM jsonb_each_text(COALESCE(trait_times, '{}'::jsonb)))
        FROM jsonb_to_recordset($1::jsonb) AS x(app_token text, company_id text, first_seen timestamptz, last_seen timestamptz,
             traits jsonb, trait_times jsonb)
        ON CONFLICT (app_token, company_id) DO UPDATE SET
            first_seen = LEAST(c.first_seen, EXCLUDED.first_seen),
            last_seen = GREATEST(c.last_seen, EXCLUDED.last_seen),
            traits = CASE WHEN EXCLUDED.trait_times = '{}'::jsonb THEN c.traits
                          ELSE cairn_merge_traits(c.traits, c.trait_times, EXCLUDED.traits, EXCLUDED.trait_times) END,
            trait_times = CASE WHEN EXCLUDED.trait_times = '{}'::jsonb THEN c.trait_times
                               ELSE cairn_merge_trait_times(c.traits, c.trait_times, EXCLUDED.traits, EXCLUDED.trait_times) END,
            traits_updated_at = GREATEST(c.traits_updated_at, EXCLUDED.traits_updated_at)
        WHERE EXCLUDED.first_seen < c.first_seen OR EXCLUDED.last_seen > c.last_seen OR EXCLUDED.trait_times <> '{}'::jsonb
        """

    static let upsertMemberships = """
        INSERT INTO user_companies AS m (app_token, user_id, company_id, first_seen, last_seen)
        SELECT app_token, user_id, company_id, first_seen, last_seen
        FROM jsonb_to_recordset($1::jsonb) AS x(app_token text, user_id text, company_id text, first_seen timestamptz, last_seen timestamptz)
        WHERE NOT EXISTS (SELECT 1 FROM suppressions p WHERE p.app_token = x.app_token AND p.kind = 'user' AND p.id = x.user_id)
        ON CONFLICT (app_token, user_id, company_id) DO UPDATE SET
            first_seen = LEAST(m.first_seen, EXCLUDED.first_seen),
            last_seen = GREATEST(m.last_seen, EXCLUDED.last_seen)
        WHERE EXCLUDED.first_seen < m.first_seen OR EXCLUDED.last_seen > m.last_seen
        """

    /// An anonymous id joins the user it was identified as, resolved through merges. The
    /// earliest identification wins (then the smaller user id), so arrival order never
    /// matters; an id that is itself an identified user is never aliased away (PostHog's
    /// rule: two identified users are never merged silently).
    static let upsertAliases = """
        INSERT INTO identity_aliases AS a (app_token, alias_kind, alias_id, user_id, aliased_at, reason)
        SELECT x.app_token, 'anonymous', x.alias_id, COALESCE(m.user_id, x.user_id), x.aliased_at, 'identify'
        FROM jsonb_to_recordset($1::jsonb) AS x(app_token text, alias_id text, user_id text, aliased_at timestamptz)
        LEFT JOIN identity_aliases m ON m.app_token = x.app_token AND m.alias_kind = 'user' AND m.alias_id = x.user_id
        WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.app_token = x.app_token AND u.user_id = x.alias_id)
          AND NOT EXISTS (SELECT 1 FROM suppressions p WHERE p.app_token = x.app_token
                          AND ((p.kind = 'user' AND p.id = x.user_id) OR (p.kind = 'anonymous' AND p.id = x.alias_id)))
        ON CONFLICT (app_token, alias_kind, alias_id) DO UPDATE SET user_id = EXCLUDED.user_id, aliased_at = EXCLUDED.aliased_at, stored_xid = cairn_xid()
        WHERE EXCLUDED.aliased_at < a.aliased_at OR (EXCLUDED.aliased_at = a.aliased_at AND EXCLUDED.user_id < a.user_id)
        """
}
