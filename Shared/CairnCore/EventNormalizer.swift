/// Turns raw input records into canonical events: enforces the record limits, detects or
/// applies the format, and splits Segment batch envelopes into messages.
///
/// This is the one entry point ingest uses, for the CLI and (later) HTTP alike.
public enum EventNormalizer {
    /// What `--format` asks for: a fixed format, or `auto` to detect per record.
    public enum FormatChoice: String, Sendable, CaseIterable {
        case auto, userpilot, userguiding, userlike, usercom, segment
    }

    /// The largest record: 32 KB, Segment's per-message limit.
    public static let maximumRecordBytes = 32 * 1024
    /// The largest Segment batch envelope: 500 KB, Segment's per-request limit; each of its
    /// messages must still fit ``maximumRecordBytes``.
    public static let maximumBatchBytes = 500 * 1024
    /// How deep a record may nest objects and arrays.
    public static let maximumDepth = 32

    /// A record, or one message of a batch envelope, that was refused.
    public struct Rejection: Sendable {
        /// The message's index in a batch envelope (0-based), or nil for the whole record.
        public var message: Int?
        public var error: EventError
        /// The refused record or message, whole.
        public var raw: [UInt8]

        public init(message: Int?, error: EventError, raw: [UInt8]) {
            self.message = message
            self.error = error
            self.raw = raw
        }
    }

    /// What one record became.
    public struct Outcome: Sendable {
        public var events: [CanonicalEvent] = []
        public var rejections: [Rejection] = []

        public init(events: [CanonicalEvent] = [], rejections: [Rejection] = []) {
            self.events = events
            self.rejections = rejections
        }
    }

    /// Parses and normalises one record (one JSON line, or one element of a JSON array).
    public static func normalize(recordBytes bytes: [UInt8], format: FormatChoice, context: IngestContext) -> Outcome {
        guard bytes.count <= maximumBatchBytes else {
            return refused(
                EventError(
                    .recordTooLarge,
                    field: nil,
                    "is \(bytes.count) bytes; the limit is \(maximumRecordBytes) bytes per record (\(maximumBatchBytes) for a Segment batch)"
                ),
                raw: bytes
            )
        }
        let value: JSON
        do {
            value = try JSONParser.parse(bytes, maximumDepth: maximumDepth)
        } catch {
            let code: EventError.Code = error.isDepthExceeded ? .tooDeep : error.isInvalidUTF8 ? .invalidUTF8 : .invalidJSON
            return refused(EventError(code, field: nil, error.description), raw: bytes)
        }
        if bytes.count > maximumRecordBytes, !(format == .auto || format == .segment) || value["batch"]?.arrayValue == nil {
            return refused(
                EventError(.recordTooLarge, field: nil, "is \(bytes.count) bytes; the limit is \(maximumRecordBytes) bytes per record"),
                raw: bytes
            )
        }
        return normalize(record: value, format: format, context: context, checkMessageSizes: bytes.count > maximumRecordBytes, raw: bytes)
    }

