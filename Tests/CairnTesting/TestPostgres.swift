import CairnPostgres
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A real PostgreSQL server for tests, started once per test process on a private socket
/// directory (as an unprivileged user when the tests run as root), and stopped when the
/// process exits. Each test gets its own fresh database from ``freshDatabase()``.
public enum TestPostgres {
    private static let cluster = Mutex<Result<EmbeddedPostgres, PostgresError>?>(nil)
    private static let postmasterPID = Mutex<pid_t>(0)

    /// A connection string to a new, empty database on the shared test cluster.
    public static func freshDatabase() throws -> String {
        let cluster = try shared()
        let name = "t_\(getpid())_\(UInt32.random(in: 0...UInt32.max))"
        try cluster.createDatabase(name)
        return cluster.conninfo(database: name)
    }

    /// The shared cluster, started on first use.
    public static func shared() throws -> EmbeddedPostgres {
        try cluster.withLock { state in
            if let state { return try state.get() }
            let result = Result { () throws(PostgresError) -> EmbeddedPostgres in try start() }
            state = result
            return try result.get()
        }
    }

    private static func start() throws(PostgresError) -> EmbeddedPostgres {
        sweepStaleClusters()
        let server = try TestServer(base: "/tmp/cairn-test-pg-\(getpid())")
        try server.start()
        postmasterPID.withLock { $0 = server.pid }
        atexit {
            let pid = TestPostgres.postmasterPID.withLock { $0 }
            guard pid > 0 else { return }
            kill(pid, SIGINT)
            for _ in 0..<100 where kill(pid, 0) == 0 { usleep(50_000) }
            try? FileManager.default.removeItem(atPath: "/tmp/cairn-test-pg-\(getpid())")
        }
        return server.cluster
    }

    /// Removes clusters left by test processes that died without cleaning up.
    private static func sweepStaleClusters() {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? []
        for entry in entries where entry.hasPrefix("cairn-test-pg-") {
            guard let pid = pid_t(entry.dropFirst("cairn-test-pg-".count)), kill(pid, 0) != 0 else { continue }
            let pidFile = "/tmp/\(entry)/data/postmaster.pid"
            if let text = try? String(contentsOfFile: pidFile, encoding: .utf8), let line = text.split(separator: "\n").first,
                let postmaster = pid_t(line), postmaster > 0
            {
                kill(postmaster, SIGINT)
                for _ in 0..<50 where kill(postmaster, 0) == 0 { usleep(100_000) }
            }
            try? FileManager.default.removeItem(atPath: "/tmp/\(entry)")
        }
    }
}

/// A PostgreSQL server a test can stop and start again (the fault suite takes the database
/// away under a running stack). Durability settings are off: the machine itself never
/// crashes under a test, and an immediate stop is still recovered from the WAL.
public final class TestServer: @unchecked Sendable {
    public let cluster: EmbeddedPostgres
    public let base: String
    private var process: Process?

    public init(base: String) throws(PostgresError) {
        self.base = base
        cluster = try EmbeddedPostgres(baseDirectory: base, port: 5432, unsafeFastMode: true)
        try cluster.prepare()
    }

    /// The server's process id while it runs.
    public var pid: pid_t { process.map { $0.isRunning ? $0.processIdentifier : 0 } ?? 0 }
    public var isRunning: Bool { process?.isRunning ?? false }

    /// Starts the server and waits until it answers.
    public func start() throws(PostgresError) {
        let command = try cluster.serverCommand()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        if !FileManager.default.fileExists(atPath: base + "/server.log") {
            _ = FileManager.default.createFile(atPath: base + "/server.log", contents: nil)
        }
        let log = FileHandle(forWritingAtPath: base + "/server.log")
        log?.seekToEndOfFile()
        process.standardError = log
        do {
            try process.run()
        } catch {
            throw PostgresError(.clusterFailed, "cannot start the test PostgreSQL: \(error)")
        }
        self.process = process
        for _ in 0..<300 {
            if cluster.isReady() { return }
            guard process.isRunning else { break }
            usleep(100_000)
        }
        let text = (try? String(contentsOfFile: base + "/server.log", encoding: .utf8)) ?? ""
        throw PostgresError(.clusterFailed, "the test PostgreSQL did not start within 30 s:\n\(text.suffix(2000))")
    }

    /// Stops the server: `fast` (SIGINT) disconnects everyone and shuts down cleanly,
    /// `immediate` (SIGQUIT) drops everything as a crash would.
    public func stop(immediate: Bool = false) async {
        guard let process, process.isRunning else { return }
        kill(process.processIdentifier, immediate ? SIGQUIT : SIGINT)
        while process.isRunning { try? await Task.sleep(for: .milliseconds(20)) }
    }

    /// A new, empty database on this server.
    public func freshDatabase(_ name: String) throws(PostgresError) -> String {
        try cluster.createDatabase(name)
        return cluster.conninfo(database: name)
    }

    /// Stops the server and removes its files.
    public func remove() async {
        await stop()
        try? FileManager.default.removeItem(atPath: base)
    }
}
