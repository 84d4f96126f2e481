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

    /// An application error with a stable string code in `data.code`.
    public static func application(_ code: String, _ message: String, details: JSONObject = JSONObject()) -> RPCError {
        var data = details
        data["code"] = .string(code)
        return RPCError(code: applicationErrorCode, message: message, data: .object(data))
    }

    public static func invalidParams(_ message: String) -> RPCError {
        RPCError(code: invalidParamsCode, message: message, data: ["code": "invalid_params"])
    }

    /// The stable string code in `data.code`, when the peer sent one.
    public var applicationCode: String? { data?["code"]?.stringValue }

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
