import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A private PostgreSQL cluster under Cairn's data directory: the embedded default used
/// when `CAIRN_DATABASE_URL` is unset, and the database the tests start for themselves.
///
/// It listens only on a Unix socket in its own directory (no TCP port to collide with).
/// PostgreSQL refuses to run as root, so when Cairn runs as root the cluster's files are
/// owned by, and the server runs as, an unprivileged account (`postgres`, else `nobody`),
/// switched to with `setpriv`.
public struct EmbeddedPostgres: Sendable {
    /// The cluster's data directory (`PGDATA`).
    public let clusterDirectory: String
    /// Where the server's socket lives.
    public let socketDirectory: String
    /// Names the socket file (`.s.PGSQL.<port>`); no TCP listener is opened. Defaults to `5432`.
    public let port: Int
    /// The database superuser initdb creates; local connections are trusted.
    public let superuser = "cairn"
    /// The account the server runs as when Cairn runs as root; nil otherwise.
    public let account: Account?
    /// Extra `postgres -c` settings.
    public let settings: [String: String]
    /// Skips fsync in initdb and the server: for throwaway test clusters only.
    public let unsafeFastMode: Bool

    /// An unprivileged account to run the server as.
    public struct Account: Sendable {
        public let name: String
        public let uid: uid_t
        public let gid: gid_t
    }

    /// - Parameters:
    ///   - baseDirectory: holds `data/` and `sock/`. When Cairn runs as root and the
    ///     unprivileged account cannot reach it, a directory under `/var/tmp` is used instead.
    public init(baseDirectory: String, port: Int = 5432, settings: [String: String] = [:], unsafeFastMode: Bool = false) throws(PostgresError) {
        let account = geteuid() == 0 ? try Self.unprivilegedAccount() : nil
        var base = Self.absolute(baseDirectory)
        if let account, !Self.reachable(base, by: account) {
            base = "/var/tmp/cairn-pg-" + CanonicalHash.hex(of: base)
        }
        self.clusterDirectory = base + "/data"
        self.socketDirectory = base + "/sock"
        self.port = port
        self.account = account
        self.settings = settings
        self.unsafeFastMode = unsafeFastMode
    }

    /// A libpq connection string for `database` on this cluster.
    public func conninfo(database: String) -> String {
        PostgresConfiguration.unixSocket(directory: socketDirectory, port: port, user: superuser, database: database)
    }

    /// Creates the directories and runs `initdb` when the cluster does not exist yet, and
    /// stops a server left running by a previous, killed owner.
    public func prepare() throws(PostgresError) {
        let base = (clusterDirectory as NSString).deletingLastPathComponent
        for directory in [base, clusterDirectory, socketDirectory] {
            try makeOwnedDirectory(directory)
        }
        try stopStaleServer()
        if FileManager.default.fileExists(atPath: clusterDirectory + "/PG_VERSION") { return }
        var arguments = [try Self.binary("initdb"), "-D", clusterDirectory, "-U", superuser, "-A", "trust", "-E", "UTF8", "--locale=C"]
        if unsafeFastMode { arguments.append("--no-sync") }
        let (status, output) = try run(arguments)
        guard status == 0 else {
            throw PostgresError(.clusterFailed, "initdb failed (exit \(status)): \(output)")
        }
    }

    /// The command that runs the server in the foreground, as the right user.
    /// - Parameter stopsWithParent: the server gets a fast shutdown (SIGINT) when the thread
    ///   that started it ends, so a supervisor killed outright leaves no server behind. Only for
    ///   a parent that starts it from a thread living as long as the server (`setpriv --pdeathsig`).
    public func serverCommand(stopsWithParent: Bool = false) throws(PostgresError) -> [String] {
        var arguments = [try Self.binary("postgres"), "-D", clusterDirectory, "-k", socketDirectory, "-p", String(port), "-c", "listen_addresses="]
        var all = settings
        if unsafeFastMode {
            all["fsync"] = all["fsync"] ?? "off"
            all["synchronous_commit"] = all["synchronous_commit"] ?? "off"
            all["full_page_writes"] = all["full_page_writes"] ?? "off"
        }
        for (key, value) in all.sorted(by: { $0.key < $1.key }) {
            arguments += ["-c", "\(key)=\(value)"]
        }
        guard stopsWithParent else { return wrap(arguments) }
        let setpriv = "/usr/bin/setpriv"
        guard FileManager.default.isExecutableFile(atPath: setpriv) else {
            throw PostgresError(.clusterFailed, "\(setpriv) is missing: install util-linux, which ties the server's life to Cairn's")
        }
        if let account {
            return [setpriv, "--reuid=\(account.uid)", "--regid=\(account.gid)", "--init-groups", "--pdeathsig", "INT", "--"] + arguments
        }
        return [setpriv, "--pdeathsig", "INT", "--"] + arguments
    }

