import CairnCore
import CairnMetrics
import CairnWire
import HTTPTypes
import Hummingbird
import NIOCore

/// The console module's marker: its errors are ``ConsoleError``.
public enum ConsoleModule {}

/// An error of the report API or the console: a stable code, the parameter at fault as the
/// request spelled it, and the reason.
public typealias ConsoleError = ModuleError<ConsoleModule>

/// Answers what the router itself refuses (no such route, a method a route does not take) as
/// JSON with a stable code, like every other refusal, instead of an empty body.
struct JSONErrors<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError {
            let code: ErrorCode =
                switch error.status {
                case .notFound: .notFound
                case .methodNotAllowed: .methodNotAllowed
                case .contentTooLarge: .requestTooLarge
                default: .invalidParameter
                }
            throw APIRefusal(error.status, code, error.body ?? "\(request.method) \(request.uri.path): \(error.status.reasonPhrase)")
        }
    }
}

/// An answer that refuses a request: its status, and the error as JSON
/// (`{"code", "message", "parameter"?}`), the same codes the RPC socket gives.
struct APIRefusal: HTTPResponseError {
    var status: HTTPResponse.Status
    var code: ErrorCode
    var message: String
    var parameter: String?
    var headers: HTTPFields = [:]

    init(_ status: HTTPResponse.Status, _ code: ErrorCode, _ message: String, parameter: String? = nil, headers: HTTPFields = [:]) {
        self.status = status
        self.code = code
        self.message = message
        self.parameter = parameter
        self.headers = headers
    }

    var json: JSON {
        var object: JSONObject = ["code": .string(code.rawValue), "message": .string(message)]
        if let parameter { object["parameter"] = .string(parameter) }
        return .object(object)
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers = headers
        headers[.contentType] = "application/json"
        headers[.xContentTypeOptions] = "nosniff"
        headers[.cacheControl] = "no-store"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: json.serialized())))
    }

    /// The status an application error's code answers with: unknown things 404, time-outs 504, a
    /// database away 503, anything about a parameter 400, the rest 500.
    static func status(for code: ErrorCode) -> HTTPResponse.Status {
        switch code {
        case .unknownApp, .unknownUser, .unknownCompany, .notFound: .notFound
        case .reportTimeout: .gatewayTimeout
        case .storageUnavailable, .queryFailed, .overloaded: .serviceUnavailable
        case .missingReadKey, .unknownReadKey: .unauthorized
        case .forbiddenApp: .forbidden
        default:
            code.rawValue.hasPrefix("invalid_") || code.rawValue.hasPrefix("unknown_") || code == .missingOption ? .badRequest : .internalServerError
        }
    }

    /// Any error a report or view throws, as an answer. `parameterName` turns a params field
    /// (`start_event`) into the query parameter a client sent (`start-event`).
    static func from(_ error: any Error, parameterName: (String) -> String = { $0 }) -> APIRefusal {
        if let refusal = error as? APIRefusal { return refusal }
        if let decoding = error as? JSONDecodingError {
            let name = parameterName(decoding.path.first ?? "")
            return APIRefusal(.badRequest, .invalidParameter, "\(name): expected \(decoding.expected), found \(decoding.found)", parameter: name)
        }
        if let rpc = RPCError(converting: error), let code = rpc.applicationCode {
            if let (field, reason) = rpc.fieldReason {
                // An error that names a parameter is the request's fault, unless it is about something missing or slow.
                let name = parameterName(field)
                let status = status(for: code)
                return APIRefusal(status == .internalServerError ? .badRequest : status, code, "\(name) \(reason)", parameter: name)
            }
            return APIRefusal(status(for: code), code, rpc.message)
        }
        return APIRefusal(.internalServerError, ErrorCode(rawValue: "internal"), "\(error)")
    }
}

/// Counts each request of the report API and the console, by route pattern (never the raw
/// path, which a client controls) and status, with its latency.
struct HTTPMetrics<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        do {
            let response = try await next(request, context)
            record(context, status: response.status.code, since: started)
            return response
        } catch {
            record(context, status: (error as? any HTTPResponseError)?.status.code ?? 500, since: started)
            throw error
        }
    }

    private func record(_ context: Context, status: Int, since started: ContinuousClock.Instant) {
        let route = context.endpointPath ?? "other"
        // The app is named only once its key was good: a refused request names nobody's app.
        let app = (200..<300).contains(status) ? context.parameters.get("app") ?? "" : ""
        CairnMetric.httpRequests.increment(route, String(status), app)
        CairnMetric.httpDuration.record(ContinuousClock.now - started, route)
    }
}