    /// Normalises an already-parsed record.
    public static func normalize(
        record value: JSON,
        format: FormatChoice,
        context: IngestContext,
        checkMessageSizes: Bool = true,
        raw: [UInt8]? = nil
    ) -> Outcome {
        guard case .object(let record) = value else {
            return refused(EventError(.invalidEvent, field: nil, "expected a JSON object, found \(value.typeName)"), raw: raw ?? value.serialized())
        }
        let chosen = format == .auto ? detect(record) : format
        guard let chosen else {
            return refused(
                EventError(
                    .invalidEvent,
                    field: nil,
                    "does not match any input format: expected a Userpilot event (event_type), a Userlike callback (event_name, global_ctx), a Segment message (type) or batch (batch), a UserGuiding event (event, payload) or a User.com event (event, user_id)"
                ),
                raw: raw ?? value.serialized()
            )
        }
        if chosen == .segment, let messages = SegmentAdapter.messages(in: record) {
            // The envelope's context reaches every message: one over the per-message limit would be
            // copied into every message's dead letter (a 200 KB request made 100 MB of them).
            for key in ["context", "integrations"] {
                if let shared = record[key], shared.serializedByteCount > maximumRecordBytes {
                    return refused(
                        EventError(
                            .recordTooLarge,
                            field: key,
                            "the batch's \(key) is \(shared.serializedByteCount) bytes; every message must fit \(maximumRecordBytes) bytes with it"
                        ),
                        raw: raw ?? value.serialized()
                    )
                }
            }
            var outcome = Outcome()
            // The envelope's context merges into every message: each must still fit the limit with it.
            let checkMessageSizes = checkMessageSizes || record["context"] != nil || record["integrations"] != nil
            for (index, message) in messages.enumerated() {
                switch message {
                case .failure(let error):
                    outcome.rejections.append(Rejection(message: index, error: error, raw: record["batch"]!.arrayValue![index].serialized()))
                case .success(let object):
                    // Serialised only when refused: most messages never need their bytes.
                    let size = checkMessageSizes ? JSON.object(object).serializedByteCount : 0
                    if size > maximumRecordBytes {
                        outcome.rejections.append(
                            Rejection(
                                message: index,
                                error: EventError(
                                    .recordTooLarge,
                                    field: nil,
                                    "message is \(size) bytes; the limit is \(maximumRecordBytes) bytes per message"
                                ),
                                raw: JSON.object(object).serialized()
                            )
                        )
                        continue
                    }
                    do throws(EventError) {
                        try EventAdmission.checkText(object)
                        outcome.events.append(try admitted(SegmentAdapter.canonicalize(object, context: context), context))
                    } catch {
                        outcome.rejections.append(Rejection(message: index, error: error, raw: JSON.object(object).serialized()))
                    }
                }
            }
            return outcome
        }
        do throws(EventError) {
            try EventAdmission.checkText(record)
            let event: CanonicalEvent
            switch chosen {
            case .userpilot, .auto: event = try UserpilotAdapter.canonicalize(record, context: context)
            case .userguiding: event = try UserGuidingAdapter.canonicalize(record, context: context)
            case .userlike: event = try UserlikeAdapter.canonicalize(record, context: context)
            case .usercom: event = try UserComAdapter.canonicalize(record, context: context)
            case .segment: event = try SegmentAdapter.canonicalize(record, context: context)
            }
            return Outcome(events: [try admitted(event, context)])
        } catch {
            return refused(error, raw: raw ?? value.serialized())
        }
    }

    /// An adapter's event, once it passes ``EventAdmission``.
    private static func admitted(_ event: CanonicalEvent, _ context: IngestContext) throws(EventError) -> CanonicalEvent {
        try EventAdmission.check(event, policy: context.admission, receivedAt: context.receivedAt)
        return event
    }

    /// A canonical event kept as a dead letter by storage, read back for a replay: the same
    /// event (its id unchanged), checked again against the app's limits as of its receipt.
    public static func normalize(canonicalBytes bytes: [UInt8], context: IngestContext) -> Outcome {
        do throws(EventError) {
            let value: JSON
            do {
                value = try JSONParser.parse(bytes, maximumDepth: maximumDepth)
            } catch {
                throw EventError(.invalidJSON, field: nil, error.description)
            }
            let event = try CanonicalEvent(canonical: value)
            guard event.appToken == context.appToken else {
                throw EventError(
                    .appMismatch,
                    field: "app_token",
                    "is '\(event.appToken)' but the letter is replayed for the app with token '\(context.appToken)'"
                )
            }
            if case .object(let object) = value { try EventAdmission.checkText(object) }
            try EventAdmission.check(event, policy: context.admission, receivedAt: event.receivedAt)
            return Outcome(events: [event])
        } catch {
            return refused(error, raw: bytes)
        }
    }

    /// The format a record's shape says it is in, or nil.
    public static func detect(_ record: JSONObject) -> FormatChoice? {
        if UserpilotAdapter.matches(record) { return .userpilot }
        if UserlikeAdapter.matches(record) { return .userlike }
        if SegmentAdapter.matches(record) { return .segment }
        if UserGuidingAdapter.matches(record) { return .userguiding }
        if UserComAdapter.matches(record) { return .usercom }
        return nil
    }

    private static func refused(_ error: EventError, raw: [UInt8]) -> Outcome {
        Outcome(rejections: [Rejection(message: nil, error: error, raw: raw)])
    }
}
