/// Why a record was not accepted as an event: a stable code, the field at fault, and what
/// was expected. Ingest keeps the record as a dead letter with this error.
public struct EventError: ApplicationError, Equatable {
    /// A stable, machine-readable reason (``ErrorCode``).
    public typealias Code = ErrorCode

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

    public var applicationCode: ErrorCode { code }
    public var reason: String { message }
}
