import CairnCore
import CairnMetrics
import CairnSQLite
import Foundation
import Synchronization

/// Ingest's durable state in SQLite: the queue of accepted events awaiting storage, the
/// dead letters, the set of event and message ids already accepted (for deduplication),
/// and a copy of the app settings so that ingest keeps working while the database is away.
///
/// WAL with `synchronous=FULL`, so a batch whose transaction returned survives a crash or a
/// power cut: that is the moment ingest may acknowledge.
///
/// Reads go through a 64 MB page cache and at most 64 MB of the file mapped into memory.
/// Mapped pages count as resident: with 256 MB mapped, ingest peaked at 394 MB while a
/// million-event load waited in the spool.
public final class Spool: Sendable {
    /// Rings after every commit that added events: the forwarder sleeps until then.
    public let appended = Doorbell()
    /// Every app this process spooled events of: its spool gauges read 0 once drained, not nothing.
    private let spooledApps = Mutex<Set<String>>([])
    public var appsSpooled: Set<String> { spooledApps.withLock { $0 } }
    private let database: SQLiteDatabase
    /// Accepted ids are remembered this many days for deduplication (storage's primary key
    /// catches an `internal_event_id` repeat after that; a `messageId` repeat it does not).
    public static let dedupWindowDays: Int64 = 30

    /// One record or message ingest refused, kept whole with why.
    public struct DeadLetter: Sendable {
        public var app: String
        /// The `--format` it was read with (`auto`, `segment`, …), for replay.
        public var format: String
        /// Where it came from: a file name, `http`, or `storage`.
        public var source: String
        /// The 1-based line or element number in `source`, when known.
        public var record: Int?
        /// Its index in a Segment batch envelope, when it was one message of one.
        public var message: Int?
        public var error: EventError
        public var raw: [UInt8]

        public init(app: String, format: String, source: String, record: Int?, message: Int? = nil, error: EventError, raw: [UInt8]) {
            self.app = app
            self.format = format
            self.source = source
            self.record = record
            self.message = message
            self.error = error
            self.raw = raw
        }
    }

    /// One spooled event awaiting delivery.
    public struct Entry: Sendable {
        public var sequence: Int64
        /// The canonical event's JSON text.
        public var event: [UInt8]
    }

    /// The file the spool was opened from.
    public let path: String
    /// The device and inode of the spool's file and of its write-ahead log, when opened.
    private let identities: [(path: String, device: UInt64, inode: UInt64)]

    /// Why the spool can no longer keep what it acknowledges, or nil: its file or its
    /// write-ahead log (`-wal`, where the latest acknowledged events are) was removed or
    /// replaced while ingest ran (`make clean` in the wrong terminal), so what it writes goes
    /// to a file nobody will open again. Checked on every request.
    public var problem: String? {
        for file in identities {
            guard let now = Self.fileIdentity(file.path) else { return "the spool file \(file.path) was removed while ingest ran; restart ingest" }
            if now != (file.device, file.inode) { return "the spool file \(file.path) was replaced while ingest ran; restart ingest" }
        }
        return nil
    }

    static func fileIdentity(_ path: String) -> (device: UInt64, inode: UInt64)? {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
            let device = (attributes[.systemNumber] as? NSNumber)?.uint64Value,
            let inode = (attributes[.systemFileNumber] as? NSNumber)?.uint64Value
        else { return nil }
        return (device, inode)
    }

