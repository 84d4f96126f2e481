import CairnCore
import CairnMetrics
import CairnPostgres
import CairnRollups
import CairnWire
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// A destination declared in the stack file: the export service follows one app's stored
/// events and identity links and POSTs them to a Segment-compatible endpoint as they are
/// committed, keeping a checkpoint in PostgreSQL after every batch the endpoint acknowledged.
///
/// ```json
/// "settings": {"destinations": [
///   {"name": "warehouse", "app": "acme", "url": "https://api.segment.io",
///    "write_key_env": "WAREHOUSE_WRITE_KEY", "gzip": true, "start": "beginning",
///    "poll_interval_ms": 1000, "retry": {"max_attempts": 10, "initial_backoff_ms": 500,
///    "max_backoff_ms": 60000, "attempt_timeout_ms": 30000}}]}
/// ```
public struct ContinuousDestination: Sendable {
    /// Where the messages go.
    public enum Target: Sendable {
        /// A Segment-compatible batch endpoint (`type: "segment"`, the default).
        case segment(SegmentHTTPDestination)
        /// Gzip JSON lines in an S3-compatible bucket (`type: "s3"`).
        case objectStore(ObjectStoreDestination)
    }

    /// Names the checkpoint: renaming a destination starts it over.
    public var name: String
    public var app: String
    public var target: Target
    /// The endpoint's URL, or `s3://bucket/prefix`: for the status and the logs.
    public var url: String {
        switch target {
        case .segment(let endpoint): endpoint.url
        case .objectStore(let store): store.url
        }
    }
    public var retry: RetryPolicy {
        switch target {
        case .segment(let endpoint): endpoint.retry
        case .objectStore(let store): store.bucket.retry
        }
    }
    /// Where a destination without a checkpoint starts: the app's first stored event, or the
    /// first one committed after it starts.
    public var startsAtBeginning: Bool
    /// How often a caught-up destination looks for new events.
    public var pollInterval: Duration
    /// Rows read in one snapshot, so that a long catch-up never holds one snapshot open for
    /// long. Defaults to `1_000_000`.
    public var rowsPerSnapshot = 1_000_000
    /// The longest one snapshot is read. Defaults to 30 s.
    public var snapshotDuration: Duration = .seconds(30)

    /// The destinations of a service's settings; the write key comes from the environment
    /// variable `write_key_env` names (or, for local endpoints, `write_key` itself).
    public static func parse(settings: JSONObject, environment: [String: String]) throws(ExportError) -> [ContinuousDestination] {
        guard let list = settings["destinations"] else { return [] }
        guard let entries = list.arrayValue else { throw invalid("settings.destinations must be an array") }
        var destinations: [ContinuousDestination] = []
        for (index, entry) in entries.enumerated() {
            let path = "settings.destinations[\(index)]"
            guard entry.objectValue != nil else { throw invalid("\(path) must be an object") }
            guard let name = entry["name"]?.stringValue, !name.isEmpty,
                name.unicodeScalars.allSatisfy({ CharacterSet.alphanumerics.contains($0) || "-_.".unicodeScalars.contains($0) })
            else {
                throw invalid("\(path).name must be a non-empty name of letters, digits, '-', '_' or '.'")
            }
            guard !destinations.contains(where: { $0.name == name }) else { throw invalid("\(path).name '\(name)' is used twice") }
            guard let app = entry["app"]?.stringValue, !app.isEmpty else { throw invalid("\(path).app must name the app to export") }
            let type = entry["type"]?.stringValue ?? "segment"
            guard ["segment", "s3"].contains(type) else { throw invalid("\(path).type must be \"segment\" or \"s3\"") }
            /// A Segment destination's write key: from the variable `write_key_env` names, or inline.
            func writeKey() throws(ExportError) -> String {
                if let variable = entry["write_key_env"]?.stringValue {
                    guard let value = environment[variable], !value.isEmpty else {
                        throw invalid("\(path).write_key_env names \(variable), which is not set in the export service's environment")
                    }
                    return value
                }
                guard let value = entry["write_key"]?.stringValue else {
                    throw invalid("\(path) needs write_key_env (the variable holding the write key) or write_key")
                }
                return value
            }
            func flag(_ key: String) throws(ExportError) -> Bool? {
                guard let value = entry[key] else { return nil }
                guard let bool = value.boolValue else { throw invalid("\(path).\(key) must be true or false") }
                return bool
            }
            func milliseconds(_ object: JSON?, _ key: String, at scope: String, minimum: Int64) throws(ExportError) -> Duration? {
                guard let value = object?[key] else { return nil }
                guard let number = value.intValue, number >= minimum else {
                    throw invalid("\(scope).\(key) must be a whole number of at least \(minimum)")
                }
                return .milliseconds(number)
            }
            let start = entry["start"]?.stringValue ?? "beginning"
            guard entry["start"] == nil || ["beginning", "now"].contains(start) else {
                throw invalid("\(path).start must be \"beginning\" or \"now\"")
            }
            var retry = RetryPolicy()
            if let object = entry["retry"] {
                guard object.objectValue != nil else { throw invalid("\(path).retry must be an object") }
                if let attempts = object["max_attempts"] {
                    guard let count = attempts.intValue, count >= 1 else { throw invalid("\(path).retry.max_attempts must be at least 1") }
                    retry.maximumAttempts = Int(count)
                }
                retry.initialBackoff = try milliseconds(object, "initial_backoff_ms", at: "\(path).retry", minimum: 1) ?? retry.initialBackoff
                retry.maximumBackoff = try milliseconds(object, "max_backoff_ms", at: "\(path).retry", minimum: 1) ?? retry.maximumBackoff
                retry.attemptTimeout = try milliseconds(object, "attempt_timeout_ms", at: "\(path).retry", minimum: 10) ?? retry.attemptTimeout
            }
            let target: Target
            if type == "s3" {
                target = .objectStore(try objectStore(entry, app: app, at: path, retry: retry, environment: environment))
            } else {
                guard let url = entry["url"]?.stringValue, !url.isEmpty else { throw invalid("\(path).url must be the endpoint's URL") }
                let key = try writeKey()
                do {
                    target = .segment(try SegmentHTTPDestination(url: url, writeKey: key, gzip: try flag("gzip") ?? false, retry: retry))
                } catch {
                    throw invalid("\(path).url '\(url)' is not an http:// or https:// URL")
                }
            }
            destinations.append(
                ContinuousDestination(
                    name: name,
                    app: app,
                    target: target,
                    startsAtBeginning: start == "beginning",
                    pollInterval: try milliseconds(entry, "poll_interval_ms", at: path, minimum: 10) ?? .seconds(1)
                )
            )
        }
        return destinations
    }

