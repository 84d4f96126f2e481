import CairnCore
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

/// Serves JSON-RPC 2.0 over length-prefixed frames on a Unix domain socket.
///
/// One child task per connection in a discarding task group, so finished connections are
/// not kept, and errors are caught per connection so that one bad client (garbage bytes, an
/// oversized frame, a reset) cannot take the server down. Requests on one connection are
/// answered in order, which is what lets clients pipeline.
public struct RPCServer: Service {
    public let socketPath: String
    public let router: RPCRouter
    /// Defaults to ``Framing/defaultMaximumFrameSize``.
    public let maximumFrameSize: Int
    public let logger: Logger

    public init(socketPath: String, router: RPCRouter, maximumFrameSize: Int = Framing.defaultMaximumFrameSize, logger: Logger) {
        self.socketPath = socketPath
        self.router = router
        self.maximumFrameSize = maximumFrameSize
        self.logger = logger
    }

    public func run() async throws {
        guard socketPath.utf8.count <= 103 else {
            throw WireError(.socketPathTooLong, "socket path '\(socketPath)' is longer than 103 bytes; use a shorter run directory")
        }
        let maximumFrameSize = self.maximumFrameSize
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 256)
            .bind(unixDomainSocketPath: socketPath, cleanupExistingSocketFile: true) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try Framing.install(on: channel, maximumFrameSize: maximumFrameSize)
                    return try Self.wrapConnection(channel)
                }
            }
        // Sockets are 0600; the service also runs with umask 077, so there is no window.
        chmod(socketPath, 0o600)
        logger.info("listening", metadata: ["socket.path": "\(socketPath)"])
        defer {
            unlink(socketPath)
            logger.info("stopped listening", metadata: ["socket.path": "\(socketPath)"])
        }
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                try await server.executeThenClose { connections in
                    for try await connection in connections.cancelOnGracefulShutdown() {
                        group.addTask {
                            await serve(connection)
                        }
                    }
                }
            }
        } onGracefulShutdown: {
            server.channel.close(promise: nil)
        }
    }

    /// Wraps an accepted connection so that it closes itself if it is dropped unserved.
    ///
    /// Connections the kernel accepted but the accept loop never reached (the loop was
    /// cancelled, or shutdown closed the listener) are released without being served. NIO's
    /// newer initialiser traps on that ("Deinited NIOAsyncWriter without calling finish()"),
    /// which would crash a service while it shuts down. Closing on deinit is exactly right for
    /// such connections, so this uses the initialiser that does it; its deprecation warning is
    /// the one deliberate warning in the build.
    private static func wrapConnection(_ channel: any Channel) throws -> NIOAsyncChannel<ByteBuffer, ByteBuffer> {
        try NIOAsyncChannel<ByteBuffer, ByteBuffer>(synchronouslyWrapping: channel)
    }

    private func serve(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>) async {
        do {
            try await connection.executeThenClose { inbound, outbound in
                do {
                    for try await frame in inbound.cancelOnGracefulShutdown() {
                        if let reply = await Self.respond(to: frame, router: router) {
                            try await outbound.write(ByteBuffer(bytes: reply))
                        }
                    }
                } catch let error as WireError {
                    // A framing fault: answer once, then the connection closes.
                    let rpcError = RPCError(
                        code: RPCError.invalidRequestCode,
                        message: error.message,
                        data: .object(["code": .string(error.code.rawValue)])
                    )
                    try? await outbound.write(ByteBuffer(bytes: RPCMessage.errorResponse(id: .null, error: rpcError)))
                    logger.debug("closing connection after a framing error", metadata: ["error": "\(error)"])
                }
            }
        } catch {
            logger.debug("connection closed with error", metadata: ["error": "\(error)"])
        }
    }

    /// Answers one frame: the JSON-RPC response bytes, or nil for a notification.
    static func respond(to frame: ByteBuffer, router: RPCRouter) async -> [UInt8]? {
        switch RPCMessage.parseRequest(frame) {
        case .failure(let failure):
            return RPCMessage.errorResponse(id: failure.id, error: failure.error)
        case .success(let request):
            do {
                let result = try await router.handle(method: request.method, params: request.params)
                return request.isNotification ? nil : RPCMessage.response(id: request.id, result: result)
            } catch {
                return request.isNotification ? nil : RPCMessage.errorResponse(id: request.id, error: error)
            }
        }
    }
}