    public init(path: String) throws(SQLiteError) {
        self.path = path
        database = try SQLiteDatabase(path: path)
        try database.withConnection { (connection) throws(SQLiteError) in
            try connection.execute(
                """
                PRAGMA journal_mode = WAL;
                PRAGMA synchronous = FULL;
                PRAGMA cache_size = -65536;
                PRAGMA mmap_size = 67108864;
                CREATE TABLE IF NOT EXISTS spool (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    app TEXT NOT NULL,
                    event BLOB NOT NULL
                );
                CREATE TABLE IF NOT EXISTS dead_letters (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    received_at TEXT NOT NULL,
                    app TEXT NOT NULL,
                    format TEXT NOT NULL,
                    source TEXT NOT NULL,
                    record INTEGER,
                    message INTEGER,
                    error_code TEXT NOT NULL,
                    error_field TEXT,
                    error_message TEXT NOT NULL,
                    raw BLOB NOT NULL
                );
                CREATE INDEX IF NOT EXISTS dead_letters_app ON dead_letters (app, id);
                CREATE TABLE IF NOT EXISTS seen_events (app TEXT NOT NULL, id INTEGER NOT NULL, day INTEGER NOT NULL, PRIMARY KEY (app, id)) WITHOUT ROWID;
                CREATE TABLE IF NOT EXISTS seen_messages (app TEXT NOT NULL, message_id TEXT NOT NULL, day INTEGER NOT NULL, PRIMARY KEY (app, message_id)) WITHOUT ROWID;
                CREATE TABLE IF NOT EXISTS app_cache (key TEXT PRIMARY KEY, config BLOB NOT NULL);
                CREATE TABLE IF NOT EXISTS suppressed (app TEXT NOT NULL, kind TEXT NOT NULL, id TEXT NOT NULL, dropped INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (app, kind, id)) WITHOUT ROWID;
                """
            )
        }
        // The write-ahead log exists once the schema is written; both files must stay the ones opened.
        identities = [path, path + "-wal"].compactMap { file in Self.fileIdentity(file).map { (file, $0.device, $0.inode) } }
    }

    /// Appends events and dead letters in one durable transaction, skipping events already
    /// accepted (same `internal_event_id`, or same sender `message_id`, within the window).
    /// - Returns: how many events were new and how many were duplicates.
    @discardableResult
    public func append(events: [CanonicalEvent], deadLetters: [DeadLetter]) throws(SQLiteError) -> (new: Int, duplicates: Int) {
        try append([(events, deadLetters)])[0]
    }

    /// Appends several requests' events and dead letters in one durable transaction (group
    /// commit: one sync for all of them), in order, so a repeat across requests counts as a
    /// duplicate of the earlier one.
    /// - Returns: per request, how many of its events were new and how many were duplicates.
    public func append(_ requests: [(events: [CanonicalEvent], deadLetters: [DeadLetter])]) throws(SQLiteError) -> [(new: Int, duplicates: Int)] {
        let events = requests.flatMap(\.events)
        let deadLetters = requests.flatMap(\.deadLetters)
        guard !events.isEmpty || !deadLetters.isEmpty else { return requests.map { _ in (0, 0) } }
        let now = Timestamp.now()
        let day = SQLiteValue.integer(now.microseconds / 86_400_000_000)
        let isDuplicate = try database.transaction { (connection) throws(SQLiteError) -> [Bool] in
            var isDuplicate = [Bool](repeating: false, count: events.count)
            let withMessageIds = events.indices.filter { events[$0].messageId != nil }
            try connection.executeEach(
                "INSERT OR IGNORE INTO seen_messages (app, message_id, day) VALUES (?1, ?2, ?3)",
                withMessageIds.lazy.map { [.text(events[$0].appToken), .text(events[$0].messageId!), day] }
            ) { index, changed in
                if changed == 0 { isDuplicate[withMessageIds[index]] = true }
            }
            let candidates = events.indices.filter { !isDuplicate[$0] }
            try connection.executeEach(
                "INSERT OR IGNORE INTO seen_events (app, id, day) VALUES (?1, ?2, ?3)",
                candidates.lazy.map { [.text(events[$0].appToken), .integer(events[$0].internalEventIdBigint), day] }
            ) { index, changed in
                if changed == 0 { isDuplicate[candidates[index]] = true }
            }
            let fresh = events.indices.filter { !isDuplicate[$0] }
            try connection.executeMany(
                "INSERT INTO spool (app, event) VALUES (?1, ?2)",
                fresh.lazy.map { [.text(events[$0].appToken), .blob(events[$0].json.serialized())] }
            )
            try Self.insert(deadLetters, receivedAt: now.description, on: connection)
            return isDuplicate
        }
        if isDuplicate.contains(false) {
            let apps = Set(events.indices.lazy.filter { !isDuplicate[$0] }.map { events[$0].appToken })
            spooledApps.withLock { $0.formUnion(apps) }
            appended.ring()
        }
        Self.countDeadLetters(deadLetters)
        var counts: [(new: Int, duplicates: Int)] = []
        var offset = 0
        for request in requests {
            let duplicates = isDuplicate[offset..<(offset + request.events.count)].lazy.filter { $0 }.count
            counts.append((request.events.count - duplicates, duplicates))
            offset += request.events.count
        }
        return counts
    }

