import CairnCore
import CairnMethods
import CairnMetrics
import CairnSQLite
import CairnService
import CairnWire
import Foundation
import NIOPosix

/// Validates, normalises, deduplicates and spools submitted records before answering.
///
/// ``IngestSubmit``: an unknown app is refused (`unknown_app`); each record is a JSON text (one
/// line of a file) or a JSON object.
///
/// Result: `{accepted, duplicates, rejected, errors: [{record, message?, code, field, error}]}`.
/// `accepted` counts new events, durable in the spool when this returns; `duplicates` counts
/// events already accepted before; rejected records are dead letters.
public struct Ingestor: Sendable {
    let spool: Spool
    let apps: AppDirectory
    let counters: Counters
    let suppressions: Suppressions
    let commit: GroupCommit
    /// How many per-record errors a response lists; all are kept as dead letters.
    public var maximumReportedErrors = 100

    /// Refuses requests while the spool is over its high-water mark.
    public let backpressure: Backpressure

    public init(
        spool: Spool,
        apps: AppDirectory,
        counters: Counters,
        suppressions: Suppressions = Suppressions(),
        highWaterMark: Int64 = 1_000_000
    ) {
        backpressure = Backpressure(spool: spool, highWaterMark: highWaterMark)
        self.spool = spool
        self.apps = apps
        self.counters = counters
        self.suppressions = suppressions
        self.commit = GroupCommit(spool: spool)
    }

    /// One accepted request's (or file batch's) events, in the stage totals and per app.
    static func count(app: String, accepted: Int, duplicates: Int, rejected: Int) {
        CairnMetric.batches.increment("accept", "ok")
        for (outcome, count) in [("accepted", accepted), ("duplicate", duplicates), ("rejected", rejected)] where count > 0 {
            CairnMetric.events.increment(by: count, "accept", outcome)
            CairnMetric.appEvents.increment(by: count, app, outcome)
        }
    }

    public func submit(_ params: IngestSubmit.Params) async throws -> JSON {
        let appKey = params.app
        let formatName = params.format ?? "auto"
        guard let format = EventNormalizer.FormatChoice(rawValue: formatName) else {
            throw IngestError(
                .invalidFormat,
                "unknown format '\(formatName)'; expected one of \(EventNormalizer.FormatChoice.allCases.map(\.rawValue).joined(separator: ", "))"
            )
        }
        let records = params.records
        let lines = params.lines
        let source = params.source ?? "rpc"
        let invalidUTF8 = Set(params.invalid_utf8 ?? [])
        func number(_ index: Int) -> Int { lines.flatMap { index < $0.count ? $0[index] : nil } ?? index + 1 }
        try await backpressure.admit()

        let app: AppDirectory.App
        do {
            app = try await apps.resolve(appKey)
        } catch {
            if error.applicationCode == .unknownApp {
                // Kept, so that `cairn deadletters replay` can take them once the app exists.
                let letters = records.enumerated().map { index, record in
                    Spool.DeadLetter(
                        app: appKey,
                        format: formatName,
                        source: source,
                        record: number(index),
                        error: EventError(.unknownApp, field: "app", error.message),
                        raw: Self.raw(record, notUTF8: invalidUTF8.contains(number(index)))
                    )
                }
                try await store(events: [], deadLetters: letters)
                counters.add("events_rejected", Int64(letters.count))
            }
            throw error
        }

        let result = try await accept(
            records,
            app: app,
            format: format,
            formatName: formatName,
            source: source,
            invalidUTF8: invalidUTF8,
            recordNumber: number
        )
        return result.json
    }

    /// What one request's records became.
    public struct Accepted: Sendable {
        /// New events, durable in the spool.
        public var accepted = 0
        /// Events accepted before (same `internal_event_id` or `messageId`).
        public var duplicates = 0
        /// Events of erased people, dropped.
        public var suppressed = 0
        /// Records or messages refused, now dead letters.
        public var rejected = 0
        /// The first ``Ingestor/maximumReportedErrors`` refusals, as `{record, message?, code, field, error}`.
        public var errors: [JSON] = []

        public var json: JSON {
            [
                "accepted": .int(Int64(accepted)), "duplicates": .int(Int64(duplicates)), "suppressed": .int(Int64(suppressed)),
                "rejected": .int(Int64(rejected)), "errors": .array(errors),
            ]
        }
    }

