import CairnCore
import CairnPostgres
import CairnWire
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A real Cairn stack for one test: the supervisor binary with its embedded PostgreSQL (or
/// the database `CAIRN_DATABASE_URL` names), in a private data directory, stopped with
/// SIGTERM at the end.
public final class TestStack: @unchecked Sendable {
    public let directory: String
    /// The running supervisor; ``restart()`` replaces it.
    public private(set) var supervisor: Process
    public let logPath: String
    /// The stack file given with `--stack`; nil runs the supervisor's own default.
    private let stackPath: String?
    private let environment: [String: String]
    /// Where `cairn-supervisor` and `cairn` are: the build's products, or an installation's `bin`.
    public let binDirectory: String

    public var runDirectory: String { directory + "/var/run" }
    /// The stack's own database, for checks that go behind the services' backs.
    public var databaseConninfo: String {
        environment["CAIRN_DATABASE_URL"]
            ?? PostgresConfiguration.unixSocket(directory: directory + "/var/postgres/sock", port: 5432, user: "cairn", database: "cairn")
    }

    /// - Parameters:
    ///   - stack: a stack file's JSON to run instead of `compose/default.json`.
    ///   - prepare: runs on the new data directory before the supervisor starts.
    ///   - installation: the `bin` of an installation (`make install`) to run instead of the
    ///     build's executables, on the installation's own stack file.
    public init(
        environment extra: [String: String] = [:],
        stack: JSON? = nil,
        waitUntilRunning: Bool = true,
        installation: String? = nil,
        prepare: (String) throws -> Void = { _ in }
    ) async throws {
        binDirectory = installation ?? Binaries.directory
        let supervisorPath = binDirectory + "/cairn-supervisor"
        guard FileManager.default.isExecutableFile(atPath: supervisorPath) else {
            throw TestStackError("\(supervisorPath) is missing: run `swift build` (make test does) before the end-to-end tests")
        }
        directory = "/tmp/cairn-e2e-\(getpid())-\(UInt16.random(in: 0...UInt16.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: directory + "/var", withIntermediateDirectories: true)
        try prepare(directory + "/var")
        logPath = directory + "/supervisor.log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        var stackPath: String? = installation == nil ? Self.repositoryRoot + "/compose/default.json" : nil
        if let stack {
            stackPath = directory + "/stack.json"
            try Data(stack.serialized()).write(to: URL(fileURLWithPath: directory + "/stack.json"))
        }
        self.stackPath = stackPath
        var environment = ProcessInfo.processInfo.environment
        environment["CAIRN_DATA_DIR"] = directory + "/var"
        environment.removeValue(forKey: "CAIRN_RUN_DIR")
        environment.removeValue(forKey: "CAIRN_DATABASE_URL")
        // Any free port: stacks of parallel tests, or a `make run`, never collide.
        environment["CAIRN_HTTP_ADDR"] = "127.0.0.1:0"
        environment["CAIRN_CONSOLE_ADDR"] = "127.0.0.1:0"
        environment["CAIRN_METRICS_ADDR"] = "127.0.0.1:0"
        environment.merge(extra) { _, new in new }
        self.environment = environment
        supervisor = try Self.launch(binDirectory: binDirectory, stackPath: stackPath, environment: environment, logPath: logPath)
        if waitUntilRunning {
            do {
                try await self.waitUntilRunning()
            } catch {
                // Nobody else holds this stack yet: stop it rather than leave it running.
                _ = try? await stop(removingFiles: false)
                throw error
            }
        }
    }

    private static func launch(binDirectory: String, stackPath: String?, environment: [String: String], logPath: String) throws -> Process {
        let supervisor = Process()
        supervisor.executableURL = URL(fileURLWithPath: binDirectory + "/cairn-supervisor")
        supervisor.arguments = stackPath.map { ["--stack", $0] } ?? []
        supervisor.environment = environment
        let log = FileHandle(forWritingAtPath: logPath)
        log?.seekToEndOfFile()
        supervisor.standardOutput = log
        supervisor.standardError = log
        try supervisor.run()
        return supervisor
    }

    /// Starts a new supervisor on the same data directory, after the last one has exited
    /// (stopped, or killed outright).
    public func restart(waitUntilRunning: Bool = true) async throws {
        guard !supervisor.isRunning else { throw TestStackError("restart() while the supervisor still runs") }
        supervisor = try Self.launch(binDirectory: binDirectory, stackPath: stackPath, environment: environment, logPath: logPath)
        if waitUntilRunning { try await self.waitUntilRunning() }
    }

    /// `compose/default.json` with `settings` given to the service `service`.
    public static func defaultStack(settings: JSON, for service: String) throws -> JSON {
        try defaultStack { services in
            for index in services.indices where services[index]["name"]?.stringValue == service {
                guard case .object(var entry) = services[index] else { continue }
                entry["settings"] = settings
                services[index] = .object(entry)
            }
        }
    }

    /// `compose/default.json` with its `services` changed by `change`.
    public static func defaultStack(changingServices change: (inout [JSON]) -> Void) throws -> JSON {
        guard let data = FileManager.default.contents(atPath: repositoryRoot + "/compose/default.json") else {
            throw TestStackError("cannot read compose/default.json")
        }
        guard case .object(var stack) = try JSONParser.parse(Array(data)), var services = stack["services"]?.arrayValue else {
            throw TestStackError("compose/default.json is not a stack file")
        }
        change(&services)
        stack["services"] = .array(services)
        return .object(stack)
    }

    public static var repositoryRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }

    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    public func waitUntilRunning(timeout: Duration = .seconds(120)) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            guard supervisor.isRunning else { throw TestStackError("the supervisor exited during start-up:\n\(log)") }
            if let status = try? await call("supervisor", "supervisor.status"), status["phase"] == "running" { return }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw TestStackError("the stack did not come up within \(timeout):\n\(log)")
    }

    public func call(_ service: String, _ method: String, _ params: JSON = .object(JSONObject())) async throws -> JSON {
        try await RPCClient.withConnection(socketPath: RunDirectory.socketPath(runDirectory, service: service)) {
            try await $0.call(method, params)
        }
    }

    /// Runs the `cairn` CLI against this stack.
    public func cli(_ arguments: [String]) async throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binDirectory + "/cairn")
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["CAIRN_RUN_DIR"] = runDirectory
        process.environment = environment
        process.currentDirectoryURL = URL(fileURLWithPath: Self.repositoryRoot)
        let out = directory + "/cli-\(UInt32.random(in: 0...UInt32.max))"
        _ = FileManager.default.createFile(atPath: out + ".out", contents: nil)
        _ = FileManager.default.createFile(atPath: out + ".err", contents: nil)
        process.standardOutput = FileHandle(forWritingAtPath: out + ".out")
        process.standardError = FileHandle(forWritingAtPath: out + ".err")
        try process.run()
        let status = await process.waitForExit()
        return (
            status,
            (try? String(contentsOfFile: out + ".out", encoding: .utf8)) ?? "",
            (try? String(contentsOfFile: out + ".err", encoding: .utf8)) ?? ""
        )
    }

    /// The total of `report events` for `app`, through the reporting socket.
    public func storedCount(app: String) async throws -> Int64 {
        let result = try await call("reporting", "report.events", ["app": .string(app)])
        return (result["rows"]?.arrayValue ?? []).reduce(0) { $0 + ($1["events"]?.intValue ?? 0) }
    }

    /// Polls until `app` has `expected` stored events (forwarding is asynchronous).
    public func waitForCount(app: String, _ expected: Int64, timeout: Duration = .seconds(120)) async throws -> Int64 {
        let deadline = ContinuousClock.now + timeout
        var count: Int64 = -1
        while ContinuousClock.now < deadline {
            count = (try? await storedCount(app: app)) ?? -1
            if count == expected {
                try await waitForFollowers(timeout: deadline - ContinuousClock.now)
                return count
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        return count
    }

    /// Polls until the ingest spool is empty: everything acknowledged has been committed.
    public func waitForEmptySpool(timeout: Duration = .seconds(120)) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let status = try? await call("ingest", "system.status"), status["spool_depth"] == .int(0) {
                try await waitForFollowers(timeout: deadline - ContinuousClock.now)
                return
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestStackError("the spool did not drain within \(timeout)")
    }

    /// Holds back every write to the events log (a `SHARE` lock on `events`, which reads pass)
    /// until ``resumeEventWrites(_:)``: the forwarder's batches wait in storage, as behind a
    /// stalled database, while app lookups and reports still answer.
    public func pauseEventWrites() throws -> PostgresConnection {
        let connection = try PostgresConnection(conninfo: databaseConninfo)
        try connection.execute("BEGIN")
        try connection.execute("LOCK TABLE events IN SHARE MODE")
        return connection
    }

    public func resumeEventWrites(_ connection: PostgresConnection) throws {
        try connection.execute("ROLLBACK")
    }

    /// Polls until the identity follower has folded every stored event of every app: identity
    /// state, sessions and rollups reflect everything committed.
    public func waitForFollowers(timeout: Duration = .seconds(120)) async throws {
        let deadline = ContinuousClock.now + max(timeout, .seconds(5))
        while ContinuousClock.now < deadline {
            if let result = try? await call("identity", "identity.followers"), let followers = result["followers"]?.arrayValue,
                followers.allSatisfy({ $0["lag_events"] == .int(0) })
            {
                return
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestStackError("the identity follower did not catch up within \(timeout)")
    }

    /// The ingest service's HTTP base URL, as it bound it.
    public func httpURL() async throws -> String {
        let status = try await call("ingest", "system.status")
        guard let address = status["http_address"]?.stringValue else {
            throw TestStackError("ingest reports no HTTP address: \(status.serializedString())")
        }
        return "http://" + address
    }

    /// The reporting service's HTTP base URL (report API and console), as it bound it.
    public func consoleURL() async throws -> String {
        let status = try await call("reporting", "system.status")
        guard let address = status["http_address"]?.stringValue else {
            throw TestStackError("reporting reports no HTTP address: \(status.serializedString())")
        }
        return "http://" + address
    }

    /// The supervisor's metrics address (the whole stack's scrape target), as it bound it.
    public func metricsURL() async throws -> String {
        let status = try await call("supervisor", "supervisor.status")
        guard let address = status["metrics_address"]?.stringValue else {
            throw TestStackError("the supervisor reports no metrics address: \(status.serializedString())")
        }
        return "http://" + address + "/metrics"
    }

    public func servicePID(_ name: String) async throws -> pid_t? {
        let status = try await call("supervisor", "supervisor.status")
        let entry = status["services"]?.arrayValue?.first { $0["name"]?.stringValue == name }
        return entry?["pid"]?.intValue.map { pid_t($0) }
    }

    /// Polls until the supervisor has exited on its own, or `limit` has passed.
    public func waitForSupervisorExit(within limit: Duration) async throws {
        let deadline = ContinuousClock.now + limit
        while supervisor.isRunning, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
    }

    /// Stops the stack with SIGTERM and returns the supervisor's exit status.
    @discardableResult
    public func stop(removingFiles: Bool = true) async throws -> Int32 {
        if supervisor.isRunning {
            kill(supervisor.processIdentifier, SIGTERM)
            let deadline = ContinuousClock.now + .seconds(60)
            while supervisor.isRunning, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
            if supervisor.isRunning {
                kill(supervisor.processIdentifier, SIGKILL)
                throw TestStackError("the supervisor did not stop within 60 s:\n\(log)")
            }
        }
        let status = supervisor.terminationStatus
        if removingFiles { try? FileManager.default.removeItem(atPath: directory) }
        return status
    }
}

public struct TestStackError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Deterministic Userpilot-schema events for load: `count` tracks over `users` users.
public func writeGeneratedEvents(count: Int, to path: String, app: String) throws {
    var text = ""
    text.reserveCapacity(count * 200)
    for n in 0..<count {
        let second = n % 60
        let minute = (n / 60) % 60
        let hour = (n / 3600) % 24
        let day = 1 + (n / 86_400) % 28
        let time = String(format: "2024-05-%02dT%02d:%02d:%02d.%06dZ", day, hour, minute, second, n % 1_000_000)
        text += #"{"event_type":"track","event_name":"Load \#(n % 7)","user_id":"user-\#(n % 997)","inserted_at":"\#(time)","metadata":{"n":\#(n)}}"#
        text += "\n"
    }
    try text.write(toFile: path, atomically: true, encoding: .utf8)
}