    /// An `s3` entry: `endpoint`, `bucket`, `region`, `prefix`, `format`, the credentials (from
    /// the variables `access_key_id_env` and `secret_access_key_env` name, by default the AWS
    /// ones), and the object limits.
    private static func objectStore(
        _ entry: JSON,
        app destinationApp: String,
        at path: String,
        retry: RetryPolicy,
        environment: [String: String]
    ) throws(ExportError) -> ObjectStoreDestination {
        func text(_ key: String) -> String? { entry[key]?.stringValue }
        /// Every scalar of `text` is one of `allowed` (ASCII only).
        func only(_ text: String, _ allowed: String) -> Bool {
            text.unicodeScalars.allSatisfy { $0.isASCII && allowed.unicodeScalars.contains($0) }
        }
        let lower = "abcdefghijklmnopqrstuvwxyz0123456789"
        guard let bucket = text("bucket"), (3...63).contains(bucket.utf8.count), only(bucket, lower + "-."),
            let first = bucket.first, let last = bucket.last, first.isLetter || first.isNumber, last.isLetter || last.isNumber,
            !bucket.contains("..")
        else {
            throw invalid("\(path).bucket must be a bucket name (3 to 63 of a-z, 0-9, '-' and '.', starting and ending with a letter or digit)")
        }
        let region = text("region") ?? "us-east-1"
        guard !region.isEmpty, region.utf8.count <= 64, only(region, lower + "-") else {
            throw invalid("\(path).region must be a region name such as eu-west-1")
        }
        let endpoint = text("endpoint") ?? "https://s3.\(region).amazonaws.com"
        guard URL(string: endpoint)?.user == nil else {
            throw invalid("\(path).endpoint must not hold credentials; give them in access_key_id_env and secret_access_key_env")
        }
        guard only(destinationApp, lower + "ABCDEFGHIJKLMNOPQRSTUVWXYZ-_.") else {
            throw invalid("\(path).app must be an app's name or token (letters, digits, '-', '_' and '.') to name the objects' keys")
        }
        var prefix = text("prefix") ?? ""
        if !prefix.isEmpty && !prefix.hasSuffix("/") { prefix += "/" }
        // S3's safe key characters only: no '..' segment, '?', '#' or '%' a proxy could read as a path or a query.
        guard prefix.utf8.count <= 512, !prefix.hasPrefix("/"), only(prefix, lower + "ABCDEFGHIJKLMNOPQRSTUVWXYZ!-_.*'()/="),
            !prefix.split(separator: "/").contains(where: { $0 == ".." || $0 == "." })
        else {
            throw invalid(
                "\(path).prefix must be a key prefix such as \"cairn/\" (letters, digits and !-_.*'()=/, no leading '/', no '.' or '..' segment)"
            )
        }
        guard let format = ObjectStoreDestination.Format(rawValue: text("format") ?? "segment") else {
            throw invalid("\(path).format must be \"segment\" or \"canonical\"")
        }
        /// A credential from the variable `env` names (by default AWS's own), or for a local store given inline.
        func credential(_ key: String, env: String, default variable: String) throws(ExportError) -> String {
            if let value = text(key), !value.isEmpty { return value }
            let name = text(env) ?? variable
            guard let value = environment[name], !value.isEmpty else {
                throw invalid("\(path).\(env) names \(name), which is not set in the export service's environment")
            }
            return value
        }
        let signer = SignatureV4(
            accessKeyId: try credential("access_key_id", env: "access_key_id_env", default: "AWS_ACCESS_KEY_ID"),
            secretAccessKey: try credential("secret_access_key", env: "secret_access_key_env", default: "AWS_SECRET_ACCESS_KEY"),
            region: region
        )
        var store = ObjectStoreDestination(
            bucket: try S3Bucket(endpoint: endpoint, bucket: bucket, signer: signer, retry: retry),
            prefix: prefix,
            format: format
        )
        func whole(_ key: String, minimum: Int, maximum: Int) throws(ExportError) -> Int? {
            guard let value = entry[key] else { return nil }
            guard let number = value.intValue, number >= minimum, number <= maximum else {
                throw invalid("\(path).\(key) must be a whole number from \(minimum) to \(maximum)")
            }
            return Int(number)
        }
        store.partBytes = try whole("part_bytes", minimum: ObjectStoreDestination.minimumPartBytes, maximum: 1 << 30) ?? store.partBytes
        store.maximumObjectBytes = try whole("max_object_bytes", minimum: 1024, maximum: 5 << 30) ?? store.maximumObjectBytes
        store.maximumObjectAge = .seconds(try whole("max_object_age_s", minimum: 1, maximum: 86_400) ?? 300)
        return store
    }

