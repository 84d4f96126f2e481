import CairnCore
import CairnMethods
import CairnMetrics
import CairnWire
import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import UnixSignals

/// The parts a service contributes to its process: RPC methods, background work, and a
/// health check.
public struct ServiceParts: Sendable {
    public var router: RPCRouter
    /// Long-running work beside the socket server (e.g. ingest's forwarder).
    public var background: [any Service]
    /// Answers `system.health`: nil when healthy, else the reason it is not.
    public var healthProblem: @Sendable () async -> String?
    /// Extra fields for `system.status`.
    public var statusDetails: @Sendable () async -> JSONObject
    /// Why a service that answers is not doing all its work (ingest accepting while its
    /// forwarding fails), or nil: `system.status` then says `degraded` with this reason.
    /// `system.health` stays ok, so the supervisor does not restart a service for it.
    public var degradation: @Sendable () async -> String?
    /// Sets the gauges that are read rather than counted (a spool's depth, a follower's lag)
    /// just before `system.metrics` renders them.
    public var refreshMetrics: @Sendable () async -> Void

    public init(
        router: RPCRouter,
        background: [any Service] = [],
        healthProblem: @escaping @Sendable () async -> String? = { nil },
        statusDetails: @escaping @Sendable () async -> JSONObject = { JSONObject() },
        degradation: @escaping @Sendable () async -> String? = { nil },
        refreshMetrics: @escaping @Sendable () async -> Void = {}
    ) {
        self.router = router
        self.background = background
        self.healthProblem = healthProblem
        self.statusDetails = statusDetails
        self.degradation = degradation
        self.refreshMetrics = refreshMetrics
    }
}

/// What a service's setup receives.
public struct ServiceContext: Sendable {
    /// The instance's name (`CAIRN_SERVICE_NAME`, else the executable's kind): it names the
    /// socket, and anything else one instance must not share with another.
    public let name: String
    /// What the executable is: `ingest`, `storage`, …
    public let kind: String
    public let environment: ServiceEnvironment
    public let logger: Logger
    public let counters: Counters

    /// The database URL, for services that need one; the supervisor always provides it.
    public func requireDatabaseURL() throws -> String {
        guard let url = environment.databaseURL else {
            throw ServiceError(.configuration, "CAIRN_DATABASE_URL is not set; start Cairn with cairn-supervisor, which provides one")
        }
        return url
    }
}

/// Runs one Cairn service process: logging, the 0700 run directory, the RPC socket with
/// `system.health` and `system.status`, background services, a watch on the supervisor,
/// and graceful shutdown on SIGTERM or SIGINT.
///
/// Each executable's `main` is one call to ``run(name:setup:)``.
public enum ServiceHost {
    public static let version = CairnVersion.current

