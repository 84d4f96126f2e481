/// A stable, machine-readable error code: what clients match on, in `data.code` of a JSON-RPC
/// error, in a dead letter, and in an HTTP ingest answer. New codes may be added; existing ones
/// never change. Every code Cairn uses is a constant here, so codes are compared as values and
/// a typo does not compile.
public struct ErrorCode: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    // MARK: Records (dead letters and HTTP ingest)

    /// The record is not valid JSON.
    public static let invalidJSON = ErrorCode(rawValue: "invalid_json")
    /// A required field is absent, null or empty.
    public static let missingField = ErrorCode(rawValue: "missing_field")
    /// A field has the wrong type or a value outside its documented set.
    public static let invalidField = ErrorCode(rawValue: "invalid_field")
    /// A field the format does not define.
    public static let unknownField = ErrorCode(rawValue: "unknown_field")
    /// The record names another app than the one it was sent to.
    public static let appMismatch = ErrorCode(rawValue: "app_mismatch")
    /// The record is larger than the per-record limit (32 KB; 500 KB for a Segment batch).
    public static let recordTooLarge = ErrorCode(rawValue: "record_too_large")
    /// The record nests objects and arrays deeper than 32 levels.
    public static let tooDeep = ErrorCode(rawValue: "too_deep")
    /// The record's bytes are not UTF-8.
    public static let invalidUTF8 = ErrorCode(rawValue: "invalid_utf8")
    /// A key or string value holds a character storage cannot keep (NUL, U+0000).
    public static let forbiddenCharacter = ErrorCode(rawValue: "forbidden_character")
    /// An id, a name or a property name is longer than its limit (1,024 bytes).
    public static let fieldTooLong = ErrorCode(rawValue: "field_too_long")
    /// The event time lies outside the app's accepted window.
    public static let timeOutOfRange = ErrorCode(rawValue: "time_out_of_range")
    /// Storage refused the event when it tried to commit it (`source: storage`).
    public static let storageRefused = ErrorCode(rawValue: "storage_refused")

    // MARK: HTTP ingest

    /// No such HTTP route.
    public static let notFound = ErrorCode(rawValue: "not_found")
    /// A batch request is not `{"batch": [messages]}`.
    public static let invalidBatch = ErrorCode(rawValue: "invalid_batch")
    /// A request holds more messages than allowed.
    public static let tooManyMessages = ErrorCode(rawValue: "too_many_messages")
    /// A message is not an object.
    public static let invalidMessage = ErrorCode(rawValue: "invalid_message")
    /// A body is neither a record object nor an array of them.
    public static let invalidRecord = ErrorCode(rawValue: "invalid_record")
    /// The request carries no write key.
    public static let missingWriteKey = ErrorCode(rawValue: "missing_write_key")
    /// The body is over the request limit.
    public static let requestTooLarge = ErrorCode(rawValue: "request_too_large")
    /// The body did not arrive in time.
    public static let bodyTimeout = ErrorCode(rawValue: "body_timeout")
    /// The body's Content-Encoding is neither gzip nor identity.
    public static let unsupportedEncoding = ErrorCode(rawValue: "unsupported_encoding")
    /// The body does not gunzip.
    public static let invalidGzip = ErrorCode(rawValue: "invalid_gzip")
    /// A message is over 32 KB.
    public static let messageTooLarge = ErrorCode(rawValue: "message_too_large")
    /// The route does not take that HTTP method.
    public static let methodNotAllowed = ErrorCode(rawValue: "method_not_allowed")
    /// `/metrics` needs the metrics token.
    public static let metricsTokenRequired = ErrorCode(rawValue: "metrics_token_required")
    /// `/metrics` answers loopback clients only.
    public static let metricsLocalOnly = ErrorCode(rawValue: "metrics_local_only")
    /// The spool failed in a way without a code of its own.
    public static let spoolFailed = ErrorCode(rawValue: "spool_failed")

    // MARK: HTTP report API and console

    /// A report request carries no read key (nor a console session).
    public static let missingReadKey = ErrorCode(rawValue: "missing_read_key")
    /// No app has this read key (a write key never reads).
    public static let unknownReadKey = ErrorCode(rawValue: "unknown_read_key")
    /// The read key belongs to another app than the path names.
    public static let forbiddenApp = ErrorCode(rawValue: "forbidden_app")
    /// A query parameter the route does not take.
    public static let unknownParameter = ErrorCode(rawValue: "unknown_parameter")
    /// A query parameter whose value is not of its type, or given twice.
    public static let invalidParameter = ErrorCode(rawValue: "invalid_parameter")
    /// A console form was posted without its session's CSRF token.
    public static let invalidCSRFToken = ErrorCode(rawValue: "invalid_csrf_token")

    // MARK: Methods

    /// Two apps have a trigger of that name; name the app.
    public static let ambiguousTrigger = ErrorCode(rawValue: "ambiguous_trigger")
    /// An app with that name or token exists already.
    public static let appExists = ErrorCode(rawValue: "app_exists")
    /// A batch with its identity rows would not fit one frame; the sender splits it.
    public static let batchTooLarge = ErrorCode(rawValue: "batch_too_large")
    /// The service's configuration is refused (a destination, a setting).
    public static let configuration = ErrorCode(rawValue: "configuration")
    /// An export could not be written.
    public static let exportFailed = ErrorCode(rawValue: "export_failed")
    /// The identity follower has not folded the app's latest events, which a merge or an erasure needs; retry.
    public static let followerBehind = ErrorCode(rawValue: "follower_behind")
    /// The app name or token is not allowed, or names no app.
    public static let invalidApp = ErrorCode(rawValue: "invalid_app")
    /// The time bucket is not one of those the report takes.
    public static let invalidBucket = ErrorCode(rawValue: "invalid_bucket")
    /// A condition (`--where`, `--trait`) does not parse or is over its limits.
    public static let invalidCondition = ErrorCode(rawValue: "invalid_condition")
    /// A destination is refused.
    public static let invalidDestination = ErrorCode(rawValue: "invalid_destination")
    /// An S3-compatible store refused or failed a request (the status and its answer follow).
    public static let objectStoreFailed = ErrorCode(rawValue: "object_store_failed")
    /// The engagement entity is not one Cairn knows.
    public static let invalidEntity = ErrorCode(rawValue: "invalid_entity")
    /// The record is JSON but not an event of any supported shape, or gives no event.
    public static let invalidEvent = ErrorCode(rawValue: "invalid_event")
    /// The format is not one Cairn reads.
    public static let invalidFormat = ErrorCode(rawValue: "invalid_format")
    /// A limit is not a positive number within bounds.
    public static let invalidLimit = ErrorCode(rawValue: "invalid_limit")
    /// A parameter is missing or of the wrong type (with `field`).
    public static let invalidParams = ErrorCode(rawValue: "invalid_params")
    /// The number of periods is out of range.
    public static let invalidPeriods = ErrorCode(rawValue: "invalid_periods")
    /// A report's `source` is not one it reads (sessions: server or sender).
    public static let invalidSource = ErrorCode(rawValue: "invalid_source")
    /// A setting's value is refused.
    public static let invalidSetting = ErrorCode(rawValue: "invalid_setting")
    /// A time is neither RFC 3339 nor relative.
    public static let invalidTime = ErrorCode(rawValue: "invalid_time")
    /// The time zone is not one PostgreSQL knows.
    public static let invalidTimeZone = ErrorCode(rawValue: "invalid_time_zone")
    /// A timeout is out of range.
    public static let invalidTimeout = ErrorCode(rawValue: "invalid_timeout")
    /// A `--times` range does not parse.
    public static let invalidTimes = ErrorCode(rawValue: "invalid_times")
    /// The `top` count is not a positive number.
    public static let invalidTop = ErrorCode(rawValue: "invalid_top")
    /// A trigger definition is refused.
    public static let invalidTrigger = ErrorCode(rawValue: "invalid_trigger")
    /// An attribute type is not one Cairn knows.
    public static let invalidType = ErrorCode(rawValue: "invalid_type")
    /// A URL is not http or https.
    public static let invalidUrl = ErrorCode(rawValue: "invalid_url")
    /// A time window is refused.
    public static let invalidWindow = ErrorCode(rawValue: "invalid_window")
    /// A parameter the method needs is absent.
    public static let missingOption = ErrorCode(rawValue: "missing_option")
    /// The service is at its limit; retry later.
    public static let overloaded = ErrorCode(rawValue: "overloaded")
    /// PostgreSQL refused a statement.
    public static let queryFailed = ErrorCode(rawValue: "query_failed")
    /// The report ran past its time limit.
    public static let reportTimeout = ErrorCode(rawValue: "report_timeout")
    /// The ingest spool is full; retry later.
    public static let spoolFull = ErrorCode(rawValue: "spool_full")
    /// The ingest spool file was removed or replaced under the running service.
    public static let spoolLost = ErrorCode(rawValue: "spool_lost")
    /// The ingest spool cannot be written.
    public static let spoolUnavailable = ErrorCode(rawValue: "spool_unavailable")
    /// PostgreSQL (or the storage service) cannot be reached; retry later.
    public static let storageUnavailable = ErrorCode(rawValue: "storage_unavailable")
    /// A time series would have more buckets than allowed.
    public static let tooManyBuckets = ErrorCode(rawValue: "too_many_buckets")
    /// The app has a trigger of that name already.
    public static let triggerExists = ErrorCode(rawValue: "trigger_exists")
    /// No app has that name or token (`cairn apps create`).
    public static let unknownApp = ErrorCode(rawValue: "unknown_app")
    /// No event carries that attribute.
    public static let unknownAttribute = ErrorCode(rawValue: "unknown_attribute")
    /// The app has no such company.
    public static let unknownCompany = ErrorCode(rawValue: "unknown_company")
    /// The app has stored no event of that name.
    public static let unknownEvent = ErrorCode(rawValue: "unknown_event")
    /// No user has that trait.
    public static let unknownTrait = ErrorCode(rawValue: "unknown_trait")
    /// No trigger has that name.
    public static let unknownTrigger = ErrorCode(rawValue: "unknown_trigger")
    /// The app has no such user.
    public static let unknownUser = ErrorCode(rawValue: "unknown_user")
    /// No app has that write key.
    public static let unknownWriteKey = ErrorCode(rawValue: "unknown_write_key")
    /// Storage could not write the batch; retry later.
    public static let writeFailed = ErrorCode(rawValue: "write_failed")
    /// PostgreSQL refused the batch's data (SQLSTATE class 22, 23 or 54); the sender isolates the rows at fault.
    public static let writeRefused = ErrorCode(rawValue: "write_refused")
}

