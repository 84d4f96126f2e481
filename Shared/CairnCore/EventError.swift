/// Why a record was not accepted as an event: a stable code, the field at fault, and what
/// was expected. Ingest keeps the record as a dead letter with this error.
public struct EventError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A stable, machine-readable reason. New codes may be added; existing ones never change.
    public struct Code: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The record is not valid JSON.
        public static let invalidJSON = Code(rawValue: "invalid_json")
        /// The record is JSON but not an event of any supported shape.
        public static let invalidEvent = Code(rawValue: "invalid_event")
        /// A required field is absent, null or empty.
        public static let missingField = Code(rawValue: "missing_field")
        /// A field has the wrong type or a value outside its documented set.
        public static let invalidField = Code(rawValue: "invalid_field")
        /// A field the format does not define.
        public static let unknownField = Code(rawValue: "unknown_field")
        /// The record names another app than the one it was sent to.
        public static let appMismatch = Code(rawValue: "app_mismatch")
        /// The app is not registered (`cairn apps create`).
        public static let unknownApp = Code(rawValue: "unknown_app")
        /// The record is larger than the per-record limit (32 KB; 500 KB for a Segment batch).
        public static let recordTooLarge = Code(rawValue: "record_too_large")
        /// The record nests objects and arrays deeper than 32 levels.
        public static let tooDeep = Code(rawValue: "too_deep")
        /// The record's bytes are not UTF-8.
        public static let invalidUTF8 = Code(rawValue: "invalid_utf8")
        /// A key or string value holds a character storage cannot keep (NUL, U+0000).
        public static let forbiddenCharacter = Code(rawValue: "forbidden_character")
        /// An id, a name or a property name is longer than its limit (1,024 bytes).
        public static let fieldTooLong = Code(rawValue: "field_too_long")
        /// The event time lies outside the app's accepted window.
        public static let timeOutOfRange = Code(rawValue: "time_out_of_range")
        /// Storage refused the event when it tried to commit it (`source: storage`).
        public static let storageRefused = Code(rawValue: "storage_refused")
    }

    public var code: Code
    /// The offending field, as a dotted path (`metadata.score`), or nil for the whole record.
    public var field: String?
    public var message: String

    public init(_ code: Code, field: String?, _ message: String) {
        self.code = code
        self.field = field
        self.message = message
    }

    public var description: String {
        if let field { return "\(code): field '\(field)' \(message)" }
        return "\(code): \(message)"
    }
}
