import CairnCore
import CairnReporting
import CairnService
import CairnWire
import Foundation
import Hummingbird
import Logging
import NIOCore
import Synchronization

/// The reporting service with its HTTP side: the RPC methods of ``ReportingService``, plus the
/// report API and the web console on `CAIRN_CONSOLE_ADDR`, else the stack file's
/// `settings.http_address` for `reporting`, else `127.0.0.1:8090`.
public enum ConsoleService {
    public static let defaultAddress = ListenAddress(host: "127.0.0.1", port: 8090)

    public static func setup(_ context: ServiceContext) async throws -> ServiceParts {
        let (reporting, runner) = try await ReportingService.setup(context)
        let address = try ListenAddress(
            variable: "CAIRN_CONSOLE_ADDR",
            environment: ProcessInfo.processInfo.environment,
            settings: try context.environment.settings(),
            fallback: defaultAddress
        )
        let keys = ReadKeys(runner: runner, sessions: try SessionSigner.load(directory: context.environment.dataDirectory + "/console"))
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: HTTPMetrics())
        router.add(middleware: JSONErrors())
        let limiter = ReportLimiter()
        ReportAPI(runner: runner, keys: keys, limiter: limiter).register(on: router)
        func client(_ service: String) -> ReconnectingClient {
            ReconnectingClient(socketPath: context.environment.socketPath(of: service), maximumFrameSize: context.environment.maximumFrameSize)
        }
        let services = ServiceClients(
            supervisor: client("supervisor"),
            ingest: client("ingest"),
            identity: client("identity"),
            export: client("export")
        )
        try await Console.load(runner: runner, keys: keys, limiter: limiter, services: services).register(on: router)
        router.get("/health") { _, _ -> Response in ReportAPI.json(["status": "ok"]) }

        let boundAddress = Mutex<String?>(nil)
        let logger = context.logger
        let server = Application(
            router: router,
            // A connection that sends nothing (half a request's headers, say) is closed after 30 s; a
            // response under way, such as a live tail, is not idle.
            server: .http1(configuration: .init(idleTimeout: .seconds(30))),
            configuration: ApplicationConfiguration(address: .hostname(address.host, port: address.port), serverName: "cairn"),
            onServerRunning: { channel in
                let bound = channel.localAddress.map { "\($0.ipAddress ?? address.host):\($0.port ?? address.port)" }
                boundAddress.withLock { $0 = bound }
                logger.info("report API and console listening", metadata: ["http.address": "\(bound ?? "?")"])
            },
            logger: Logger(label: "cairn-reporting.http")
        )
        var parts = reporting
        parts.background.append(HTTPListener(server: server, address: address, variable: "CAIRN_CONSOLE_ADDR", service: "reporting"))
        let databaseProblem = reporting.healthProblem
        parts.healthProblem = {
            if let problem = await databaseProblem() { return problem }
            return boundAddress.withLock { $0 } == nil ? "the HTTP listener on \(address) is not up yet" : nil
        }
        parts.statusDetails = { ["http_address": .optional(boundAddress.withLock { $0 })] }
        return parts
    }
}
