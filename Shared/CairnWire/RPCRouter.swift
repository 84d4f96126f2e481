import CairnCore

/// A method handler: takes the request's `params`, returns its `result`, or throws
/// ``RPCError`` (any other error becomes a JSON-RPC internal error).
public typealias RPCMethodHandler = @Sendable (JSON) async throws -> JSON

/// Maps JSON-RPC method names to handlers.
public struct RPCRouter: Sendable {
    private var handlers: [String: RPCMethodHandler] = [:]
    /// Sees every request answered: the method (nil for an unknown one, whose name a client
    /// chose), the error's code or nil, and the time taken. A service records its metrics here.
    public var observer: (@Sendable (_ method: String?, _ errorCode: String?, _ duration: Duration) -> Void)?

    public init() {}

    public mutating func register(_ method: String, _ handler: @escaping RPCMethodHandler) {
        handlers[method] = handler
    }

    /// Registers a typed method: its parameters are decoded before `handler` runs (a mismatch
    /// answers `invalid_params` naming the field), and its result is encoded after.
    public mutating func register<Method: RPCMethod>(
        _ method: Method.Type,
        _ handler: @escaping @Sendable (Method.Params) async throws -> Method.Result
    ) {
        handlers[Method.name] = { params in
            // A request may leave `params` out, which JSON-RPC allows for a method without any.
            let given: JSON = params == .null ? .object(JSONObject()) : params
            let typed: Method.Params
            do throws(JSONDecodingError) {
                typed = try JSONCoding.decode(Method.Params.self, from: given)
            } catch {
                throw RPCError.invalidParams(error)
            }
            return JSONCoding.encode(try await handler(typed))
        }
    }

    public var methods: [String] { handlers.keys.sorted() }

    /// Runs the handler for `method`.
    /// - Throws: ``RPCError`` for unknown methods and for whatever the handler throws.
    public func handle(method: String, params: JSON) async throws(RPCError) -> JSON {
        let started = ContinuousClock.now
        do {
            let result = try await answer(method: method, params: params)
            observer?(method, nil, ContinuousClock.now - started)
            return result
        } catch {
            observer?(handlers[method] == nil ? nil : method, error.applicationCode?.rawValue ?? "error", ContinuousClock.now - started)
            throw error
        }
    }

    private func answer(method: String, params: JSON) async throws(RPCError) -> JSON {
        guard let handler = handlers[method] else {
            throw RPCError(code: RPCError.methodNotFoundCode, message: "Method not found: \(method)", data: ["code": "method_not_found"])
        }
        do {
            return try await handler(params)
        } catch {
            if let answer = RPCError(converting: error) { throw answer }
            guard let error = error as? JSONDecodingError else {
                throw RPCError(code: RPCError.internalErrorCode, message: "Internal error: \(error)", data: ["code": "internal_error"])
            }
            throw RPCError.invalidParams(error)
        }
    }
}