    /// The oldest entries: at most `limit`, and no more than `maximumBytes` of events
    /// together, unless the first alone is larger.
    public func peek(limit: Int, maximumBytes: Int = .max) throws(SQLiteError) -> [Entry] {
        try database.withConnection { (connection) throws(SQLiteError) -> [Entry] in
            var entries: [Entry] = []
            var bytes = 0
            var full = false
            try connection.query("SELECT seq, event FROM spool ORDER BY seq LIMIT ?1", [.integer(Int64(limit))]) { row in
                guard !full else { return }
                // The first entry always comes, so one large event can never wedge the spool.
                let event = row.blob("event")
                guard entries.isEmpty || bytes + event.count <= maximumBytes else {
                    full = true
                    return
                }
                bytes += event.count
                entries.append(Entry(sequence: row.integer("seq"), event: event))
            }
            return entries
        }
    }

    /// Removes delivered entries and, in the same transaction, turns the ones storage refused
    /// into dead letters.
    /// Removes delivered entries, keeping the refused ones as dead letters. A refused event's
    /// ids are forgotten, so that a corrected resend (same `messageId`) or a replay is taken as
    /// new rather than as a duplicate of an event that was never stored.
    public func complete(sequences: [Int64], refused: [(sequence: Int64, deadLetter: DeadLetter)]) throws(SQLiteError) {
        let now = Timestamp.now().description
        let forgotten = refused.compactMap { try? CanonicalEvent(canonical: JSONParser.parse($0.deadLetter.raw)) }
        try database.transaction { (connection) throws(SQLiteError) in
            try Self.insert(refused.map(\.deadLetter), receivedAt: now, on: connection)
            try connection.executeMany("DELETE FROM spool WHERE seq = ?1", sequences.lazy.map { [.integer($0)] })
            try connection.executeMany(
                "DELETE FROM seen_events WHERE app = ?1 AND id = ?2",
                forgotten.lazy.map { [.text($0.appToken), .integer($0.internalEventIdBigint)] }
            )
            try connection.executeMany(
                "DELETE FROM seen_messages WHERE app = ?1 AND message_id = ?2",
                forgotten.lazy.compactMap { event in event.messageId.map { [.text(event.appToken), .text($0)] } }
            )
        }
        Self.countDeadLetters(refused.map(\.deadLetter))
    }

    /// Every dead letter is kept by ``append(_:)`` or ``complete(sequences:refused:)``: both
    /// count what they committed here, by the error's code.
    private static func countDeadLetters(_ letters: [DeadLetter]) {
        var byReason: [String: Int] = [:]
        for letter in letters { byReason[letter.error.code.rawValue, default: 0] += 1 }
        for (reason, count) in byReason { CairnMetric.deadLetters.increment(by: count, reason) }
    }

