import CairnCore
import CairnService
import CairnWire
import Foundation
import NIOPosix

/// The ingest service: validates, normalises and spools events, acknowledging only once
/// they are durable, then forwards them downstream.
///
/// Methods: `ingest.submit` and `ingest.deadletters.replay` (see ``Ingestor``), and
/// `ingest.deadletters.list {app?, limit?}`.
public enum IngestService {
    public static func setup(_ context: ServiceContext) async throws -> ServiceParts {
        let spoolDirectory = context.environment.dataDirectory + "/spool"
        try FileManager.default.createDirectory(atPath: spoolDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let spool = try Spool(path: spoolDirectory + "/ingest.sqlite")
        let identity = ReconnectingClient(socketPath: context.environment.socketPath(of: "identity"),
                                          maximumFrameSize: context.environment.maximumFrameSize)
        let storage = ReconnectingClient(socketPath: context.environment.socketPath(of: "storage"),
                                         maximumFrameSize: context.environment.maximumFrameSize)
        let ingestor = Ingestor(spool: spool, apps: AppDirectory(storage: storage, spool: spool), counters: context.counters,
                                suppressions: Suppressions(try spool.suppressedKeys()))
        let forwarder = Forwarder(spool: spool, identity: identity, counters: context.counters, logger: context.logger)

        var router = RPCRouter()
        router.register("ingest.submit") { params in try await ingestor.submit(params) }
        router.register("ingest.deadletters.list") { params in
            let app = params["app"]?.stringValue
            let limit = Int(params["limit"]?.intValue ?? 100)
            let rows = try await NIOThreadPool.singleton.runIfActive { try spool.deadLetters(app: app, limit: max(1, min(limit, 10_000))) }
            return ["rows": .array(rows.map(\.json))]
        }
        router.register("ingest.deadletters.replay") { params in try await ingestor.replay(params) }
        router.register("ingest.suppress") { params in try await ingestor.suppress(params) }
        return ServiceParts(
            router: router, background: [forwarder],
            statusDetails: {
                let depth = (try? await NIOThreadPool.singleton.runIfActive { try spool.depth() }) ?? -1
                let dead = (try? await NIOThreadPool.singleton.runIfActive { try spool.deadLetterCount() }) ?? -1
                return ["spool_depth": .int(depth), "dead_letters": .int(dead)]
            })
    }
}