    private static func invalid(_ message: String) -> ExportError {
        ExportError(.invalidDestination, message)
    }
}

/// Where a destination's stream stands: the last message it acknowledged or refused for good.
///
/// The stream is every event and identity link of the app in the order (transaction that
/// stored it, event time, events before links, event id or link key). Transactions are read
/// only once none older is still running, so the order never changes behind a checkpoint.
struct StreamPosition: Sendable, Equatable {
    var xid: Int64
    /// The time as PostgreSQL wrote it, handed back unparsed (it may be `-infinity`).
    var at: String
    var eventId: Int64
    var aliasKind: String
    var aliasId: String

    /// After an event: the links of its transaction and time follow it.
    static func event(xid: Int64, at: String, id: Int64) -> StreamPosition {
        StreamPosition(xid: xid, at: at, eventId: id, aliasKind: "", aliasId: "")
    }

    /// After a link: every event of its transaction and time went before it.
    static func alias(xid: Int64, at: String, kind: String, id: String) -> StreamPosition {
        StreamPosition(xid: xid, at: at, eventId: .max, aliasKind: kind, aliasId: id)
    }
}

/// The checkpoints and refused batches of continuous destinations, in PostgreSQL.
enum ExportCheckpoints {
    /// The destination's position, creating its checkpoint the first time: at the start, or
    /// for `start: now` just before the oldest transaction of this database still running.
    static func open(_ destination: ContinuousDestination, token: String, on connection: PostgresConnection) throws(PostgresError) -> StreamPosition {
        let select = """
            SELECT after_xid, after_at::text AS after_at, after_event_id, after_alias_kind, after_alias_id, url FROM export_checkpoints
            WHERE app_token = $1 AND destination = $2
            """
        var row = try connection.execute(select, [token, destination.name]).firstRow
        if row == nil {
            try connection.execute(
                """
                INSERT INTO export_checkpoints (app_token, destination, url, after_xid, after_at)
                SELECT $1, $2, $3, CASE WHEN $4 THEN -1 ELSE (\(LogHorizon.sql))::bigint - 1 END,
                       CASE WHEN $4 THEN '-infinity'::timestamptz ELSE 'infinity'::timestamptz END
                ON CONFLICT (app_token, destination) DO NOTHING
                """,
                [token, destination.name, destination.url, destination.startsAtBeginning ? "true" : "false"]
            )
            row = try connection.execute(select, [token, destination.name]).firstRow
        } else if row?["url"] != destination.url {
            // The same destination moved to another URL: the checkpoint stays, the status shows where it goes.
            try connection.execute(
                "UPDATE export_checkpoints SET url = $3 WHERE app_token = $1 AND destination = $2",
                [token, destination.name, destination.url]
            )
        }
        guard let row, let xid = row["after_xid", as: Int64.self], let at = row["after_at"], let eventId = row["after_event_id", as: Int64.self]
        else {
            throw PostgresError(.queryFailed, "export_checkpoints gave no position for \(destination.name)")
        }
        return StreamPosition(xid: xid, at: at, eventId: eventId, aliasKind: row["after_alias_kind"] ?? "", aliasId: row["after_alias_id"] ?? "")
    }

    /// What one checkpoint write records besides the new position.
    struct Progress: Sendable {
        var delivered = 0
        var refused = 0
        var skipped = 0
    }

    /// Moves the checkpoint to `position`, adding `progress` to the totals, in one statement.
    static func advance(
        _ name: String,
        token: String,
        to position: StreamPosition,
        _ progress: Progress,
        on connection: PostgresConnection
    ) throws(PostgresError) {
        try connection.execute(
            """
            UPDATE export_checkpoints SET
                after_xid = $3, after_at = $4::timestamptz, after_event_id = $5, after_alias_kind = $6, after_alias_id = $7,
                delivered_messages = delivered_messages + $8, delivered_batches = delivered_batches + sign($8::bigint),
                failed_messages = failed_messages + $9, failed_batches = failed_batches + sign($9::bigint),
                skipped_messages = skipped_messages + $10,
                last_delivered_at = CASE WHEN $8::bigint > 0 THEN now() ELSE last_delivered_at END, updated_at = now()
            WHERE app_token = $1 AND destination = $2
            """,
            [
                token, name, String(position.xid), position.at, String(position.eventId), position.aliasKind, position.aliasId,
                String(progress.delivered), String(progress.refused), String(progress.skipped),
            ]
        )
    }