    /// Forgets accepted ids older than the deduplication window.
    public func pruneSeen() throws(SQLiteError) {
        let cutoff = SQLiteValue.integer(Timestamp.now().microseconds / 86_400_000_000 - Self.dedupWindowDays)
        try database.withConnection { (connection) throws(SQLiteError) in
            try connection.executeMany("DELETE FROM seen_events WHERE day < ?1", [[cutoff]])
            try connection.executeMany("DELETE FROM seen_messages WHERE day < ?1", [[cutoff]])
        }
    }

    public func depth() throws(SQLiteError) -> Int64 {
        try count("SELECT count(*) AS n FROM spool")
    }

    /// The spool's depth from its first and last sequence numbers: two index lookups, cheap
    /// enough for every request's backpressure check (the forwarder removes entries in order,
    /// so there are few gaps).
    public func approximateDepth() throws(SQLiteError) -> Int64 {
        try count("SELECT COALESCE(max(seq) - min(seq) + 1, 0) AS n FROM spool")
    }

    /// Per app (token): how many events wait in the spool, and when the oldest of them was
    /// received, which says how far the forwarder is behind.
    public func backlog() throws(SQLiteError) -> [(app: String, depth: Int64, oldestReceivedAt: Timestamp?)] {
        try database.withConnection { (connection) throws(SQLiteError) -> [(app: String, depth: Int64, oldestReceivedAt: Timestamp?)] in
            var rows: [(app: String, depth: Int64, oldest: Int64)] = []
            try connection.query("SELECT app, count(*) AS depth, min(seq) AS oldest FROM spool GROUP BY app ORDER BY app", []) { row in
                rows.append((row.text("app") ?? "", row.integer("depth"), row.integer("oldest")))
            }
            var backlog: [(app: String, depth: Int64, oldestReceivedAt: Timestamp?)] = []
            for row in rows {
                var oldest: Timestamp?
                try connection.query("SELECT event FROM spool WHERE seq = ?1", [.integer(row.oldest)]) { entry in
                    if case .object(let event)? = try? JSONParser.parse(entry.blob("event")) {
                        oldest = event["received_at"]?.stringValue.flatMap { Timestamp(parsing: $0) }
                    }
                }
                backlog.append((row.app, row.depth, oldest))
            }
            return backlog
        }
    }

    /// When the oldest spooled event was received, or nil when the spool is empty.
    public func oldestReceivedAt() throws(SQLiteError) -> Timestamp? {
        try database.withConnection { (connection) throws(SQLiteError) -> Timestamp? in
            var oldest: Timestamp?
            try connection.query("SELECT event FROM spool ORDER BY seq LIMIT 1", []) { entry in
                if case .object(let event)? = try? JSONParser.parse(entry.blob("event")) {
                    oldest = event["received_at"]?.stringValue.flatMap { Timestamp(parsing: $0) }
                }
            }
            return oldest
        }
    }

    public func deadLetterCount() throws(SQLiteError) -> Int64 {
        try count("SELECT count(*) AS n FROM dead_letters")
    }

    /// A stored dead letter, with its row id.
    public struct StoredDeadLetter: Sendable {
        public var id: Int64
        public var receivedAt: String
        public var letter: DeadLetter
        /// The record's whole size: more than `letter.raw` holds when it was read shortened.
        public var rawBytes: Int

        public init(id: Int64, receivedAt: String, letter: DeadLetter, rawBytes: Int? = nil) {
            self.id = id
            self.receivedAt = receivedAt
            self.letter = letter
            self.rawBytes = rawBytes ?? letter.raw.count
        }

        /// What a listing shows of a letter (``listing(_:budget:)`` at its default budget): a
        /// letter over `previewOver` bytes, by its first `previewBytes`.
        public static let listingBudget = 8 << 20
        public static let previewOver = listingBudget / 16
        public static let previewBytes = listingBudget / 128

        /// `raw` as text; a record whose bytes are not UTF-8 also gets them exactly, as `raw_base64`.
        public var json: JSON { json(preview: nil) }

