/// Turns raw input records into canonical events, choosing the format adapter.
///
/// This is the one entry point ingest uses, so new formats plug in here.
public enum EventNormalizer {
    /// What `--format` asks for: a fixed format, or `auto` to detect per record.
    public enum FormatChoice: String, Sendable, CaseIterable {
        case auto
        case userpilot
    }

    /// Parses and normalises one record (one JSON line or one element of a JSON array).
    public static func normalize(recordBytes: some Collection<UInt8>, format: FormatChoice, app: String, receivedAt: Timestamp) throws(EventError) -> [CanonicalEvent] {
        let value: JSON
        do {
            value = try JSONParser.parse(recordBytes)
        } catch {
            throw EventError(.invalidJSON, field: nil, error.description)
        }
        return try normalize(record: value, format: format, app: app, receivedAt: receivedAt)
    }

    public static func normalize(record value: JSON, format: FormatChoice, app: String, receivedAt: Timestamp) throws(EventError) -> [CanonicalEvent] {
        guard case .object(let record) = value else {
            throw EventError(.invalidEvent, field: nil, "expected a JSON object, found \(value.typeName)")
        }
        switch format {
        case .userpilot:
            return [try UserpilotAdapter.canonicalize(record, app: app, receivedAt: receivedAt)]
        case .auto:
            if UserpilotAdapter.matches(record) {
                return [try UserpilotAdapter.canonicalize(record, app: app, receivedAt: receivedAt)]
            }
            throw EventError(.invalidEvent, field: nil, "does not match any supported input format (a Userpilot event has an event_type field)")
        }
    }
}