    /// Keeps a batch refused for good, with the response, and moves past it, in one transaction.
    static func refuse(
        _ name: String,
        token: String,
        through position: StreamPosition,
        _ progress: Progress,
        body: [UInt8],
        delivery: SegmentHTTPDestination.Delivery,
        on connection: PostgresConnection
    ) throws(PostgresError) {
        try connection.transaction { () throws(PostgresError) in
            try connection.execute(
                """
                INSERT INTO export_failed_batches (app_token, destination, status, response, messages, body) VALUES ($1, $2, $3, $4, $5, $6)
                """,
                [token, name, String(delivery.status ?? 0), delivery.detail, String(progress.refused), String(decoding: body, as: UTF8.self)]
            )
            try advance(name, token: token, to: position, progress, on: connection)
            try recordError(name, token: token, Self.describe(delivery), on: connection)
        }
    }

    static func recordError(_ name: String, token: String, _ message: String, on connection: PostgresConnection) throws(PostgresError) {
        try connection.execute(
            "UPDATE export_checkpoints SET last_error = $3, last_error_at = now(), updated_at = now() WHERE app_token = $1 AND destination = $2",
            [token, name, message]
        )
    }

    /// One line on what became of a delivery that failed.
    static func describe(_ delivery: SegmentHTTPDestination.Delivery) -> String {
        "\(delivery.status.map { "HTTP \($0)" } ?? "no response") after \(delivery.attempts) attempt\(delivery.attempts == 1 ? "" : "s"): \(delivery.detail.prefix(500))"
    }

    /// Events after a checkpoint in stream order; the arguments name the checkpoint's
    /// transaction, time and event id (columns or parameters). The follower and the status share it.
    static func eventsAfter(xid: String, at: String, eventId: String) -> String {
        "stored_xid >= \(xid) AND (stored_xid, inserted_at, internal_event_id) > (\(xid), \(at), \(eventId))"
    }

    /// Identity links after a checkpoint in stream order, their keys compared byte-wise.
    static func linksAfter(xid: String, at: String, kind: String, id: String) -> String {
        #"stored_xid >= \#(xid) AND (stored_xid, aliased_at, alias_kind COLLATE "C", alias_id COLLATE "C") > (\#(xid), \#(at), \#(kind) COLLATE "C", \#(id) COLLATE "C")"#
    }

    /// Every checkpoint with its totals and what is still to send: `export.status`.
    static func status(on connection: PostgresConnection) throws(PostgresError) -> [JSONObject] {
        try connection.execute("SET TimeZone = 'UTC'")
        let rows = try connection.execute(
            """
            SELECT c.destination, a.name, c.app_token, c.url, c.after_xid, c.after_at::text AS after_at, c.delivered_messages,
                   c.delivered_batches, c.failed_messages, c.failed_batches, c.skipped_messages,
                   c.last_delivered_at::text AS last_delivered_at, c.last_error, c.last_error_at::text AS last_error_at,
                   e.pending AS pending_events, round(extract(epoch FROM now() - e.oldest)::numeric, 3)::text AS lag_s,
                   l.pending AS pending_links
            FROM export_checkpoints c
            LEFT JOIN apps a ON a.token = c.app_token
            CROSS JOIN LATERAL (
                SELECT count(*) AS pending, min(received_at) AS oldest FROM events
                WHERE app_token = c.app_token AND \(eventsAfter(xid: "c.after_xid", at: "c.after_at", eventId: "c.after_event_id"))
            ) e
            CROSS JOIN LATERAL (
                SELECT count(*) AS pending FROM identity_aliases
                WHERE app_token = c.app_token AND alias_kind = 'user' AND \(linksAfter(xid: "c.after_xid", at: "c.after_at", kind: "c.after_alias_kind", id: "c.after_alias_id"))
            ) l
            ORDER BY c.destination, a.name
            """
        ).namedRows
        return rows.map { row in
            func int(_ column: String) -> JSON { row[column, as: Int64.self].map { .int($0) } ?? .null }
            let pending = (row["pending_events", as: Int64.self] ?? 0) + (row["pending_links", as: Int64.self] ?? 0)
            return [
                "destination": .optional(row["destination"]), "app": .optional(row["name"] ?? row["app_token"]), "url": .optional(row["url"]),
                "checkpoint": .string(row["after_xid"] == "-1" ? "start" : "xid \(row["after_xid"] ?? "?") at \(row["after_at"] ?? "?")"),
                "delivered": int("delivered_messages"), "batches": int("delivered_batches"), "failed": int("failed_messages"),
                "failed_batches": int("failed_batches"), "skipped": int("skipped_messages"),
                "pending": .int(pending), "lag_s": row["lag_s", as: Double.self].map { .double($0) } ?? .double(0),
                "last_delivered_at": .optional(row["last_delivered_at"]), "last_error": .optional(row["last_error"]),
                "last_error_at": .optional(row["last_error_at"]),
            ]
        }
    }
}