        /// With `preview`, `raw` is only the first that many bytes of the record (`raw_truncated`,
        /// with its size in `raw_bytes`), for a letter too large to list whole.
        func json(preview: Int?) -> JSON {
            var object: JSONObject = [
                "id": .int(id), "received_at": .string(receivedAt), "app": .string(letter.app), "format": .string(letter.format),
                "source": .string(letter.source), "record": .optional(letter.record), "message": .optional(letter.message),
                "code": .string(letter.error.code.rawValue), "field": .optional(letter.error.field), "error": .string(letter.error.message),
            ]
            if let preview, rawBytes > preview {
                // Cut before a character's continuation bytes, so that the cut adds no U+FFFD of its own.
                var cut = min(preview, letter.raw.count)
                while cut > 0, cut < letter.raw.count, letter.raw[cut] & 0xC0 == 0x80, preview - cut < 3 { cut -= 1 }
                object["raw"] = .string(String(decoding: letter.raw.prefix(cut), as: UTF8.self))
                object["raw_truncated"] = true
                object["raw_bytes"] = .int(Int64(rawBytes))
            } else {
                object["raw"] = .string(String(decoding: letter.raw, as: UTF8.self))
                if String(validating: letter.raw, as: UTF8.self) == nil { object["raw_base64"] = .string(Data(letter.raw).base64EncodedString()) }
            }
            return .object(object)
        }

        /// Listing rows that fit one answer (`budget` bytes of JSON, well inside a frame): a letter
        /// over a sixteenth of it (512 KiB by default, which as JSON may take seven times its size)
        /// is shown by a preview of a 128th (64 KiB), and the rows stop at the budget.
        /// - Returns: the rows, and whether every letter is among them.
        public static func listing(_ letters: [StoredDeadLetter], budget: Int = listingBudget) -> (rows: [JSON], complete: Bool) {
            var rows: [JSON] = []
            var total = 0
            for letter in letters {
                let row = letter.rawBytes > budget / 16 ? letter.json(preview: budget / 128) : letter.json
                let size = row.serialized().count
                guard total + size <= budget else { return (rows, false) }
                total += size
                rows.append(row)
            }
            return (rows, true)
        }
    }

    /// Dead letters, newest first, optionally for one app and/or only the given ids.
    /// - Parameter shortenOver: when given, a letter over that many bytes comes with only its
    ///   first `shortenTo` (``StoredDeadLetter/rawBytes`` keeps its size), so that a listing
    ///   never reads large letters whole.
    public func deadLetters(
        app: String?,
        ids: [Int64]? = nil,
        limit: Int,
        shortenOver: Int? = nil,
        shortenTo: Int = 0
    ) throws(SQLiteError) -> [StoredDeadLetter] {
        try database.withConnection { (connection) throws(SQLiteError) -> [StoredDeadLetter] in
            var rows: [StoredDeadLetter] = []
            let idList = ids.map { JSON.array($0.map(JSON.int)).serializedString() }
            let sql = """
                SELECT id, received_at, app, format, source, record, message, error_code, error_field, error_message,
                       CASE WHEN ?4 IS NOT NULL AND length(raw) > ?4 THEN substr(raw, 1, ?5) ELSE raw END AS raw, length(raw) AS raw_bytes
                FROM dead_letters
                WHERE (?1 IS NULL OR app = ?1) AND (?2 IS NULL OR id IN (SELECT value FROM json_each(?2)))
                ORDER BY id DESC LIMIT ?3
                """
            let parameters: [SQLiteValue] = [
                app.map(SQLiteValue.text) ?? .null, idList.map(SQLiteValue.text) ?? .null, .integer(Int64(limit)),
                shortenOver.map { .integer(Int64($0)) } ?? .null, .integer(Int64(shortenTo)),
            ]
            try connection.query(sql, parameters) { row in
                let error = EventError(
                    EventError.Code(rawValue: row.text("error_code") ?? ""),
                    field: row.text("error_field"),
                    row.text("error_message") ?? ""
                )
                rows.append(
                    StoredDeadLetter(
                        id: row.integer("id"),
                        receivedAt: row.text("received_at") ?? "",
                        letter: DeadLetter(
                            app: row.text("app") ?? "",
                            format: row.text("format") ?? "auto",
                            source: row.text("source") ?? "",
                            record: row.isNull("record") ? nil : Int(row.integer("record")),
                            message: row.isNull("message") ? nil : Int(row.integer("message")),
                            error: error,
                            raw: row.blob("raw")
                        ),
                        rawBytes: Int(row.integer("raw_bytes"))
                    )
                )
            }
            return rows
        }
    }

