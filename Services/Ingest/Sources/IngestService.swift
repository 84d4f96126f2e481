import CairnCore
import CairnMethods
import CairnService
import CairnWire
import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization

/// The ingest service: validates, normalises and spools events, acknowledging only once
/// they are durable, then forwards them downstream.
///
/// Methods: `ingest.submit` and `ingest.deadletters.replay` (see ``Ingestor``), and
/// `ingest.deadletters.list {app?, limit?}`. Beside the socket, an HTTP listener
/// (``HTTPIngest``) on `CAIRN_HTTP_ADDR`, else the stack file's `settings.http_address`,
/// else `127.0.0.1:8088`.
///
/// Several instances may run in one stack (README, "Scale"): each has its own socket, spool
/// and HTTP address, and all of them forward to the one storage service.
public enum IngestService {
    public static func setup(_ context: ServiceContext) async throws -> ServiceParts {
        let spoolDirectory = context.environment.dataDirectory + "/spool"
        try FileManager.default.createDirectory(atPath: spoolDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        // Each instance has its own spool: `ingest` keeps `ingest.sqlite`, `ingest-2` gets its own.
        let spool = try Spool(path: spoolDirectory + "/\(context.name).sqlite")
        // Writes go on a connection of their own, so that an app lookup never waits behind a batch.
        let storageWrites = ReconnectingClient(
            socketPath: context.environment.socketPath(of: "storage"),
            maximumFrameSize: context.environment.maximumFrameSize
        )
        let storage = ReconnectingClient(
            socketPath: context.environment.socketPath(of: "storage"),
            maximumFrameSize: context.environment.maximumFrameSize
        )
        let settings = try IngestSettings(context.environment.settings(), environment: ProcessInfo.processInfo.environment)
        let apps = AppDirectory(storage: storage, spool: spool)
        let ingestor = Ingestor(
            spool: spool,
            apps: apps,
            counters: context.counters,
            suppressions: Suppressions(try spool.suppressedKeys()),
            highWaterMark: settings.highWaterMark
        )
        let forwarding = ForwardingHealth()
        let ageLimit = settings.spoolAgeLimit
        // Why acknowledged events are not reaching storage, or nil: for `cairn status` and `/metrics`.
        let stuck: @Sendable () async -> String? = {
            let oldest = try? await NIOThreadPool.singleton.runIfActive { try spool.oldestReceivedAt() }
            return forwarding.problem(oldestSpooled: oldest ?? nil, now: .now(), ageLimit: ageLimit)
        }
        let http = HTTPIngest(
            ingestor: ingestor,
            degradation: stuck,
            bodyTimeout: settings.connections.bodyTimeout,
            metricsAccess: MetricsAccess(token: settings.metricsToken)
        )
        let clients = ClientConnections(maximumPerClient: settings.connections.maximumConnectionsPerClient)
        let idleTimeout = TimeAmount.nanoseconds(Int64(settings.connections.idleTimeout.components.seconds) * 1_000_000_000)
        let boundAddress = Mutex<String?>(nil)
        let logger = context.logger
        let server = Application(
            responder: CallbackResponder<IngestRequestContext> { request, context in await http.respond(to: request, peer: context.remoteAddress) },
            server: .http1(configuration: .init(additionalChannelHandlers: [PerClientConnectionLimit(clients)], idleTimeout: idleTimeout)),
            configuration: ApplicationConfiguration(
                address: .hostname(settings.host, port: settings.port),
                serverName: "cairn",
                availableConnectionsDelegate: MaximumAvailableConnections(settings.connections.maximumConnections)
            ),
            onServerRunning: { channel in
                let address = channel.localAddress.map { "\($0.ipAddress ?? settings.host):\($0.port ?? settings.port)" }
                boundAddress.withLock { $0 = address }
                logger.info("HTTP ingest listening", metadata: ["http.address": "\(address ?? "?")"])
            },
            logger: Logger(label: "cairn-ingest.http")
        )
        let forwarder = Forwarder(spool: spool, storage: storageWrites, counters: context.counters, logger: context.logger, health: forwarding)

        var router = RPCRouter()
        router.register(IngestSubmit.self) { params in try await ingestor.submit(params) }
        router.register(IngestDeadLettersList.self) { params in
            let app = params.app
            let limit = params.limit ?? 100
            // Large letters are read by their first bytes only: a listing shows no more of them.
            let rows = try await NIOThreadPool.singleton.runIfActive {
                try spool.deadLetters(
                    app: app,
                    limit: max(1, min(limit, 10_000)),
                    shortenOver: Spool.StoredDeadLetter.previewOver,
                    shortenTo: Spool.StoredDeadLetter.previewBytes + 4
                )
            }
            let listing = Spool.StoredDeadLetter.listing(rows)
            return ["rows": .array(listing.rows), "complete": .bool(listing.complete)]
        }
        router.register(IngestDeadLettersReplay.self) { params in try await ingestor.replay(params) }
        router.register(IngestSuppress.self) { params in try await ingestor.suppress(params) }
        router.register(IngestAppsRefresh.self) { params in
            let fresh = try await apps.refresh(params.app)
            return ["app": .string(fresh.name), "token": .string(fresh.token), "attributes": .int(Int64(fresh.attributes.types.count))]
        }
        return ServiceParts(
            router: router,
            background: [forwarder, HTTPListener(server: server, address: settings.address, variable: "CAIRN_HTTP_ADDR", service: "ingest")],
            healthProblem: {
                if let problem = spool.problem { return problem }
                return boundAddress.withLock { $0 } == nil ? "the HTTP listener on \(settings.host):\(settings.port) is not up yet" : nil
            },
            statusDetails: {
                let depth = (try? await NIOThreadPool.singleton.runIfActive { try spool.depth() }) ?? -1
                let dead = (try? await NIOThreadPool.singleton.runIfActive { try spool.deadLetterCount() }) ?? -1
                return ["spool_depth": .int(depth), "dead_letters": .int(dead), "http_address": .optional(boundAddress.withLock { $0 })]
            },
            degradation: stuck,
            refreshMetrics: { await http.gauges.refresh() }
        )
    }
}

/// The ingest service's settings: the stack file's `settings`, overridden by the environment.
struct IngestSettings {
    var address = ListenAddress(host: "127.0.0.1", port: 8088)
    var host: String { address.host }
    var port: Int { address.port }
    /// Spooled events from which requests are refused (`overloaded`; HTTP `429`). Defaults to 1,000,000.
    var highWaterMark: Int64 = 1_000_000
    /// How old the spool's oldest event may grow before ingest reports itself degraded. Defaults to 300 s.
    var spoolAgeLimit: Duration = .seconds(300)
    /// The HTTP listener's bounds (``ConnectionLimits``).
    var connections = ConnectionLimits()
    /// The bearer token `/metrics` asks for; without one it answers loopback clients only.
    var metricsToken: String?