/// What a follower is doing. Changes are functions of the current phase; the phase becomes
/// words only for `export.status`.
enum FollowerPhase: Sendable, Equatable {
    case starting
    /// No app has the destination's app name yet.
    case waitingForApp(String)
    /// Everything committed has been handed on; `lastFailure` is the last refused attempt, if
    /// one was retried in the latest snapshot.
    case following(lastFailure: String?)
    /// A snapshot stopped at its row or time limit; the next one starts at once.
    case catchingUp(lastFailure: String?)
    /// The endpoint or the database failed; the follower waits and tries again.
    case retrying(String?)

    /// The phase after one snapshot with this outcome.
    func after(_ outcome: Follower.Outcome, lastFailure: String?) -> FollowerPhase {
        switch outcome {
        case .caughtUp, .holding: .following(lastFailure: lastFailure)
        case .more: .catchingUp(lastFailure: lastFailure)
        case .unavailable: .retrying(lastFailure)
        case .waitingForApp: self
        }
    }

    /// The app exists: a follower that was waiting for it, or just started, now follows.
    func appFound() -> FollowerPhase {
        switch self {
        case .starting, .waitingForApp: .following(lastFailure: nil)
        case .following, .catchingUp, .retrying: self
        }
    }

    var name: String {
        switch self {
        case .starting: "starting"
        case .waitingForApp: "waiting for app"
        case .following: "following"
        case .catchingUp: "catching up"
        case .retrying: "retrying"
        }
    }

    var detail: String? {
        switch self {
        case .starting: nil
        case .waitingForApp(let app): "no app is named '\(app)' yet"
        case .following(let failure), .catchingUp(let failure), .retrying(let failure): failure
        }
    }
}

/// A follower's phase, shared with `export.status`.
final class FollowerState: Sendable {
    private let phase = Mutex(FollowerPhase.starting)

    var current: FollowerPhase { phase.withLock { $0 } }

    func set(_ new: FollowerPhase) {
        phase.withLock { $0 = new }
    }

    func update(_ transition: (FollowerPhase) -> FollowerPhase) {
        phase.withLock { $0 = transition($0) }
    }

    var json: JSONObject {
        let phase = current
        return ["state": .string(phase.name), "state_detail": .optional(phase.detail)]
    }
}

/// Follows one ``ContinuousDestination``: reads what was committed after its checkpoint in
/// snapshots, sends it in batches, and moves the checkpoint after each batch the endpoint
/// answered for good. Killed at any moment, it repeats at most the batch in flight, whose
/// messages carry the same `messageId`s the second time.
struct Follower: Sendable {
    let destination: ContinuousDestination
    let pool: PostgresPool
    let wakeups: PostgresNotifications
    /// Rings when the app's events or identity links commit.
    let committed: Doorbell
    let logger: Logger
    let state = FollowerState()

    init(destination: ContinuousDestination, pool: PostgresPool, wakeups: PostgresNotifications, logger: Logger) {
        self.destination = destination
        self.pool = pool
        self.wakeups = wakeups
        // Every app's commits ring it: the destination learns its app's token only once the app exists.
        committed = wakeups.doorbell(channels: [LogNotification.events, LogNotification.folded])
        self.logger = logger
    }

    enum Outcome: Equatable {
        /// Everything committed has been handed on.
        case caughtUp
        /// The snapshot's row or time limit was reached: read on at once.
        case more
        /// The endpoint stayed unavailable through a whole retry round.
        case unavailable
        case waitingForApp
        /// An object store's last object is not due yet: it was not written, and is read again
        /// from the checkpoint at this time (or sooner, should it fill).
        case holding(until: Timestamp)
    }

    func run() async {
        if case .objectStore(let store) = destination.target {
            await store.abortIncompleteUploads(destination: destination.name, app: destination.app, logger: logger)
        }
        var databaseBackoff: Duration = .seconds(1)
        var wait = CommitWait(bell: committed, notifications: wakeups)
        while !Task.isCancelled {
            let seen = wait.rings
            var pause: Duration
            var caughtUp = false
            do {
                let outcome = try await followOnce()
                databaseBackoff = .seconds(1)
                switch outcome {
                case .caughtUp, .waitingForApp:
                    pause = outcome == .caughtUp ? destination.pollInterval : max(destination.pollInterval, .seconds(1))
                    caughtUp = true
                case .more: pause = .zero
                case .unavailable: pause = destination.retry.maximumBackoff
                case .holding(let until):
                    // Read again when the object falls due: reading it sooner would only read,
                    // compress and drop it again. One that fills meanwhile closes at its size then.
                    pause = max(.milliseconds(100), .microseconds(max(0, until.microseconds - Timestamp.now().microseconds)))
                }
            } catch {
                if Task.isCancelled { return }
                logger.error("continuous export failed; retrying", metadata: ["destination": "\(destination.name)", "error": "\(error)"])
                state.set(.retrying("\(error)"))
                pause = databaseBackoff
                databaseBackoff = min(databaseBackoff * 2, .seconds(30))
            }
            if caughtUp {
                await wait.idle(after: seen, poll: pause)
            } else if pause > .zero {
                try? await Task.sleep(for: pause)
            }
        }
    }

