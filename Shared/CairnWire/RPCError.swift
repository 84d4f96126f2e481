import CairnCore

/// A JSON-RPC 2.0 error object: what a handler throws to answer a request with an error,
/// and what a client receives when the peer answered with one.
///
/// Protocol faults use the standard JSON-RPC codes; application errors use
/// ``applicationError`` and carry a stable string code in `data.code`.
public struct RPCError: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: Int
    public var message: String
    public var data: JSON?

    public init(code: Int, message: String, data: JSON? = nil) {
        self.code = code
        self.message = message
        self.data = data
    }

    public static let parseErrorCode = -32700
    public static let invalidRequestCode = -32600
    public static let methodNotFoundCode = -32601
    public static let invalidParamsCode = -32602
    public static let internalErrorCode = -32603
    /// The JSON-RPC code for every application error; `data.code` says which.
    public static let applicationErrorCode = -32000

    /// An application error with a stable code in `data.code`.
    public static func application(_ code: ErrorCode, _ message: String, details: JSONObject = JSONObject()) -> RPCError {
        var data = details
        data["code"] = .string(code.rawValue)
        return RPCError(code: applicationErrorCode, message: message, data: .object(data))
    }

    /// A module's error, as the router answers it: `data` carries the code, and the field at
    /// fault with the reason apart, so a client can name the field its own way (the CLI shows
    /// its flag).
    public init(_ error: any ApplicationError) {
        var data = error.details
        data["code"] = .string(error.applicationCode.rawValue)
        if let field = error.field {
            data["field"] = .string(field)
            data["reason"] = .string(error.reason)
        }
        self.init(code: Self.applicationErrorCode, message: error.description, data: .object(data))
    }

    /// The wire form of an error that already says what went wrong with a stable code: a
    /// peer's answer as it came, or a module's own error converted. nil for anything else, which
    /// the caller words itself.
    public init?(converting error: any Error) {
        if let error = error as? RPCError {
            self = error
        } else if let error = error as? any ApplicationError {
            self.init(error)
        } else {
            return nil
        }
    }

    public static func invalidParams(_ message: String) -> RPCError {
        RPCError(code: invalidParamsCode, message: message, data: ["code": .string(ErrorCode.invalidParams.rawValue)])
    }

    /// Parameters that do not decode as the method's `Params`: the field and what it expected.
    public static func invalidParams(_ error: JSONDecodingError) -> RPCError {
        var data: JSONObject = ["code": .string(ErrorCode.invalidParams.rawValue)]
        if !error.path.isEmpty {
            data["field"] = .string(error.field)
            data["reason"] = .string("expected \(error.expected), found \(error.found)")
        }
        return RPCError(code: invalidParamsCode, message: "params.\(error.description)", data: .object(data))
    }

    /// The stable code in `data.code`, when the peer sent one.
    public var applicationCode: ErrorCode? { data?["code"]?.stringValue.map(ErrorCode.init(rawValue:)) }

    /// The parameter at fault and what was wrong with it, when the peer named one.
    public var fieldReason: (field: String, reason: String)? {
        guard let field = data?["field"]?.stringValue, let reason = data?["reason"]?.stringValue else { return nil }
        return (field, reason)
    }

    public var description: String {
        if let applicationCode { return "\(message) (\(applicationCode))" }
        return "\(message) (JSON-RPC \(code))"
    }

    var json: JSON {
        var object: JSONObject = ["code": .int(Int64(code)), "message": .string(message)]
        if let data { object["data"] = data }
        return .object(object)
    }
}