    /// Normalises `records` for `app`, drops erased people's events, and spools the rest with
    /// the refused records as dead letters, through the group commit: the CLI's path and
    /// HTTP's. Returns once everything is durable.
    /// - Parameter recordNumber: the number a record is reported under (a line of a file).
    /// - Parameter sizesChecked: the caller already held every message to the 32 KB limit (HTTP does, to answer 400).
    public func accept(
        _ records: [JSON],
        app: AppDirectory.App,
        format: EventNormalizer.FormatChoice,
        formatName: String,
        source: String,
        invalidUTF8: Set<Int> = [],
        sizesChecked: Bool = false,
        recordNumber: (Int) -> Int = { $0 + 1 }
    ) async throws -> Accepted {
        let context = app.context(receivedAt: .now())
        var events: [CanonicalEvent] = []
        events.reserveCapacity(records.count)
        var deadLetters: [Spool.DeadLetter] = []
        var errors: [JSON] = []
        for (index, record) in records.enumerated() {
            let line = recordNumber(index)
            let outcome: EventNormalizer.Outcome
            switch record {
            case .string where invalidUTF8.contains(line):
                outcome = EventNormalizer.Outcome(rejections: [
                    .init(
                        message: nil,
                        error: EventError(.invalidUTF8, field: nil, "the record is not valid UTF-8"),
                        raw: Self.raw(record, notUTF8: true)
                    )
                ])
            case .string(let text):
                outcome = EventNormalizer.normalize(recordBytes: Array(text.utf8), format: format, context: context)
            default:
                outcome = EventNormalizer.normalize(record: record, format: format, context: context, checkMessageSizes: !sizesChecked)
            }
            events.append(contentsOf: outcome.events)
            for rejection in outcome.rejections {
                deadLetters.append(
                    Spool.DeadLetter(
                        app: app.token,
                        format: rejection.message == nil ? formatName : "segment",
                        source: source,
                        record: line,
                        message: rejection.message,
                        error: rejection.error,
                        raw: rejection.raw
                    )
                )
                if errors.count < maximumReportedErrors {
                    errors.append(Self.errorJSON(record: line, message: rejection.message, rejection.error))
                }
            }
        }
        // Erased people stay erased: their events are dropped here, and counted; another user's
        // event that carries an erased anonymous id keeps the event, not the id.
        var dropped: [String: Int] = [:]
        events.removeAll { event in
            guard let key = suppressions.match(event) else { return false }
            dropped[key, default: 0] += 1
            return true
        }
        for index in events.indices {
            if let anonymous = events[index].anonymousId, events[index].userId != nil,
                suppressions.isErased(anonymousId: anonymous, app: events[index].appToken)
            {
                events[index].anonymousId = nil
            }
        }
        if !dropped.isEmpty {
            let counts = dropped
            try? await NIOThreadPool.singleton.runIfActive { [spool] in try spool.countDropped(counts) }
        }
        let suppressed = dropped.values.reduce(0, +)
        let counts = try await store(events: events, deadLetters: deadLetters)
        counters.add("events_suppressed", Int64(suppressed))
        counters.add("requests")
        counters.add("events_accepted", Int64(counts.new))
        counters.add("events_duplicate", Int64(counts.duplicates))
        counters.add("events_rejected", Int64(deadLetters.count))
        Self.count(app: app.token, accepted: counts.new, duplicates: counts.duplicates, rejected: deadLetters.count)
        return Accepted(accepted: counts.new, duplicates: counts.duplicates, suppressed: suppressed, rejected: deadLetters.count, errors: errors)
    }