    /// After a replay: spools the accepted events, then removes their dead letters and records
    /// the new reason for those refused again. A crash in between leaves a dead letter whose
    /// next replay is counted as a duplicate, never stored twice.
    public func resolveReplay(
        accepted: [Int64],
        events: [CanonicalEvent],
        stillRefused: [(id: Int64, error: EventError)]
    ) throws(SQLiteError) -> (new: Int, duplicates: Int) {
        let counts = try append(events: events, deadLetters: [])
        try database.transaction { (connection) throws(SQLiteError) in
            try connection.executeMany("DELETE FROM dead_letters WHERE id = ?1", accepted.lazy.map { [.integer($0)] })
            try connection.executeMany(
                "UPDATE dead_letters SET error_code = ?2, error_field = ?3, error_message = ?4 WHERE id = ?1",
                stillRefused.lazy.map {
                    [.integer($0.id), .text($0.error.code.rawValue), $0.error.field.map(SQLiteValue.text) ?? .null, .text($0.error.message)]
                }
            )
        }
        return counts
    }

    /// Erases a person from ingest: records the suppression, and deletes their spooled events
    /// and every dead letter that names one of their ids.
    /// - Returns: how many spooled events and dead letters were removed.
    public func suppress(
        app: String,
        appNames: [String],
        userIds: [String],
        anonymousIds: [String]
    ) throws(SQLiteError) -> (spool: Int, deadLetters: Int) {
        let users = SQLiteValue.text(JSON.array(userIds.map(JSON.string)).serializedString())
        let anonymous = SQLiteValue.text(JSON.array(anonymousIds.map(JSON.string)).serializedString())
        let everyId = SQLiteValue.text(JSON.array((userIds + anonymousIds).map(JSON.string)).serializedString())
        let apps = SQLiteValue.text(JSON.array(([app] + appNames).map(JSON.string)).serializedString())
        return try database.transaction { (connection) throws(SQLiteError) -> (spool: Int, deadLetters: Int) in
            try connection.executeMany(
                "INSERT OR IGNORE INTO suppressed (app, kind, id) VALUES (?1, ?2, ?3)",
                userIds.map { [.text(app), .text("user"), .text($0)] } + anonymousIds.map { [.text(app), .text("anonymous"), .text($0)] }
            )
            try connection.executeMany(
                """
                DELETE FROM spool WHERE app = ?1 AND (
                    json_extract(CAST(event AS TEXT), '$.user_id') IN (SELECT value FROM json_each(?2))
                    OR (json_extract(CAST(event AS TEXT), '$.user_id') IS NULL
                        AND json_extract(CAST(event AS TEXT), '$.anonymous_id') IN (SELECT value FROM json_each(?3))))
                """,
                [[.text(app), users, anonymous]]
            )
            let spooled = connection.changes
            // A dead letter is raw input in any format: any quoted mention of an id removes it.
            try connection.executeMany(
                """
                DELETE FROM dead_letters WHERE app IN (SELECT value FROM json_each(?1))
                  AND EXISTS (SELECT 1 FROM json_each(?2) j WHERE instr(CAST(raw AS TEXT), '"' || j.value || '"') > 0)
                """,
                [[apps, everyId]]
            )
            return (spooled, connection.changes)
        }
    }

