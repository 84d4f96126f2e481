import CairnCore
import NIOCore

/// Builds and reads JSON-RPC 2.0 envelopes.
public enum RPCMessage {
    /// A request's JSON text: `{"jsonrpc":"2.0","id":…,"method":…,"params":…}`.
    public static func request(id: Int64, method: String, params: JSON) -> [UInt8] {
        request(id: id, method: method, rawParams: params.serialized())
    }

    /// A request whose params are already JSON text.
    public static func request(id: Int64, method: String, rawParams: [UInt8]) -> [UInt8] {
        var writer = JSONWriter(reservingCapacity: rawParams.count + 64)
        writer.writeRaw("{\"jsonrpc\":\"2.0\",\"id\":")
        writer.writeRaw(String(id))
        writer.writeRaw(",\"method\":")
        writer.writeString(method)
        writer.writeRaw(",\"params\":")
        writer.writeRaw(bytes: rawParams)
        writer.writeRaw("}")
        return writer.bytes
    }

    static func response(id: JSON, result: JSON) -> [UInt8] {
        var writer = JSONWriter(reservingCapacity: 128)
        writer.writeRaw("{\"jsonrpc\":\"2.0\",\"id\":")
        writer.write(id)
        writer.writeRaw(",\"result\":")
        writer.write(result)
        writer.writeRaw("}")
        return writer.bytes
    }

    static func errorResponse(id: JSON, error: RPCError) -> [UInt8] {
        var writer = JSONWriter(reservingCapacity: 128)
        writer.writeRaw("{\"jsonrpc\":\"2.0\",\"id\":")
        writer.write(id)
        writer.writeRaw(",\"error\":")
        writer.write(error.json)
        writer.writeRaw("}")
        return writer.bytes
    }

    /// A frame that is not a valid request, with the id to answer it under.
    struct RequestFailure: Error {
        var id: JSON
        var error: RPCError
    }

    /// A parsed request, or the error to answer with when the frame is not one.
    struct Request {
        var id: JSON
        var method: String
        var params: JSON
        /// A notification (no `id`) gets no response.
        var isNotification: Bool
    }

    static func parseRequest(_ frame: ByteBuffer) -> Result<Request, RequestFailure> {
        let value: JSON
        do {
            value = try frame.withUnsafeReadableBytes { bytes in try JSONParser.parse(bytes) }
        } catch {
            return .failure(
                RequestFailure(
                    id: .null,
                    error: RPCError(code: RPCError.parseErrorCode, message: "Parse error: \(error)", data: ["code": "parse_error"])
                )
            )
        }
        guard case .object(let object) = value else {
            return .failure(
                RequestFailure(
                    id: .null,
                    error: RPCError(
                        code: RPCError.invalidRequestCode,
                        message: "Invalid Request: expected a JSON object",
                        data: ["code": "invalid_request"]
                    )
                )
            )
        }
        let id = object["id"] ?? .null
        switch id {
        case .null, .int, .string, .double: break
        default:
            return .failure(
                RequestFailure(
                    id: .null,
                    error: RPCError(
                        code: RPCError.invalidRequestCode,
                        message: "Invalid Request: id must be a number, string or null",
                        data: ["code": "invalid_request"]
                    )
                )
            )
        }
        guard object["jsonrpc"]?.stringValue == "2.0" else {
            return .failure(
                RequestFailure(
                    id: id,
                    error: RPCError(
                        code: RPCError.invalidRequestCode,
                        message: "Invalid Request: jsonrpc must be \"2.0\"",
                        data: ["code": "invalid_request"]
                    )
                )
            )
        }
        guard let method = object["method"]?.stringValue, !method.isEmpty else {
            return .failure(
                RequestFailure(
                    id: id,
                    error: RPCError(
                        code: RPCError.invalidRequestCode,
                        message: "Invalid Request: method must be a non-empty string",
                        data: ["code": "invalid_request"]
                    )
                )
            )
        }
        let params = object["params"] ?? .object(JSONObject())
        switch params {
        case .object, .array: break
        default:
            return .failure(
                RequestFailure(
                    id: id,
                    error: RPCError(
                        code: RPCError.invalidRequestCode,
                        message: "Invalid Request: params must be an object or array",
                        data: ["code": "invalid_request"]
                    )
                )
            )
        }
        return .success(Request(id: id, method: method, params: params, isNotification: object["id"] == nil))
    }
}