    public static func run(name kind: String, setup: @Sendable (ServiceContext) async throws -> ServiceParts) async -> Never {
        let environment = ServiceEnvironment.fromProcessEnvironment()
        let name = environment.instanceName ?? kind
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = ProcessInfo.processInfo.environment["LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0.lowercased()) } ?? .info
            return handler
        }
        let logger = Logger(label: "cairn-\(name)")
        MetricsRegistry.bootstrap(service: name)
        // Sockets and spool files are private to the owner (0600 in a 0700 directory).
        umask(0o077)
        signal(SIGPIPE, SIG_IGN)
        do {
            try RunDirectory.prepare(environment.runDirectory)
            let counters = Counters()
            let context = ServiceContext(name: name, kind: kind, environment: environment, logger: logger, counters: counters)
            let parts = try await setup(context)
            let started = ContinuousClock.now
            let startedAt = Timestamp.now()
            var router = parts.router
            router.observer = { method, errorCode, duration in
                CairnMetric.rpcRequests.increment(method ?? "unknown", errorCode ?? "ok")
                CairnMetric.rpcDuration.record(duration, method ?? "unknown")
            }
            router.register(SystemMetrics.self) { _ in
                await parts.refreshMetrics()
                return SystemMetrics.Result(text: MetricsRegistry.exposition())
            }
            router.register(SystemHealth.self) { _ in
                if let problem = await parts.healthProblem() {
                    return ["status": "unavailable", "service": .string(name), "reason": .string(problem)]
                }
                return ["status": "ok", "service": .string(name)]
            }
            router.register(SystemStatus.self) { _ in
                var status: JSONObject = [
                    "service": .string(name), "version": .string(version), "pid": .int(Int64(getpid())),
                    "started_at": .string(startedAt.description),
                    "uptime_s": .double(Double((ContinuousClock.now - started).components.seconds)),
                ]
                if let problem = await parts.healthProblem() {
                    status["health"] = "unavailable"
                    status["reason"] = .string(problem)
                } else if let problem = await parts.degradation() {
                    status["health"] = "degraded"
                    status["reason"] = .string(problem)
                } else {
                    status["health"] = "ok"
                }
                status["counters"] = counters.json
                for (key, value) in await parts.statusDetails() { status[key] = value }
                return .object(status)
            }
            let server = RPCServer(
                socketPath: environment.socketPath(of: name),
                router: router,
                maximumFrameSize: environment.maximumFrameSize,
                logger: logger
            )
            var services: [ServiceGroupConfiguration.ServiceConfiguration] = parts.background.map {
                // A background job that finishes (a migration) is done, not a failure.
                .init(service: $0, successTerminationBehavior: .ignore)
            }
            services.append(.init(service: server))
            if let supervisorPID = environment.supervisorPID {
                services.append(
                    .init(
                        service: SupervisorWatch(supervisorPID: supervisorPID, logger: logger),
                        successTerminationBehavior: .gracefullyShutdownGroup
                    )
                )
            }
            var configuration = ServiceGroupConfiguration(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
            configuration.maximumGracefulShutdownDuration = .seconds(20)
            let group = ServiceGroup(configuration: configuration)
            logger.info("started", metadata: ["service": "\(name)", "version": "\(version)", "pid": "\(getpid())"])
            try await group.run()
            logger.info("stopped", metadata: ["service": "\(name)"])
            exit(0)
        } catch {
            // One clear line, not a stack trace (the supervisor shows it with the service prefix).
            logger.critical("cannot run", metadata: ["service": "\(name)", "error": "\(error)"])
            exit(ServiceExit.status(for: error))
        }
    }
}

/// Shuts the service down when the supervisor that started it dies, so that children are
/// never orphaned.
struct SupervisorWatch: Service {
    let supervisorPID: Int32
    let logger: Logger

    func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            if getppid() != supervisorPID {
                logger.warning("supervisor is gone, shutting down", metadata: ["supervisor.pid": "\(supervisorPID)"])
                return
            }
            try? await Task.sleep(for: .milliseconds(500))
        }
    }
}

/// Cairn's version, reported in `system.status` and the CLI.
public enum CairnVersion {
    public static let current = "0.1.0"
}

/// How a service's exit status tells the supervisor why it stopped.
public enum ServiceExit {
    /// `EX_CONFIG` (sysexits.h): the service refused its configuration. Restarting it cannot
    /// help, so the supervisor stops the start-up at once and shows the reason.
    public static let configuration: Int32 = 78

    /// Configuration errors (`configuration`, `invalid_destination`, an address another
    /// process holds, an unsafe socket directory) exit with ``configuration``; anything else
    /// with 1, which the supervisor retries.
    public static func status(for error: any Error) -> Int32 {
        if let error = error as? IOError, error.errnoCode == EADDRINUSE { return configuration }
        if let error = error as? WireError, error.code == .runDirectory { return configuration }
        guard let code = RPCError(converting: error)?.applicationCode else { return 1 }
        return [ErrorCode.configuration, .invalidDestination].contains(code) ? configuration : 1
    }
}
