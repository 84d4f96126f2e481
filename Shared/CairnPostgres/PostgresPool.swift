import CairnMetrics
import NIOPosix
import Synchronization

/// A small pool of libpq connections whose blocking calls run on NIO's thread pool, so
/// they never stall Swift's cooperative threads (only two on this hardware).
public final class PostgresPool: Sendable {
    public let conninfo: String
    /// Idle connections kept for reuse. Defaults to `4`.
    public let maximumIdle: Int
    private let idle = Mutex<[PostgresConnection]>([])
    /// Connections lent out now.
    private let busy = Mutex(0)
    /// Names the pool in `cairn_postgres_connections`.
    public let name: String
    /// Where the blocking calls run: NIO's shared pool (two threads here), or a pool of the
    /// service's own where slow queries must not hold up quick ones (reporting).
    private let threadPool: NIOThreadPool

    public init(conninfo: String, maximumIdle: Int = 4, threadPool: NIOThreadPool = .singleton, name: String = "main") {
        self.conninfo = conninfo
        self.name = name
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
        let value: T
        do {
            value = try await body(PostgresSession(connection: connection))
        } catch {
            lent(-1)
            throw error
        }
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
            if connection.isHealthy {
                lent(+1)
                return connection
            }
        }
        do {
            let connection = try PostgresConnection(conninfo: conninfo)
            CairnMetric.postgresConnects.increment(name, "ok")
            lent(+1)
            return connection
        } catch {
            CairnMetric.postgresConnects.increment(name, "failed")
            throw error
        }
    }

    private func checkin(_ connection: PostgresConnection) {
        defer { lent(-1) }
        guard connection.isHealthy else { return }
        idle.withLock { connections in
            if connections.count < maximumIdle { connections.append(connection) }
        }
    }

    /// Counts a connection lent (+1) or returned (-1), and sets the pool's gauges.
    private func lent(_ change: Int) {
        let now = busy.withLock { count in
            count += change
            return count
        }
        CairnMetric.postgresConnections.set(Double(now), name, "busy")
        CairnMetric.postgresConnections.set(Double(idle.withLock { $0.count }), name, "idle")
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