    /// `ingest.deadletters.replay {app?, ids?}`: runs dead letters through ingest again, for
    /// example after the attribute they needed was registered.
    public func replay(_ params: IngestDeadLettersReplay.Params) async throws -> JSON {
        // The app may be named by name or token, and its letters stored under either.
        var appKeys: Set<String>?
        if let appKey = params.app {
            appKeys = [appKey]
            if let app = try? await apps.resolve(appKey) { appKeys?.formUnion([app.name, app.token]) }
        }
        let ids = params.ids
        let letters = try await NIOThreadPool.singleton.runIfActive { [spool] in
            try spool.deadLetters(app: nil, ids: ids, limit: 100_000)
        }
        var accepted: [Int64] = []
        var events: [CanonicalEvent] = []
        var refused: [(id: Int64, error: EventError)] = []
        var errors: [JSON] = []
        let receivedAt = Timestamp.now()
        for stored in letters where appKeys?.contains(stored.letter.app) ?? true {
            let app: AppDirectory.App
            do {
                app = try await apps.resolve(stored.letter.app)
            } catch {
                guard error.applicationCode == .unknownApp else { throw error }
                refused.append((stored.id, EventError(.unknownApp, field: "app", error.message)))
                continue
            }
            let context = app.context(receivedAt: receivedAt)
            let outcome: EventNormalizer.Outcome
            if stored.letter.error.code == .invalidUTF8, String(validating: stored.letter.raw, as: UTF8.self) != nil {
                // A record that was not UTF-8 and of which only a lossy decoding was kept (by a
                // version before the bytes were, or a client that did not send them): never
                // stored as if it were the record.
                let error = EventError(
                    .invalidUTF8,
                    field: nil,
                    "the record was not UTF-8 and this dead letter holds only a lossy copy of it; send it again from its source"
                )
                outcome = EventNormalizer.Outcome(rejections: [.init(message: nil, error: error, raw: stored.letter.raw)])
            } else if stored.letter.format == Self.canonicalFormat {
                // Refused by storage after its acknowledgement: the canonical event itself, as it was.
                outcome = EventNormalizer.normalize(canonicalBytes: stored.letter.raw, context: context)
            } else {
                let format = EventNormalizer.FormatChoice(rawValue: stored.letter.format) ?? .auto
                outcome = EventNormalizer.normalize(recordBytes: stored.letter.raw, format: format, context: context)
            }
            if let rejection = outcome.rejections.first {
                refused.append((stored.id, rejection.error))
                if errors.count < maximumReportedErrors {
                    errors.append([
                        "id": .int(stored.id), "code": .string(rejection.error.code.rawValue),
                        "field": .optional(rejection.error.field), "error": .string(rejection.error.message),
                    ])
                }
            } else {
                accepted.append(stored.id)
                events.append(contentsOf: outcome.events)
            }
        }
        let toSpool = events
        let (done, again) = (accepted, refused)
        let counts = try await NIOThreadPool.singleton.runIfActive { [spool] in
            try spool.resolveReplay(accepted: done, events: toSpool, stillRefused: again)
        }
        counters.add("events_replayed", Int64(counts.new))
        return [
            "replayed": .int(Int64(accepted.count + refused.count)), "accepted": .int(Int64(counts.new)),
            "duplicates": .int(Int64(counts.duplicates)),
            "still_rejected": .int(Int64(refused.count)), "errors": .array(errors),
        ]
    }

    /// `ingest.suppress {app_token, user_ids, anonymous_ids}`: after storage erased a person,
    /// forgets them here too (spool and dead letters) and drops their later events.
    public func suppress(_ params: IngestSuppress.Params) async throws -> JSON {
        let token = params.app_token
        let userIds = params.user_ids ?? []
        let anonymousIds = params.anonymous_ids ?? []
        let name = (try? await apps.resolve(token))?.name
        suppressions.add(app: token, userIds: userIds, anonymousIds: anonymousIds)
        let removed = try await NIOThreadPool.singleton.runIfActive { [spool] in
            try spool.suppress(app: token, appNames: name.map { [$0] } ?? [], userIds: userIds, anonymousIds: anonymousIds)
        }
        return ["spooled_events": .int(Int64(removed.spool)), "dead_letters": .int(Int64(removed.deadLetters))]
    }

    /// The format of a dead letter storage refused: a canonical event, not an input record.
    static let canonicalFormat = "canonical"

    /// A record as it was sent: a line's own text, or the object's JSON.
    static func raw(_ record: JSON) -> [UInt8] { record.stringValue.map { Array($0.utf8) } ?? record.serialized() }

    /// A record as its dead letter keeps it. One named in `invalid_utf8` is its original bytes,
    /// sent in base64 (``IngestSubmit/Params/invalid_utf8``), so that the letter, and a replay,
    /// sees the record as it was; text that is not base64 is kept as it came.
    static func raw(_ record: JSON, notUTF8: Bool) -> [UInt8] {
        if notUTF8, let encoded = record.stringValue, let original = Data(base64Encoded: encoded) { return Array(original) }
        return raw(record)
    }

    /// The same words on the wire as on the CLI: `{record, message?, code, field, error}`.
    static func errorJSON(record: Int, message: Int?, _ error: EventError) -> JSON {
        var object: JSONObject = ["record": .int(Int64(record))]
        if let message { object["message"] = .int(Int64(message)) }
        object["code"] = .string(error.code.rawValue)
        object["field"] = .optional(error.field)
        object["error"] = .string(error.message)
        return .object(object)
    }

    @discardableResult
    private func store(events: [CanonicalEvent], deadLetters: [Spool.DeadLetter]) async throws -> (new: Int, duplicates: Int) {
        // Nothing is acknowledged into a spool file that is gone.
        if let problem = spool.problem { throw IngestError(.spoolLost, problem) }
        do {
            let counts = try await commit.append(events: events, deadLetters: deadLetters)
            backpressure.added(counts.new)
            return counts
        } catch let error as SQLiteError {
            throw SpoolFailure.error(error)
        }
    }
}