    /// One snapshot's worth: everything committed after the checkpoint, up to the row limit.
    func followOnce() async throws -> Outcome {
        let destination = self.destination
        guard let token = try await pool.withConnection({ try $0.appToken(for: destination.app) }) else {
            state.set(.waitingForApp(destination.app))
            return .waitingForApp
        }
        state.update { $0.appFound() }
        let start = try await pool.withConnection { try ExportCheckpoints.open(destination, token: token, on: $0) }
        let limit = destination.rowsPerSnapshot
        return try await pool.withSession { session in
            let aliases = try await session.run { connection in
                try connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                try connection.execute("SET LOCAL TimeZone = 'UTC'")
                let horizon = try LogHorizon.read(on: connection)
                let below = "stored_xid < \(horizon)"
                try connection.execute(
                    """
                    DECLARE follow_cursor NO SCROLL CURSOR FOR
                    SELECT stored_xid, \(StoredEvents.columns) FROM events
                    WHERE app_token = $1 AND \(below) AND \(ExportCheckpoints.eventsAfter(xid: "$2::bigint", at: "$3::timestamptz", eventId: "$4::bigint"))
                    ORDER BY stored_xid, inserted_at, internal_event_id
                    """,
                    [token, String(start.xid), start.at, String(start.eventId)]
                )
                return try connection.execute(
                    """
                    SELECT stored_xid, aliased_at::text AS aliased_at, alias_kind, alias_id, user_id FROM identity_aliases
                    WHERE app_token = $1 AND alias_kind = 'user' AND \(below) AND \(ExportCheckpoints.linksAfter(xid: "$2::bigint", at: "$3::timestamptz", kind: "$4", id: "$5"))
                    ORDER BY stored_xid, aliased_at, alias_kind COLLATE "C", alias_id COLLATE "C"
                    LIMIT $6
                    """,
                    [token, String(start.xid), start.at, start.aliasKind, start.aliasId, String(limit)]
                ).namedRows
            }
            var run = DeliveryRun(destination: destination, token: token, pool: pool, logger: logger, start: start)
            let outcome = try await run.stream(aliases: aliases, session: session)
            _ = try await session.run { try $0.execute("COMMIT") }
            state.update { $0.after(outcome, lastFailure: run.lastFailure) }
            return outcome
        }
    }
}

/// One snapshot's delivery: merges the events cursor with the identity links in stream
/// order, assembles batches, sends them, and moves the checkpoint after each answer.
struct DeliveryRun {
    let destination: ContinuousDestination
    let token: String
    let pool: PostgresPool
    let logger: Logger
    private var batch = BatchAssembler()
    /// The object being written, for an object-store destination.
    private var object: OpenObject?
    /// The last message taken into a batch or skipped.
    private var consumed: StreamPosition
    private var checkpointed: StreamPosition
    /// Messages skipped since the checkpoint last moved; counted when it next moves.
    private var skipped = 0
    /// The last failure this run saw, for the status.
    private(set) var lastFailure: String?

    init(destination: ContinuousDestination, token: String, pool: PostgresPool, logger: Logger, start: StreamPosition) {
        self.destination = destination
        self.token = token
        self.pool = pool
        self.logger = logger
        consumed = start
        checkpointed = start
    }

    /// An identity link read from the snapshot, with its place in the stream.
    struct Link {
        var xid: Int64
        var time: Timestamp
        var alias: StoredAlias
        var position: StreamPosition
    }

    mutating func stream(aliases rows: [PostgresRow], session: PostgresSession) async throws -> Follower.Outcome {
        let token = self.token
        let links: [Link] = rows.compactMap { row in
            guard let xid = row["stored_xid", as: Int64.self], let at = row["aliased_at"], let time = Timestamp(parsing: at),
                let kind = row["alias_kind"], let previous = row["alias_id"], let user = row["user_id"]
            else { return nil }
            return Link(
                xid: xid,
                time: time,
                alias: StoredAlias(appToken: token, previousId: previous, userId: user, aliasedAt: time),
                position: .alias(xid: xid, at: at, kind: kind, id: previous)
            )
        }
        let limit = destination.rowsPerSnapshot
        let linksCapped = rows.count >= limit
        var nextLink = 0
        var events = 0
        /// Links go before the first event of a later transaction or time.
        func linksBefore(_ xid: Int64, _ time: Timestamp) -> Bool {
            nextLink < links.count && (links[nextLink].xid, links[nextLink].time.microseconds) < (xid, time.microseconds)
        }
        let began = ContinuousClock.now
        var eventsCapped = false
        pages: while true {
            if events >= limit || ContinuousClock.now - began > destination.snapshotDuration {
                eventsCapped = true
                break
            }
            let rows = try await session.run { try $0.execute("FETCH 5000 FROM follow_cursor").namedRows }
            if rows.isEmpty { break }
            events += rows.count
            for row in rows {
                guard let xid = row["stored_xid", as: Int64.self], let at = row["inserted_at"], let time = Timestamp(parsing: at),
                    let id = row["internal_event_id", as: Int64.self]
                else { continue }
                // Links were read up to a limit: past the last one read, the order is unknown.
                if linksCapped, let last = links.last, (xid, time.microseconds) > (last.xid, last.time.microseconds) { break pages }
                while linksBefore(xid, time) {
                    let link = links[nextLink]
                    nextLink += 1
                    guard try await take(.link(link), at: link.position) else { return .unavailable }
                }
                let position = StreamPosition.event(xid: xid, at: at, id: id)
                let item: Item
                do throws(EventError) {
                    item = .event(try StoredEvents.event(from: row))
                } catch {
                    logger.error(
                        "skipping unreadable stored event",
                        metadata: ["destination": "\(destination.name)", "internal_event_id": "\(id)", "error": "\(error)"]
                    )
                    item = .unreadable
                }
                guard try await take(item, at: position) else { return .unavailable }
            }
        }
        if !eventsCapped {
            while nextLink < links.count {
                let link = links[nextLink]
                nextLink += 1
                guard try await take(.link(link), at: link.position) else { return .unavailable }
            }
        }
        if case .objectStore(let store) = destination.target {
            return try await finishObjects(store, capped: eventsCapped || linksCapped)
        }
        guard try await flush() else { return .unavailable }
        return eventsCapped || linksCapped ? .more : .caughtUp
    }

