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
        let base = "/tmp/cairn-test-pg-\(getpid())"
        let cluster = try EmbeddedPostgres(baseDirectory: base, port: 5432, unsafeFastMode: true)
        try cluster.prepare()
        let command = try cluster.serverCommand()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        _ = FileManager.default.createFile(atPath: base + "/server.log", contents: nil)
        process.standardError = FileHandle(forWritingAtPath: base + "/server.log")
        do {
            try process.run()
        } catch {
            throw PostgresError(.clusterFailed, "cannot start the test PostgreSQL: \(error)")
        }
        postmasterPID.withLock { $0 = process.processIdentifier }
        atexit {
            let pid = TestPostgres.postmasterPID.withLock { $0 }
            guard pid > 0 else { return }
            kill(pid, SIGINT)
            for _ in 0..<100 where kill(pid, 0) == 0 { usleep(50_000) }
            try? FileManager.default.removeItem(atPath: "/tmp/cairn-test-pg-\(getpid())")
        }
        for _ in 0..<300 {
            if cluster.isReady() { return cluster }
            usleep(100_000)
        }
        let log = (try? String(contentsOfFile: base + "/server.log", encoding: .utf8)) ?? ""
        throw PostgresError(.clusterFailed, "the test PostgreSQL did not start within 30 s:\n\(log)")
    }

    /// Removes clusters left by test processes that died without cleaning up.
    private static func sweepStaleClusters() {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? []
        for entry in entries where entry.hasPrefix("cairn-test-pg-") {
            guard let pid = pid_t(entry.dropFirst("cairn-test-pg-".count)), kill(pid, 0) != 0 else { continue }
            let pidFile = "/tmp/\(entry)/data/postmaster.pid"
            if let text = try? String(contentsOfFile: pidFile, encoding: .utf8), let line = text.split(separator: "\n").first,
                let postmaster = pid_t(line), postmaster > 0 {
                kill(postmaster, SIGINT)
                for _ in 0..<50 where kill(postmaster, 0) == 0 { usleep(100_000) }
            }
            try? FileManager.default.removeItem(atPath: "/tmp/\(entry)")
        }
    }
}
