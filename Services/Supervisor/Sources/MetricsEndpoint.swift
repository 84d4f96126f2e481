import CairnCore
import CairnService
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Synchronization

/// The stack's one scrape address: `GET /metrics` on `CAIRN_METRICS_ADDR` (default
/// `127.0.0.1:9464`), served by the supervisor. Each scrape asks every running service for its
/// metrics over its socket (`system.metrics`) and joins them with the supervisor's own
/// (`cairn_service_up`, `cairn_service_restarts_total`), so one target covers every process,
/// including a service that is down or restarting, which only the supervisor can report.
enum MetricsEndpoint {
    static let defaultAddress = ListenAddress(host: "127.0.0.1", port: 9464)

    /// The listener to run, and the address it bound once it runs.
    static func listener(
        runner: StackRunner,
        address: ListenAddress,
        access: MetricsAccess,
        logger: Logger
    ) -> (listener: HTTPListener<Application<RouterResponder<MetricsRequestContext>>>, bound: @Sendable () -> String?) {
        let bound = Mutex<String?>(nil)
        let router = Router(context: MetricsRequestContext.self)
        router.get("/metrics") { request, context -> Response in
            if let denial = access.denial(authorization: request.headers[.authorization], peer: context.remoteAddress) {
                var headers: HTTPFields = [.contentType: "application/json"]
                if denial.status == 401 { headers[.wwwAuthenticate] = "Bearer" }
                let body: JSON = ["code": .string(denial.code.rawValue), "message": .string(denial.message)]
                return Response(
                    status: HTTPResponse.Status(code: denial.status),
                    headers: headers,
                    body: ResponseBody(byteBuffer: ByteBuffer(bytes: body.serialized()))
                )
            }
            let text = await runner.metrics()
            return Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: text))
            )
        }
        // Any other method: 405 naming GET, as ingest answers.
        for method in [HTTPRequest.Method.post, .put, .delete, .patch, .head] {
            router.on("/metrics", method: method) { _, _ -> Response in
                let body: JSON = ["code": "method_not_allowed", "message": "use GET"]
                return Response(
                    status: .methodNotAllowed,
                    headers: [.contentType: "application/json", .allow: "GET"],
                    body: ResponseBody(byteBuffer: ByteBuffer(bytes: body.serialized()))
                )
            }
        }
        let application = Application(
            router: router,
            server: .http1(configuration: .init(idleTimeout: .seconds(30))),
            configuration: ApplicationConfiguration(address: .hostname(address.host, port: address.port), serverName: "cairn"),
            onServerRunning: { channel in
                let text = channel.localAddress.map { "\($0.ipAddress ?? address.host):\($0.port ?? address.port)" }
                bound.withLock { $0 = text }
                logger.info("metrics listening", metadata: ["http.address": "\(text ?? "?")"])
            },
            logger: Logger(label: "cairn-supervisor.http")
        )
        return (
            HTTPListener(server: application, address: address, variable: "CAIRN_METRICS_ADDR", service: "supervisor"),
            { bound.withLock { $0 } }
        )
    }
}

/// A request's context with the client's address, which the metrics access checks.
struct MetricsRequestContext: RequestContext, RemoteAddressRequestContext {
    var coreContext: CoreRequestContextStorage
    let remoteAddress: SocketAddress?

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }
}