    /// What the stream hands on: an event, an identity link, or a stored row that no longer reads.
    enum Item {
        case event(CanonicalEvent)
        case link(Link)
        case unreadable
    }

    /// Takes one item into the destination's batch or object; false when it is unavailable.
    private mutating func take(_ item: Item, at position: StreamPosition) async throws -> Bool {
        switch destination.target {
        case .segment:
            let message: [UInt8]?
            switch item {
            case .event(let event):
                message = SegmentMapper.fitted(SegmentMapper.message(for: event))?.bytes
                if message == nil {
                    logger.warning(
                        "skipping a message larger than 32000 bytes even without properties",
                        metadata: ["destination": "\(destination.name)", "internal_event_id": "\(event.internalEventIdHex)"]
                    )
                }
            case .link(let link): message = JSON.object(SegmentMapper.message(for: link.alias)).serialized()
            case .unreadable: message = nil
            }
            return try await take(message, at: position)
        case .objectStore(let store):
            return try await takeIntoObject(store, item, at: position)
        }
    }

    /// Adds one message (nil: skipped) to the batch, sending the batch first when it is full;
    /// false when the endpoint is unavailable.
    private mutating func take(_ message: [UInt8]?, at position: StreamPosition) async throws -> Bool {
        if let message {
            if !batch.fits(message) {
                guard try await ship() else { return false }
            }
            batch.append(message)
        } else {
            skipped += 1
        }
        consumed = position
        return true
    }

    /// Sends what is pending; with nothing to send, still records skipped messages.
    mutating func flush() async throws -> Bool {
        if !batch.isEmpty { return try await ship() }
        if consumed != checkpointed { try await moveCheckpoint(ExportCheckpoints.Progress(skipped: skipped)) }
        return true
    }

    /// Sends the pending batch and moves the checkpoint past it once the endpoint answered for
    /// good: accepted, or refused with a final status (the batch is then kept, with the answer).
    private mutating func ship() async throws -> Bool {
        guard case .segment(let endpoint) = destination.target else { return false }
        let (body, count) = batch.take(sentAt: .now())
        let delivery = await endpoint.send(body)
        if Task.isCancelled { throw CancellationError() }
        if delivery.delivered {
            try await moveCheckpoint(ExportCheckpoints.Progress(delivered: count, skipped: skipped))
            CairnMetric.batches.increment("destination", "ok")
            CairnMetric.events.increment(by: count, "destination", "delivered")
            return true
        }
        CairnMetric.batches.increment("destination", "failed")
        let description = ExportCheckpoints.describe(delivery)
        lastFailure = description
        let (name, token, position) = (destination.name, token, consumed)
        if delivery.unavailable {
            logger.error("destination unavailable; will retry", metadata: ["destination": "\(name)", "error": "\(description)"])
            try await pool.withConnection { try ExportCheckpoints.recordError(name, token: token, description, on: $0) }
            return false
        }
        logger.error(
            "destination refused a batch; it is kept in export_failed_batches",
            metadata: ["destination": "\(name)", "messages": "\(count)", "error": "\(description)"]
        )
        let progress = ExportCheckpoints.Progress(refused: count, skipped: skipped)
        CairnMetric.events.increment(by: count, "destination", "refused")
        try await pool.withConnection {
            try ExportCheckpoints.refuse(name, token: token, through: position, progress, body: body, delivery: delivery, on: $0)
        }
        checkpointed = position
        skipped = 0
        return true
    }

    // MARK: - Objects