/// An error a module throws that the RPC edge answers as a JSON-RPC application error: the
/// router converts any of them in one place (as Hummingbird turns an `HTTPResponseError` into
/// a response), so modules need not know the wire.
public protocol ApplicationError: Error, Sendable, CustomStringConvertible {
    /// The code clients match on.
    var applicationCode: ErrorCode { get }
    /// The parameter at fault, by its name on the wire (`top`, `start_event`), when one is; the
    /// CLI shows it as its flag.
    var field: String? { get }
    /// What was wrong, in words, without the field's name when ``field`` is set: "must be a
    /// positive number".
    var reason: String { get }
    /// Facts a client may act on beyond the code, such as the SQLSTATE of a refused write.
    var details: JSONObject { get }
}

extension ApplicationError {
    public var field: String? { nil }
    public var details: JSONObject { [:] }
    /// The field and the reason, as one sentence.
    public var description: String { field.map { "\($0) \(reason)" } ?? reason }
}

/// A module's own error: a code, the parameter at fault, and the reason. Reporting, storage,
/// export and conditions each throw it under their own name (`ReportError`, …) so a reader
/// sees where it came from.
public struct ModuleError<Module>: ApplicationError {
    public var applicationCode: ErrorCode
    public var field: String?
    public var reason: String
    public var details: JSONObject

    public init(_ code: ErrorCode, field: String? = nil, _ reason: String, details: JSONObject = [:]) {
        self.applicationCode = code
        self.field = field
        self.reason = reason
        self.details = details
    }

    /// The field and the reason as one sentence, as the JSON-RPC error's `message` carries it.
    public var message: String { description }
}

extension ModuleError {
    /// No app has this name or token: every module says it the same way, with the command that makes one.
    public static func unknownApp(_ app: String) -> Self {
        Self(.unknownApp, "no app is named '\(app)' or has that token; create it with `cairn apps create \(app)`")
    }

    /// The app has no such user: every module says it the same way.
    public static func unknownUser(_ user: String, app: String) -> Self {
        Self(.unknownUser, "app '\(app)' has no user '\(user)'")
    }
}
