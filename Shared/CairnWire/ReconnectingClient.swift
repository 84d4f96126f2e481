import CairnCore
import NIOConcurrencyHelpers
import NIOCore

/// A client for a downstream service that reconnects on demand: after the peer restarts,
/// the next call opens a fresh connection. Callers own retries and backoff.
public final class ReconnectingClient: Sendable {
    public let socketPath: String
    private let maximumFrameSize: Int
    private let current = NIOLockedValueBox<RPCClient?>(nil)
    /// Multiplies every method's deadline. 1 in the services; a test whose premise is a peer
    /// that answers gives more, so that a loaded machine does not turn it into a timeout test.
    private let deadlineScale: Int

    public init(socketPath: String, maximumFrameSize: Int = Framing.defaultMaximumFrameSize, deadlineScale: Int = 1) {
        self.socketPath = socketPath
        self.maximumFrameSize = maximumFrameSize
        self.deadlineScale = max(1, deadlineScale)
    }

    /// Calls a typed method (``RPCClient/call(_:_:)``).
    public func call<Method: RPCMethod>(_ method: Method.Type, _ params: Method.Params) async throws -> Method.Result {
        try RPCClient.decodeResult(
            Method.self,
            try await call(Method.name, rawParams: JSONCoding.encode(params).serialized(), timeout: Method.deadline * deadlineScale)
        )
    }

    /// Calls a typed method with already-serialised parameters.
    public func call<Method: RPCMethod>(_ method: Method.Type, rawParams: [UInt8]) async throws -> Method.Result {
        try RPCClient.decodeResult(Method.self, try await call(Method.name, rawParams: rawParams, timeout: Method.deadline * deadlineScale))
    }

    private func call(_ method: String, rawParams: [UInt8], timeout: Duration) async throws -> JSON {
        let client = try await connectedClient()
        do {
            return try await client.call(method, rawParams: rawParams, timeout: timeout)
        } catch let error as WireError {
            current.withLockedValue { if $0 === client { $0 = nil } }
            await client.close()
            throw error
        }
    }

    private func connectedClient() async throws -> RPCClient {
        if let client = current.withLockedValue({ $0 }), !client.isClosed { return client }
        let client = try await RPCClient.connect(socketPath: socketPath, maximumFrameSize: maximumFrameSize)
        // Two callers may race to reconnect; the first connection stored wins.
        let existing = current.withLockedValue { value -> RPCClient? in
            if let value, !value.isClosed { return value }
            value = client
            return nil
        }
        if let existing {
            await client.close()
            return existing
        }
        return client
    }

    public func close() async {
        let client = current.withLockedValue { value -> RPCClient? in
            defer { value = nil }
            return value
        }
        await client?.close()
    }
}