    /// Adds an item's line to the open object (opening one after the checkpoint), closing the
    /// object first when the item belongs to another hour, and after it when it is full.
    private mutating func takeIntoObject(_ store: ObjectStoreDestination, _ item: Item, at position: StreamPosition) async throws -> Bool {
        let line: [UInt8]?
        let received: Timestamp
        switch item {
        case .event(let event):
            line = store.format == .canonical ? event.json.serialized() : JSON.object(SegmentMapper.message(for: event)).serialized()
            received = event.receivedAt
        case .link(let link):
            // Canonical rows are events: the links are Segment's `alias` messages only.
            line = store.format == .canonical ? nil : JSON.object(SegmentMapper.message(for: link.alias)).serialized()
            received = link.time
        case .unreadable:
            line = nil
            received = .now()
        }
        guard let line else {
            skipped += 1
            consumed = position
            return true
        }
        let hour = ObjectStoreDestination.hour(of: received)
        if let open = object, open.hour != hour {
            guard try await closeObject(store) else { return false }
        }
        if object == nil {
            object = OpenObject(
                key: store.key(destination: destination.name, app: destination.app, hour: hour, after: checkpointed),
                hour: hour,
                firstReceived: received
            )
        }
        try object?.append(line)
        consumed = position
        if let open = object, open.pending.count >= store.partBytes {
            guard await uploadPending(store, final: false) else { return false }
        }
        if let open = object, open.compressedBytes + open.raw.count / 8 >= store.maximumObjectBytes {
            try object?.compressRaw()
            if let open = object, open.compressedBytes >= store.maximumObjectBytes {
                guard try await closeObject(store) else { return false }
            }
        }
        return true
    }

    /// At a snapshot's end: the open object is written when it is due (old enough, or the
    /// snapshot stopped at its limit), and otherwise left for a later read from the checkpoint.
    private mutating func finishObjects(_ store: ObjectStoreDestination, capped: Bool) async throws -> Follower.Outcome {
        if let open = object {
            if capped || open.isDue(now: .now(), maximumAge: store.maximumObjectAge) {
                guard try await closeObject(store) else { return .unavailable }
            } else {
                if let uploadId = open.uploadId { await store.bucket.abortMultipartUpload(key: open.key, uploadId: uploadId) }
                object = nil
                let seconds = store.maximumObjectAge.components.seconds
                return .holding(until: Timestamp(microseconds: open.firstReceived.microseconds + seconds * 1_000_000))
            }
        } else if consumed != checkpointed {
            try await moveCheckpoint(ExportCheckpoints.Progress(skipped: skipped))
        }
        return capped ? .more : .caughtUp
    }

    /// Uploads the compressed members not yet up as the next part (the last, with `final`).
    private mutating func uploadPending(_ store: ObjectStoreDestination, final: Bool) async -> Bool {
        guard var open = object else { return true }
        do {
            if final { try open.compressRaw() }
            if open.uploadId == nil {
                open.uploadId = try await store.bucket.createMultipartUpload(key: open.key, contentType: "application/x-ndjson")
            }
            if !open.pending.isEmpty || open.parts.isEmpty {
                let tag = try await store.bucket.uploadPart(
                    key: open.key,
                    uploadId: open.uploadId!,
                    number: open.parts.count + 1,
                    bytes: open.pending
                )
                open.parts.append(tag)
                open.pending.removeAll(keepingCapacity: true)
            }
            object = open
            return true
        } catch {
            object = open
            return await failObject(store, "\(error)")
        }
    }

    /// Completes the open object and moves the checkpoint past its last message: only after
    /// the store confirmed it.
    private mutating func closeObject(_ store: ObjectStoreDestination) async throws -> Bool {
        guard await uploadPending(store, final: true), let open = object, let uploadId = open.uploadId else { return false }
        do {
            try await store.bucket.completeMultipartUpload(key: open.key, uploadId: uploadId, parts: open.parts)
        } catch {
            return await failObject(store, "\(error)")
        }
        if Task.isCancelled { throw CancellationError() }
        object = nil
        try await moveCheckpoint(ExportCheckpoints.Progress(delivered: open.messages, skipped: skipped))
        CairnMetric.batches.increment("destination", "ok")
        CairnMetric.events.increment(by: open.messages, "destination", "delivered")
        return true
    }

    /// The store failed: the object is abandoned (its parts aborted) and read again later
    /// from the checkpoint, under the same name.
    private mutating func failObject(_ store: ObjectStoreDestination, _ description: String) async -> Bool {
        CairnMetric.batches.increment("destination", "failed")
        lastFailure = description
        logger.error("object store failed; will retry", metadata: ["destination": "\(destination.name)", "error": "\(description)"])
        if let open = object, let uploadId = open.uploadId { await store.bucket.abortMultipartUpload(key: open.key, uploadId: uploadId) }
        object = nil
        let (name, token) = (destination.name, token)
        try? await pool.withConnection { try ExportCheckpoints.recordError(name, token: token, description, on: $0) }
        return false
    }

    private mutating func moveCheckpoint(_ progress: ExportCheckpoints.Progress) async throws {
        if progress.skipped > 0 { CairnMetric.events.increment(by: progress.skipped, "destination", "skipped") }
        let (name, token, position) = (destination.name, token, consumed)
        try await pool.withConnection { try ExportCheckpoints.advance(name, token: token, to: position, progress, on: $0) }
        checkpointed = position
        skipped = 0
    }
}

/// Runs every continuous destination of the export service until shutdown.
struct ContinuousExport: Service {
    let followers: [Follower]

    func run() async throws {
        let followers = self.followers
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                for follower in followers { group.addTask { await follower.run() } }
            }
        }
    }
}
