import CairnCore
import CairnMethods
import CairnMetrics
import CairnPostgres
import CairnService
import CairnWire
import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Brings the stack up and keeps it up: the database (its own PostgreSQL cluster when
/// `CAIRN_DATABASE_URL` is unset), then each service in dependency order, each waited on
/// until `system.health` answers ok; restarts crashed children with exponential backoff;
/// and on graceful shutdown stops them in reverse order, SIGTERM then SIGKILL after the
/// stack's deadline.
public final class StackRunner: Service, Sendable {
    /// The embedded server's settings beyond PostgreSQL's defaults: the rollup triggers probe
    /// several indexes per event, and the default 128 MB of shared buffers cannot keep the
    /// event and rollup indexes of a million events warm.
    static let embeddedSettings = ["shared_buffers": "256MB"]

    let stack: StackFile
    let environment: ServiceEnvironment
    let binDirectory: String
    let logger: Logger
    private let state = Mutex(State())
    /// A service that ran this long before exiting is restarted with the initial backoff again.
    static let stableAfter: Duration = .seconds(30)
    /// A service that exits this many times in a row without running ``stableAfter`` is
    /// flapping: `cairn status` says so until it stays up.
    static let flappingAfter = 3
    private let registry: ChildRegistry

    struct State: Sendable {
        var phase = StackPhase.starting
        var databaseURL: String?
        var children: [String: SupervisedChild] = [:]

        /// The child named `name`, created in its starting state on first use.
        subscript(child name: String) -> SupervisedChild {
            get { children[name] ?? SupervisedChild(flappingAfter: StackRunner.flappingAfter, stableAfter: StackRunner.stableAfter) }
            set { children[name] = newValue }
        }
    }

    public init(stack: StackFile, environment: ServiceEnvironment, binDirectory: String, logger: Logger) {
        self.stack = stack
        self.environment = environment
        self.binDirectory = binDirectory
        self.logger = logger
        registry = ChildRegistry(runDirectory: environment.runDirectory)
    }

    public func run() async throws {
        await registry.stopLeftovers(deadline: stack.shutdownTimeout, logger: logger)
        try await withThrowingDiscardingTaskGroup { group in
            do {
                let databaseURL = try await startDatabase(in: &group)
                state.withLock { $0.databaseURL = databaseURL }
                for entry in stack.services {
                    let command = [try executablePath(entry.executable)] + entry.arguments
                    var childEnvironment = baseEnvironment(databaseURL: databaseURL)
                    childEnvironment.merge(entry.environment) { _, new in new }
                    if let settings = entry.settings { childEnvironment[ServiceEnvironment.settingsVariable] = settings.serializedString() }
                    childEnvironment[ServiceEnvironment.instanceNameVariable] = entry.name
                    let finalEnvironment = childEnvironment
                    group.addTask {
                        await self.supervise(
                            name: entry.name,
                            command: command,
                            environment: finalEnvironment,
                            policy: entry.restart,
                            signal: SIGTERM
                        )
                    }
                    try await waitUntilHealthy(entry.name)
                }
                state.withLock { $0.phase = .running }
                logger.info(
                    "stack is up",
                    metadata: [
                        "stack": "\(stack.name)", "services": "\(stack.services.map(\.name).joined(separator: ","))",
                        "run.dir": "\(environment.runDirectory)",
                    ]
                )
                try? await gracefulShutdown()
            } catch is CancellationError where Task.isShuttingDownGracefully {
                logger.info("start-up interrupted by shutdown")
            } catch {
                // The host logs the error once as it exits; here we only clean up.
                await stopAll()
                throw error
            }
            await stopAll()
        }
        logger.info("stack stopped")
    }

    // MARK: - Database

    private func startDatabase(in group: inout ThrowingDiscardingTaskGroup<any Error>) async throws -> String {
        if let url = environment.databaseURL {
            do {
                _ = try await NIOThreadPool.singleton.runIfActive { try PostgresConnection(conninfo: url) }
            } catch let error as PostgresError {
                throw SupervisorError(.database, "CAIRN_DATABASE_URL is set but PostgreSQL is unreachable: \(error.message)")
            }
            logger.info("using external PostgreSQL", metadata: ["database": "\(PostgresConfiguration.redacted(url))"])
            return url
        }
        let cluster = try EmbeddedPostgres(baseDirectory: environment.dataDirectory + "/postgres", settings: Self.embeddedSettings)
        logger.info(
            "starting the embedded PostgreSQL",
            metadata: ["cluster": "\(cluster.clusterDirectory)", "os.user": "\(cluster.account?.name ?? "(current)")"]
        )
        try await NIOThreadPool.singleton.runIfActive { try cluster.prepare() }
        let command = try cluster.serverCommand(stopsWithParent: true)
        var postgresEnvironment = ProcessInfo.processInfo.environment
        postgresEnvironment["LC_ALL"] = "C"
        let finalEnvironment = postgresEnvironment
        group.addTask { await self.supervise(name: "postgres", command: command, environment: finalEnvironment, policy: .always, signal: SIGINT) }
        do {
            let deadline = ContinuousClock.now + .seconds(60)
            while try await !NIOThreadPool.singleton.runIfActive({ cluster.isReady() }) {
                guard !Task.isShuttingDownGracefully else { throw CancellationError() }
                guard ContinuousClock.now < deadline else { throw SupervisorError(.database, "no connection within 60 seconds") }
                try await Task.sleep(for: .milliseconds(100))
            }
            try await NIOThreadPool.singleton.runIfActive { try cluster.createDatabase("cairn") }
        } catch let error as CancellationError {
            throw error
        } catch {
            let output = state.withLock { $0.children["postgres"]?.recentOutput.joined(separator: "\n") ?? "" }
            throw SupervisorError(.database, "the embedded PostgreSQL did not start: \(error)\n\(output)")
        }
        return cluster.conninfo(database: "cairn")
    }

    // MARK: - Children

    private func baseEnvironment(databaseURL: String) -> [String: String] {
        var values = ProcessInfo.processInfo.environment
        values["CAIRN_DATA_DIR"] = environment.dataDirectory
        values["CAIRN_RUN_DIR"] = environment.runDirectory
        values["CAIRN_DATABASE_URL"] = databaseURL
        values["CAIRN_SUPERVISOR_PID"] = String(getpid())
        values["CAIRN_MAX_FRAME_BYTES"] = String(environment.maximumFrameSize)
        // Settings belong to one service each; none leak in from the supervisor's own environment.
        values.removeValue(forKey: ServiceEnvironment.settingsVariable)
        values.removeValue(forKey: ServiceEnvironment.instanceNameVariable)
        return values
    }

    private func executablePath(_ executable: String) throws(SupervisorError) -> String {
        let path = executable.contains("/") ? executable : binDirectory + "/" + executable
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw SupervisorError(.spawnFailed, "cannot find the executable \(path); build with `swift build` first")
        }
        return path
    }

    /// Runs one child until the stack stops, restarting it per `policy` with backoff.
    private func supervise(name: String, command: [String], environment: [String: String], policy: StackFile.RestartPolicy, signal: Int32) async {
        var backoff = stack.initialBackoff
        while true {
            if state.withLock({ $0.phase == .stopping }) { return }
            let process: ChildProcess
            do {
                process = try ChildProcess(name: name, arguments: command, environment: environment) { [weak self] line in
                    self?.forward(line, from: name)
                }
            } catch {
                logger.error("cannot start service", metadata: ["service": "\(name)", "error": "\(error)"])
                state.withLock { $0[child: name].failedToStart("\(error)") }
                return
            }
            // Zero until the first restart, so that the series exists from the start.
            CairnMetric.serviceRestarts.increment(by: 0, name)
            let running = state.withLock { state -> [(name: String, pid: pid_t, signal: Int32)] in
                state[child: name].started(process, at: .now, stopSignal: signal)
                return state.children.compactMap { name, child in
                    child.runningProcess.map { (name, $0.pid, child.stopSignal) }
                }
            }
            // /proc is read outside the lock.
            registry.write(
                running.sorted { $0.name < $1.name }.compactMap { child in
                    ChildRegistry.startTime(of: child.pid).map {
                        ChildRegistry.Record(name: child.name, pid: child.pid, startTime: $0, stopSignal: child.signal)
                    }
                }
            )
            let termination = await process.waitForExit()
            let (next, restarts, stackStopping) = state.withLock { state in
                let stackStopping = state.phase == .stopping
                let next = state[child: name].exited(termination, at: .now, stackStopping: stackStopping, policy: policy)
                return (next, state[child: name].restarts, stackStopping)
            }
            guard case .restart(let stableRun, let flapping) = next else {
                if !stackStopping {
                    logger.warning("service exited and will not be restarted", metadata: ["service": "\(name)", "exit": "\(termination)"])
                }
                return
            }
            if stableRun { backoff = stack.initialBackoff }
            CairnMetric.serviceRestarts.increment(name)
            // Why it stopped, every time: the exit status or the signal.
            logger.warning(
                flapping ? "service keeps exiting (flapping); restarting with backoff" : "service exited unexpectedly; restarting",
                metadata: [
                    "service": "\(name)", "exit": "\(termination)", "restart.in": "\(backoff)", "restarts": "\(restarts)",
                ]
            )
            let deadline = ContinuousClock.now + backoff
            while ContinuousClock.now < deadline {
                if state.withLock({ $0.phase == .stopping }) { return }
                try? await Task.sleep(for: .milliseconds(50))
            }
            backoff = min(backoff * 2, stack.maximumBackoff)
        }
    }

    private func forward(_ line: String, from name: String) {
        state.withLock { state in
            var lines = state.children[name]?.recentOutput ?? []
            lines.append(line)
            if lines.count > 8 { lines.removeFirst(lines.count - 8) }
            state.children[name]?.recentOutput = lines
        }
        let padded = name.padding(toLength: 9, withPad: " ", startingAt: 0)
        FileHandle.standardError.write(Data("\(padded)| \(line)\n".utf8))
    }

    private func waitUntilHealthy(_ name: String) async throws {
        let socket = environment.socketPath(of: name)
        let clock = ContinuousClock()
        let deadline = clock.now + stack.healthTimeout
        var reason = "no answer on \(socket)"
        while clock.now < deadline {
            guard !Task.isShuttingDownGracefully else { throw CancellationError() }
            do {
                let health = try await RPCClient.withConnection(socketPath: socket) { try await $0.call(SystemHealth.self, NoParams()) }
                if health["status"]?.stringValue == "ok" {
                    logger.info("service is healthy", metadata: ["service": "\(name)"])
                    return
                }
                reason = health["reason"]?.stringValue ?? "unhealthy"
            } catch {
                if let exit = state.withLock({ $0.children[name]?.lastExit }) {
                    reason = "it exited (\(exit)): " + (state.withLock { $0.children[name]?.recentOutput.last } ?? "")
                    // A refused configuration stays refused: say so now instead of at the deadline.
                    if exit == .exited(ServiceExit.configuration) {
                        throw SupervisorError(.invalidStack, "service '\(name)' refused its configuration: \(reason)")
                    }
                }
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw SupervisorError(.unhealthy, "service '\(name)' did not become healthy within \(stack.healthTimeout): \(reason)")
    }

    /// Stops every child, services in reverse dependency order and the database last.
    private func stopAll() async {
        state.withLock { $0.phase = .stopping }
        for entry in stack.services.reversed() {
            await stop(entry.name, signal: SIGTERM)
        }
        await stop("postgres", signal: SIGINT)
        registry.write([])
    }

    private func stop(_ name: String, signal: Int32) async {
        guard let process = state.withLock({ $0.children[name]?.runningProcess }) else { return }
        logger.info("stopping service", metadata: ["service": "\(name)", "pid": "\(process.pid)"])
        process.send(signal)
        if await waitForExit(name, within: stack.shutdownTimeout) { return }
        logger.warning("service did not stop in time; killing it", metadata: ["service": "\(name)", "deadline": "\(stack.shutdownTimeout)"])
        process.send(SIGKILL)
        _ = await waitForExit(name, within: .seconds(5))
    }

    private func waitForExit(_ name: String, within timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if state.withLock({ !($0.children[name]?.isRunning ?? false) }) { return true }
            try? await Task.sleep(for: .milliseconds(25))
        }
        return false
    }

    // MARK: - Status

    /// `supervisor.status`: every child's supervision state plus its own `system.status`.
    public func status() async -> JSON {
        let (phase, children) = state.withLock { ($0.phase, $0.children) }
        let executables = Dictionary(stack.services.map { ($0.name, $0.executable) }, uniquingKeysWith: { first, _ in first })
        let names = (children["postgres"] != nil ? ["postgres"] : []) + stack.services.map(\.name)
        var rows: [JSON] = []
        let now = ContinuousClock.now
        for name in names {
            let child = children[name] ?? SupervisedChild(flappingAfter: Self.flappingAfter, stableAfter: Self.stableAfter)
            var row: JSONObject = [
                "name": .string(name), "executable": .optional(executables[name]), "state": .string(child.statusName(at: now)),
                "pid": child.runningProcess.map { .int(Int64($0.pid)) } ?? .null,
                "restarts": .int(Int64(child.restarts)),
                "uptime_s": child.uptime(at: now).map(JSON.int) ?? .null,
                "last_exit": .optional(child.lastExit?.description),
            ]
            if name != "postgres", child.isRunning {
                do {
                    // A stopped or wedged service must not hang everyone's `cairn status`.
                    row["status"] = try await RPCClient.withConnection(socketPath: environment.socketPath(of: name)) {
                        try await $0.call(SystemStatus.self, NoParams())
                    }
                } catch {
                    row["status"] = ["health": "unreachable", "reason": .string("\(error)")]
                }
            }
            rows.append(.object(row))
        }
        return ["stack": .string(stack.name), "phase": .string(phase.rawValue), "supervisor_pid": .int(Int64(getpid())), "services": .array(rows)]
    }

    // MARK: - Metrics

    /// The whole stack's metrics: every running service's (`system.metrics`, asked side by side
    /// with the method's deadline) and the supervisor's own, one family each.
    public func metrics() async -> String {
        let children = state.withLock { $0.children }
        let names = (children["postgres"] != nil ? ["postgres"] : []) + stack.services.map(\.name)
        let texts = await withTaskGroup(of: (String, String?).self) { group in
            for name in names where name != "postgres" && children[name]?.isRunning == true {
                let socket = environment.socketPath(of: name)
                group.addTask {
                    let text = try? await RPCClient.withConnection(socketPath: socket) { try await $0.call(SystemMetrics.self, NoParams()).text }
                    return (name, text)
                }
            }
            var texts: [String: String] = [:]
            for await (name, text) in group {
                CairnMetric.scrapeFailures.increment(by: text == nil ? 1 : 0, name)
                if let text { texts[name] = text }
            }
            return texts
        }
        for name in names {
            let up = name == "postgres" ? children[name]?.isRunning == true : texts[name] != nil
            CairnMetric.serviceUp.set(up ? 1 : 0, name)
        }
        return MetricsExposition.merge([MetricsRegistry.exposition()] + names.compactMap { texts[$0] })
    }

    /// nil once every service is up, else what the stack is doing.
    public var healthProblem: String? {
        let phase = state.withLock { $0.phase }
        return phase == .running ? nil : "stack is \(phase.rawValue)"
    }
}
