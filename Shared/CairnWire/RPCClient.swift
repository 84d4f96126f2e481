import CairnCore
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A JSON-RPC client on one Unix-socket connection. Calls may be issued concurrently; they
/// are pipelined on the connection and matched to responses by id.
public final class RPCClient: Sendable {
    struct State {
        var nextId: Int64 = 0
        var pending: [Int64: EventLoopPromise<JSON>] = [:]
        var closedReason: WireError?
    }

    private let channel: any Channel
    private let state: NIOLockedValueBox<State>
    public let socketPath: String

    private init(channel: any Channel, state: NIOLockedValueBox<State>, socketPath: String) {
        self.channel = channel
        self.state = state
        self.socketPath = socketPath
    }

    /// Connects to the service listening on `socketPath`.
    /// - Throws: ``WireError`` with code `connect_failed` when nothing listens there.
    public static func connect(
        socketPath: String,
        maximumFrameSize: Int = Framing.defaultMaximumFrameSize,
        timeout: TimeAmount = .seconds(5)
    ) async throws -> RPCClient {
        let state = NIOLockedValueBox(State())
        do {
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(timeout)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try Framing.install(on: channel, maximumFrameSize: maximumFrameSize)
                        try channel.pipeline.syncOperations.addHandler(ResponseHandler(state: state))
                    }
                }
                .connect(unixDomainSocketPath: socketPath)
                .get()
            return RPCClient(channel: channel, state: state, socketPath: socketPath)
        } catch {
            throw WireError(.connectFailed, "cannot connect to \(socketPath): \(error)")
        }
    }

    /// Connects, runs `body`, and closes the connection however `body` ends.
    public static func withConnection<Result: Sendable>(
        socketPath: String,
        maximumFrameSize: Int = Framing.defaultMaximumFrameSize,
        _ body: (RPCClient) async throws -> Result
    ) async throws -> Result {
        let client = try await connect(socketPath: socketPath, maximumFrameSize: maximumFrameSize)
        do {
            let result = try await body(client)
            await client.close()
            return result
        } catch {
            await client.close()
            throw error
        }
    }

    /// Whether the connection has closed; a closed client fails every call.
    public var isClosed: Bool { state.withLockedValue { $0.closedReason != nil } }

    /// How long a call waits for its answer unless its method says otherwise.
    public static let defaultDeadline: Duration = .seconds(30)

    /// Calls a typed method: its name, parameters, result and deadline come from the type.
    public func call<Method: RPCMethod>(_ method: Method.Type, _ params: Method.Params) async throws -> Method.Result {
        try Self.decodeResult(Method.self, try await call(Method.name, rawParams: JSONCoding.encode(params).serialized(), timeout: Method.deadline))
    }

    /// Calls a typed method whose parameters are already-serialised JSON bytes, so a hop that
    /// only relays events (ingest's forwarder) need not parse and re-encode them.
    public func call<Method: RPCMethod>(_ method: Method.Type, rawParams: [UInt8]) async throws -> Method.Result {
        try Self.decodeResult(Method.self, try await call(Method.name, rawParams: rawParams, timeout: Method.deadline))
    }

    static func decodeResult<Method: RPCMethod>(_ method: Method.Type, _ result: JSON) throws -> Method.Result {
        do {
            return try JSONCoding.decode(Method.Result.self, from: result)
        } catch {
            throw WireError(.invalidResponse, "\(Method.name) answered a result that does not read as its type: \(error)")
        }
    }

    /// Sends one request by name and waits for its response: for tests and tools that speak
    /// the protocol itself. Services call typed methods.
    /// - Returns: the response's `result`.
    /// - Throws: ``RPCError`` when the peer answered with an error, ``WireError`` when the
    ///   connection failed or the deadline passed before an answer came, `CancellationError`
    ///   when the calling task was cancelled.
    public func call(_ method: String, _ params: JSON = .object(JSONObject()), timeout: Duration = defaultDeadline) async throws -> JSON {
        try await call(method, rawParams: params.serialized(), timeout: timeout)
    }

    /// Sends one request whose `params` are already-serialised JSON bytes.
    public func call(_ method: String, rawParams: [UInt8], timeout: Duration = defaultDeadline) async throws -> JSON {
        try Task.checkCancellation()
        let promise = channel.eventLoop.makePromise(of: JSON.self)
        let registered: Result<Int64, WireError> = state.withLockedValue { state in
            if let reason = state.closedReason { return .failure(reason) }
            state.nextId += 1
            state.pending[state.nextId] = promise
            return .success(state.nextId)
        }
        let id: Int64
        switch registered {
        case .failure(let reason):
            promise.fail(reason)
            throw reason
        case .success(let value):
            id = value
        }
        let frame = ByteBuffer(bytes: RPCMessage.request(id: id, method: method, rawParams: rawParams))
        channel.writeAndFlush(frame).whenFailure { [state] error in
            let waiting = state.withLockedValue { $0.pending.removeValue(forKey: id) }
            waiting?.fail(WireError(.connectionClosed, "write to \(self.socketPath) failed: \(error)"))
        }
        // A peer that stops answering (stopped, deadlocked) must not hold the caller forever:
        // past the deadline the call fails and the connection closes (its answer, if it ever
        // comes, could not be matched to anyone).
        let nanoseconds = timeout.components.seconds * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000
        let expiry = channel.eventLoop.scheduleTask(in: .nanoseconds(nanoseconds)) { [state, channel] in
            let waiting = state.withLockedValue { $0.pending.removeValue(forKey: id) }
            waiting?.fail(WireError(.timedOut, "\(method) got no answer within \(timeout)"))
            channel.close(promise: nil)
        }
        promise.futureResult.whenComplete { _ in expiry.cancel() }
        // A cancelled caller stops waiting at once; the request's answer is dropped when it comes.
        return try await withTaskCancellationHandler {
            try await promise.futureResult.get()
        } onCancel: { [state] in
            let waiting = state.withLockedValue { $0.pending.removeValue(forKey: id) }
            waiting?.fail(CancellationError())
        }
    }

    public func close() async {
        try? await channel.close()
    }

    /// Fulfils pending calls from response frames; fails them all when the connection ends.
    final class ResponseHandler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer

        let state: NIOLockedValueBox<State>

        init(state: NIOLockedValueBox<State>) { self.state = state }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let frame = unwrapInboundIn(data)
            guard let value = try? frame.withUnsafeReadableBytes({ try JSONParser.parse($0) }),
                case .object(let object) = value
            else {
                failAll(WireError(.invalidResponse, "peer sent a frame that is not a JSON-RPC response"))
                context.close(promise: nil)
                return
            }
            guard let id = object["id"]?.intValue else {
                // An error without an id is the peer refusing the connection (e.g. a framing fault).
                if let error = object["error"] {
                    failAll(Self.rpcError(from: error))
                } else {
                    failAll(WireError(.invalidResponse, "peer sent a response without an id"))
                }
                context.close(promise: nil)
                return
            }
            let promise = state.withLockedValue { $0.pending.removeValue(forKey: id) }
            guard let promise else { return }
            if let error = object["error"] {
                promise.fail(Self.rpcError(from: error))
            } else {
                promise.succeed(object["result"] ?? .null)
            }
        }

        static func rpcError(from value: JSON) -> RPCError {
            RPCError(
                code: Int(value["code"]?.intValue ?? Int64(RPCError.internalErrorCode)),
                message: value["message"]?.stringValue ?? "unknown error",
                data: value["data"]
            )
        }

        func channelInactive(context: ChannelHandlerContext) {
            failAll(WireError(.connectionClosed, "connection closed by peer"))
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            failAll((error as? WireError) ?? WireError(.connectionClosed, "connection failed: \(error)"))
            context.close(promise: nil)
        }

        private func failAll(_ error: any Error) {
            let reason = (error as? WireError) ?? WireError(.connectionClosed, "\(error)")
            let waiting = state.withLockedValue { state -> [EventLoopPromise<JSON>] in
                if state.closedReason == nil { state.closedReason = reason }
                let promises = Array(state.pending.values)
                state.pending.removeAll()
                return promises
            }
            for promise in waiting { promise.fail(error) }
        }
    }
}
