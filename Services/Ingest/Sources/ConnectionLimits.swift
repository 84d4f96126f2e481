import NIOCore
import Synchronization

/// The HTTP listener's bounds on what a client controls, each a setting of the ingest
/// service (`settings` in the stack file):
///
/// | setting | default | bounds |
/// |---|---|---|
/// | `max_connections` | 1,024 | open HTTP connections in all; past it, new ones wait in the listen backlog |
/// | `max_connections_per_client` | 128 | open connections from one IP address; more are closed at once |
/// | `idle_timeout_s` | 30 | a connection with no request in flight, including one still sending its headers (slowloris) |
/// | `body_timeout_s` | 10 | reading one request's body (a `Content-Length` that never arrives) |
///
/// Ingest's own file descriptors (the spool, its sockets) stay free however many clients
/// try: 20,000 idle connections once exhausted them.
struct ConnectionLimits: Sendable {
    var maximumConnections = 1_024
    var maximumConnectionsPerClient = 128
    var idleTimeout: Duration = .seconds(30)
    var bodyTimeout: Duration = .seconds(10)
}

/// Counts the open connections per client address, shared by every connection's handler.
final class ClientConnections: Sendable {
    private let counts = Mutex<[String: Int]>([:])
    let maximumPerClient: Int

    init(maximumPerClient: Int) { self.maximumPerClient = maximumPerClient }

    /// Counts a new connection from `client`; false when it is one too many.
    func open(_ client: String) -> Bool {
        counts.withLock { counts in
            let now = counts[client, default: 0] + 1
            counts[client] = now
            return now <= maximumPerClient
        }
    }

    func close(_ client: String) {
        counts.withLock { counts in
            let left = (counts[client] ?? 1) - 1
            counts[client] = left > 0 ? left : nil
        }
    }
}

/// Closes a connection when its client already holds ``ClientConnections/maximumPerClient``.
final class PerClientConnectionLimit: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    let connections: ClientConnections
    private var client: String?

    init(_ connections: ClientConnections) { self.connections = connections }

    /// Counts this connection for its client; closes it (and says false) when it is one too many.
    private func register(_ context: ChannelHandlerContext) -> Bool {
        let address = context.channel.remoteAddress?.ipAddress ?? "unknown"
        client = address
        guard connections.open(address) else {
            context.close(promise: nil)
            return false
        }
        return true
    }

    func handlerAdded(context: ChannelHandlerContext) {
        // Added to a channel that is already active: count it now.
        if context.channel.isActive { _ = register(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        if client == nil, !register(context) { return }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let client { connections.close(client) }
        client = nil
        context.fireChannelInactive()
    }
}