    /// Connects to the `postgres` database until the server answers or `timeout` passes.
    public func waitUntilReady(timeout: Duration = .seconds(30)) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var lastError: PostgresError?
        while clock.now < deadline {
            do {
                _ = try PostgresConnection(conninfo: conninfo(database: "postgres"))
                return
            } catch {
                lastError = error
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw PostgresError(.clusterFailed, "the embedded PostgreSQL did not accept connections within \(timeout): \(lastError?.message ?? "")")
    }

    /// Whether the server accepts connections right now.
    public func isReady() -> Bool {
        (try? PostgresConnection(conninfo: conninfo(database: "postgres"))) != nil
    }

    /// Creates `database` unless it exists.
    public func createDatabase(_ database: String) throws(PostgresError) {
        let connection = try PostgresConnection(conninfo: conninfo(database: "postgres"))
        let exists = try connection.execute("SELECT 1 FROM pg_database WHERE datname = $1", [database])
        if exists.rows.isEmpty {
            // Identifiers cannot be bound parameters; quote_ident on the server makes this safe.
            let quoted = try connection.execute("SELECT quote_ident($1) AS quoted", [database]).firstRow?["quoted"] ?? database
            try connection.execute("CREATE DATABASE \(quoted)")
        }
    }

    // MARK: - Helpers

    /// Finds a PostgreSQL server binary: `CAIRN_PG_BIN`, then `PATH`, then Debian's
    /// `/usr/lib/postgresql/<version>/bin` (newest first), where apt puts them off `PATH`.
    public static func binary(_ name: String) throws(PostgresError) -> String {
        let environment = ProcessInfo.processInfo.environment
        var candidates: [String] = []
        if let directory = environment["CAIRN_PG_BIN"] { candidates.append(directory) }
        candidates += (environment["PATH"] ?? "").split(separator: ":").map(String.init)
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        candidates += versions.sorted { (Int($0) ?? 0) > (Int($1) ?? 0) }.map { "/usr/lib/postgresql/\($0)/bin" }
        for directory in candidates where FileManager.default.isExecutableFile(atPath: directory + "/" + name) {
            return directory + "/" + name
        }
        throw PostgresError(.clusterFailed, "cannot find the PostgreSQL program '\(name)'; install the postgresql package or set CAIRN_PG_BIN")
    }

    private static func unprivilegedAccount() throws(PostgresError) -> Account {
        for name in ["postgres", "nobody"] {
            if let entry = getpwnam(name) {
                return Account(name: name, uid: entry.pointee.pw_uid, gid: entry.pointee.pw_gid)
            }
        }
        throw PostgresError(.clusterFailed, "running as root, but there is no unprivileged 'postgres' or 'nobody' account to run PostgreSQL as")
    }

    private static func absolute(_ path: String) -> String {
        if path.hasPrefix("/") { return (path as NSString).standardizingPath }
        return ((FileManager.default.currentDirectoryPath + "/" + path) as NSString).standardizingPath
    }

    /// Whether `account` can search every existing ancestor of `path`.
    private static func reachable(_ path: String, by account: Account) -> Bool {
        var current = (path as NSString).deletingLastPathComponent
        while !current.isEmpty {
            var info = stat()
            if stat(current, &info) == 0 {
                let mode = info.st_mode
                let searchable: Bool
                if info.st_uid == account.uid {
                    searchable = mode & 0o100 != 0
                } else if info.st_gid == account.gid {
                    searchable = mode & 0o010 != 0
                } else {
                    searchable = mode & 0o001 != 0
                }
                if !searchable { return false }
            }
            if current == "/" { break }
            current = (current as NSString).deletingLastPathComponent
        }
        return true
    }

    private func makeOwnedDirectory(_ path: String) throws(PostgresError) {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw PostgresError(.clusterFailed, "cannot create \(path): \(error.localizedDescription)")
        }
        if let account, chown(path, account.uid, account.gid) != 0 {
            throw PostgresError(.clusterFailed, "cannot give \(path) to user \(account.name): \(String(cString: strerror(errno)))")
        }
        chmod(path, 0o700)
    }

    /// Stops a postmaster that a killed predecessor left running on this cluster.
    private func stopStaleServer() throws(PostgresError) {
        guard let text = try? String(contentsOfFile: clusterDirectory + "/postmaster.pid", encoding: .utf8),
            let line = text.split(separator: "\n").first, let pid = pid_t(line.trimmingCharacters(in: .whitespaces)), pid > 0
        else { return }
        let command = (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        guard kill(pid, 0) == 0, command == "postgres" else { return }
        kill(pid, SIGINT)
        for _ in 0..<100 {
            if kill(pid, 0) != 0 { return }
            usleep(100_000)
        }
        kill(pid, SIGKILL)
        usleep(200_000)
    }

    private func wrap(_ arguments: [String]) -> [String] {
        guard let account else { return arguments }
        return ["/usr/bin/setpriv", "--reuid=\(account.uid)", "--regid=\(account.gid)", "--init-groups", "--"] + arguments
    }

    private func run(_ arguments: [String]) throws(PostgresError) -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: wrap(arguments)[0])
        process.arguments = Array(wrap(arguments).dropFirst())
        var environment = ProcessInfo.processInfo.environment
        environment["LC_ALL"] = "C"
        process.environment = environment
        process.currentDirectoryURL = URL(fileURLWithPath: "/")
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        do {
            try process.run()
        } catch {
            throw PostgresError(.clusterFailed, "cannot run \(arguments[0]): \(error.localizedDescription)")
        }
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }
}

/// A short stable hash for naming fallback directories.
enum CanonicalHash {
    static func hex(of text: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return String(hash, radix: 16)
    }
}
