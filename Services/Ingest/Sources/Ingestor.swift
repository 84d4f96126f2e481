import CairnCore
import CairnService
import CairnSQLite
import CairnWire
import NIOPosix

/// Validates and normalises submitted records, and spools them before answering.
///
/// `ingest.submit` params:
/// - `app`: the app the records belong to;
/// - `format`: `auto` (default) or a format name;
/// - `source`: where the records came from (a file name), kept with dead letters;
/// - `records`: the records, each a JSON text (one line of a file) or a JSON object;
/// - `lines`: optional, the 1-based line number of each record, for error messages.
///
/// Result: `{accepted, rejected, errors: [{record, code, field, message}]}`. Accepted events
/// are durable in the spool when this returns; rejected ones are dead letters.
public struct Ingestor: Sendable {
    let spool: Spool
    let counters: Counters
    /// How many per-record errors a response lists; all are kept as dead letters.
    public var maximumReportedErrors = 100

    public init(spool: Spool, counters: Counters) {
        self.spool = spool
        self.counters = counters
    }

    public func submit(_ params: JSON) async throws -> JSON {
        guard let app = params["app"]?.stringValue else { throw RPCError.invalidParams("params.app must be a string naming the app") }
        do throws(EventError) {
            try AppName.validate(app)
        } catch {
            throw RPCError.application("invalid_app", error.description)
        }
        let formatName = params["format"]?.stringValue ?? "auto"
        guard let format = EventNormalizer.FormatChoice(rawValue: formatName) else {
            throw RPCError.application("invalid_format", "unknown format '\(formatName)'; expected one of \(EventNormalizer.FormatChoice.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard let records = params["records"]?.arrayValue else { throw RPCError.invalidParams("params.records must be an array") }
        let lines = params["lines"]?.arrayValue
        let source = params["source"]?.stringValue ?? "rpc"
        // Lines whose bytes were not UTF-8 arrive lossily decoded; refuse them rather than store altered text.
        let invalidUTF8 = Set((params["invalid_utf8"]?.arrayValue ?? []).compactMap(\.intValue).map(Int.init))
        let receivedAt = Timestamp.now()

        var events: [CanonicalEvent] = []
        events.reserveCapacity(records.count)
        var deadLetters: [Spool.DeadLetter] = []
        var errors: [JSON] = []
        for (index, record) in records.enumerated() {
            let number = lines.flatMap { index < $0.count ? $0[index].intValue.map(Int.init) : nil } ?? index + 1
            let raw: [UInt8]
            let outcome: Result<[CanonicalEvent], EventError>
            switch record {
            case .string(let text) where invalidUTF8.contains(number):
                raw = Array(text.utf8)
                outcome = .failure(EventError(.invalidJSON, field: nil, "the record is not valid UTF-8"))
            case .string(let text):
                raw = Array(text.utf8)
                outcome = Result { () throws(EventError) in try EventNormalizer.normalize(recordBytes: raw, format: format, app: app, receivedAt: receivedAt) }
            default:
                raw = record.serialized()
                outcome = Result { () throws(EventError) in try EventNormalizer.normalize(record: record, format: format, app: app, receivedAt: receivedAt) }
            }
            switch outcome {
            case .success(let normalized):
                events.append(contentsOf: normalized)
            case .failure(let error):
                deadLetters.append(Spool.DeadLetter(app: app, origin: formatName, source: source, record: number, error: error, raw: raw))
                if errors.count < maximumReportedErrors {
                    errors.append(["record": .int(Int64(number)), "code": .string(error.code.rawValue),
                                   "field": .optional(error.field), "message": .string(error.message)])
                }
            }
        }
        let accepted = events
        let refused = deadLetters
        do {
            try await NIOThreadPool.singleton.runIfActive { [spool] in
                try spool.append(events: accepted, deadLetters: refused)
            }
        } catch let error as SQLiteError {
            throw SpoolFailure.rpcError(error)
        }
        counters.add("requests")
        counters.add("events_accepted", Int64(events.count))
        counters.add("events_rejected", Int64(deadLetters.count))
        return ["accepted": .int(Int64(events.count)), "rejected": .int(Int64(deadLetters.count)), "errors": .array(errors)]
    }
}