    /// Every suppressed person, as `app␟kind␟id` keys.
    public func suppressedKeys() throws(SQLiteError) -> Set<String> {
        try database.withConnection { (connection) throws(SQLiteError) -> Set<String> in
            var keys = Set<String>()
            try connection.query("SELECT app, kind, id FROM suppressed") { row in
                keys.insert(Suppressions.key(app: row.text("app") ?? "", kind: row.text("kind") ?? "", id: row.text("id") ?? ""))
            }
            return keys
        }
    }

    /// Adds to the dropped counts of suppressions.
    public func countDropped(_ counts: [String: Int]) throws(SQLiteError) {
        guard !counts.isEmpty else { return }
        try database.withConnection { (connection) throws(SQLiteError) in
            try connection.executeMany(
                "UPDATE suppressed SET dropped = dropped + ?4 WHERE app = ?1 AND kind = ?2 AND id = ?3",
                counts.map { key, count in
                    let parts = key.split(separator: "\u{1F}", omittingEmptySubsequences: false).map(String.init)
                    return [.text(parts[0]), .text(parts[1]), .text(parts[2]), .integer(Int64(count))]
                }
            )
        }
    }

    /// The cached settings of an app, by token or name.
    public func cachedApp(_ key: String) throws(SQLiteError) -> [UInt8]? {
        try database.withConnection { (connection) throws(SQLiteError) -> [UInt8]? in
            var config: [UInt8]?
            try connection.query("SELECT config FROM app_cache WHERE key = ?1", [.text(key)]) { row in config = row.blob("config") }
            return config
        }
    }

    public func cacheApp(keys: [String], config: [UInt8]) throws(SQLiteError) {
        try database.withConnection { (connection) throws(SQLiteError) in
            try connection.executeMany("INSERT OR REPLACE INTO app_cache (key, config) VALUES (?1, ?2)", keys.map { [.text($0), .blob(config)] })
        }
    }

    /// Forgets the cached write keys of an app (after `cairn apps rotate-key`).
    public func forgetWriteKeys(appToken: String) throws(SQLiteError) {
        try database.withConnection { (connection) throws(SQLiteError) in
            try connection.executeMany(
                "DELETE FROM app_cache WHERE key LIKE 'key:%' AND json_extract(CAST(config AS TEXT), '$.token') = ?1",
                [[.text(appToken)]]
            )
        }
    }

    public func forgetApp(_ key: String) throws(SQLiteError) {
        try database.withConnection { (connection) throws(SQLiteError) in
            try connection.executeMany("DELETE FROM app_cache WHERE key = ?1", [[.text(key)]])
        }
    }

    /// The value of a query that selects one number named `n`.
    private func count(_ sql: String) throws(SQLiteError) -> Int64 {
        try database.withConnection { (connection) throws(SQLiteError) -> Int64 in
            var value: Int64 = 0
            try connection.query(sql) { row in value = row.integer("n") }
            return value
        }
    }

    private static func insert(
        _ deadLetters: [DeadLetter],
        receivedAt: String,
        on connection: borrowing SQLiteDatabase.Connection
    ) throws(SQLiteError) {
        guard !deadLetters.isEmpty else { return }
        try connection.executeMany(
            """
            INSERT INTO dead_letters (received_at, app, format, source, record, message, error_code, error_field, error_message, raw)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
            """,
            deadLetters.lazy.map { letter in
                [
                    .text(receivedAt), .text(letter.app), .text(letter.format), .text(letter.source),
                    letter.record.map { .integer(Int64($0)) } ?? .null, letter.message.map { .integer(Int64($0)) } ?? .null,
                    .text(letter.error.code.rawValue), letter.error.field.map(SQLiteValue.text) ?? .null, .text(letter.error.message),
                    .blob(letter.raw),
                ]
            }
        )
    }
}
