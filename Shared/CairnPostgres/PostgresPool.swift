import NIOPosix
import Synchronization

/// A small pool of libpq connections whose blocking calls run on NIO's thread pool, so
/// they never stall Swift's cooperative threads (only two on this hardware).
public final class PostgresPool: Sendable {
    public let conninfo: String
    /// Idle connections kept for reuse. Defaults to `4`.
    public let maximumIdle: Int
    private let idle = Mutex<[PostgresConnection]>([])
    /// Where the blocking calls run: NIO's shared pool (two threads here), or a pool of the
    /// service's own where slow queries must not hold up quick ones (reporting).
    private let threadPool: NIOThreadPool

    public init(conninfo: String, maximumIdle: Int = 4, threadPool: NIOThreadPool = .singleton) {
        self.conninfo = conninfo
        self.maximumIdle = maximumIdle
        self.threadPool = threadPool
    }

    /// Runs `body` with a connection on a thread-pool thread.
    ///
    /// A connection that broke during `body` is discarded, so the next call reconnects.
    public func withConnection<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) throws -> T) async throws -> T {
        try await threadPool.runIfActive { [self] in
            let connection = try checkout()
            do {
                let value = try body(connection)
                checkin(connection)
                return value
            } catch {
                checkin(connection)
                throw error
            }
        }
    }

    /// Runs `body` with one connection held across its awaits, so that a transaction or a
    /// cursor can span asynchronous work (an HTTP delivery between two fetches). Each
    /// ``PostgresSession/run(_:)`` still executes on a thread-pool thread.
    public func withSession<T: Sendable>(_ body: (PostgresSession) async throws -> T) async throws -> T {
        let connection = try await threadPool.runIfActive { [self] in try checkout() }
        // A session that fails may have left a transaction open: its connection is dropped, not pooled.
        let value = try await body(PostgresSession(connection: connection))
        checkin(connection)
        return value
    }

    /// nil when a connection answers `SELECT 1`, else why not: a service's health check.
    public func healthProblem() async -> String? {
        do {
            _ = try await withConnection { try $0.execute("SELECT 1") }
            return nil
        } catch {
            return "\(error)"
        }
    }

    /// Closes every idle connection.
    public func drain() {
        idle.withLock { $0.removeAll() }
    }

    private func checkout() throws(PostgresError) -> PostgresConnection {
        while let connection = idle.withLock({ $0.popLast() }) {
            if connection.isHealthy { return connection }
        }
        return try PostgresConnection(conninfo: conninfo)
    }

    private func checkin(_ connection: PostgresConnection) {
        guard connection.isHealthy else { return }
        idle.withLock { connections in
            if connections.count < maximumIdle { connections.append(connection) }
        }
    }
}

/// One pooled connection lent to ``PostgresPool/withSession(_:)``.
public struct PostgresSession: Sendable {
    let connection: PostgresConnection

    /// Runs blocking `body` on a thread-pool thread with the session's connection.
    public func run<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) throws -> T) async throws -> T {
        try await NIOThreadPool.singleton.runIfActive { [connection] in try body(connection) }
    }
}