    init(_ settings: JSONObject, environment: [String: String]) throws(IngestError) {
        do {
            address = try ListenAddress(variable: "CAIRN_HTTP_ADDR", environment: environment, settings: settings, fallback: address)
        } catch {
            throw IngestError(.configuration, error.reason)
        }
        if let mark = environment["CAIRN_SPOOL_HIGH_WATER_MARK"].flatMap({ Int64($0) }) ?? settings["spool_high_water_mark"]?.intValue {
            guard mark > 0 else { throw IngestError(.configuration, "the spool high-water mark must be positive") }
            highWaterMark = mark
        }
        func positive(_ key: String) throws(IngestError) -> Int64? {
            guard let value = settings[key]?.intValue else { return nil }
            guard value > 0 else { throw IngestError(.configuration, "settings.\(key) must be positive") }
            return value
        }
        metricsToken = environment["CAIRN_METRICS_TOKEN"].flatMap { $0.isEmpty ? nil : $0 } ?? settings["metrics_token"]?.stringValue
        if let seconds = try positive("spool_age_limit_s") { spoolAgeLimit = .seconds(seconds) }
        if let count = try positive("max_connections") { connections.maximumConnections = Int(count) }
        if let count = try positive("max_connections_per_client") { connections.maximumConnectionsPerClient = Int(count) }
        if let seconds = try positive("idle_timeout_s") { connections.idleTimeout = .seconds(seconds) }
        if let seconds = try positive("body_timeout_s") { connections.bodyTimeout = .seconds(seconds) }
    }
}

/// A request's context with the client's address, which `/metrics` checks.
struct IngestRequestContext: RequestContext, RemoteAddressRequestContext {
    var coreContext: CoreRequestContextStorage
    let remoteAddress: SocketAddress?

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }
}
