import CairnCore
import CairnService
import CairnWire
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// Drains the spool downstream in order: a batch at a time to identity (which commits it
/// through storage), deleting entries only after that commit. Failures back off
/// exponentially and retry the same batch, and every hop is idempotent, so a retry after
/// a lost answer stores nothing twice.
public struct Forwarder: Service {
    let spool: Spool
    let identity: ReconnectingClient
    let counters: Counters
    let logger: Logger
    /// Events per `identity.process` call. Defaults to `10000`.
    public var batchSize = 10000
    /// The events' bytes per call, at most: the frame to identity, and identity's to storage
    /// (the events again, plus the identity rows), must stay under the frame limit (16 MiB),
    /// or the batch could never be delivered.
    public var batchBytes = 6 << 20

    public init(spool: Spool, identity: ReconnectingClient, counters: Counters, logger: Logger) {
        self.spool = spool
        self.identity = identity
        self.counters = counters
        self.logger = logger
    }

    public func run() async throws {
        var delay = Duration.milliseconds(100)
        var lastFailure: String?
        var lastPrune = ContinuousClock.now - .seconds(3600)
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            if ContinuousClock.now - lastPrune > .seconds(3600) {
                lastPrune = ContinuousClock.now
                try? await NIOThreadPool.singleton.runIfActive { [spool] in try spool.pruneSeen() }
            }
            do {
                let delivered = try await forwardOneBatch()
                if lastFailure != nil {
                    logger.info("forwarding resumed")
                    lastFailure = nil
                }
                delay = .milliseconds(100)
                if delivered == 0 {
                    try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .milliseconds(20)) }
                }
            } catch {
                counters.add("forward_failures")
                let message = "\(error)"
                if message != lastFailure {
                    logger.warning("forwarding failed; will retry", metadata: ["error": "\(message)", "retry.in": "\(delay)"])
                    lastFailure = message
                }
                let wait = delay
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: wait) }
                delay = min(delay * 2, .seconds(5))
            }
        }
    }

    /// Sends the oldest spooled events; returns how many left the spool.
    func forwardOneBatch() async throws -> Int {
        let entries = try await NIOThreadPool.singleton.runIfActive { [spool, batchSize, batchBytes] in try spool.peek(limit: batchSize, maximumBytes: batchBytes) }
        guard !entries.isEmpty else { return 0 }
        // The events are already canonical JSON: relay the bytes, do not re-encode them.
        var params: [UInt8] = []
        params.reserveCapacity(entries.reduce(16) { $0 + $1.event.count + 1 })
        params.append(contentsOf: "{\"events\":[".utf8)
        for (index, entry) in entries.enumerated() {
            if index > 0 { params.append(UInt8(ascii: ",")) }
            params.append(contentsOf: entry.event)
        }
        params.append(contentsOf: "]}".utf8)
        let result = try await identity.call("identity.process", rawParams: params, timeout: .seconds(120))

        var refused: [(sequence: Int64, deadLetter: Spool.DeadLetter)] = []
        for rejection in result["rejected"]?.arrayValue ?? [] {
            guard let index = rejection["index"]?.intValue.map(Int.init), entries.indices.contains(index) else { continue }
            let entry = entries[index]
            let app = (try? JSONParser.parse(entry.event))?["app_token"]?.stringValue ?? ""
            let error = EventError(EventError.Code(rawValue: rejection["code"]?.stringValue ?? "invalid_event"),
                                   field: rejection["field"]?.stringValue, rejection["message"]?.stringValue ?? "refused by storage")
            refused.append((entry.sequence, Spool.DeadLetter(app: app, format: "canonical", source: "storage", record: nil, error: error, raw: entry.event)))
        }
        let sequences = entries.map(\.sequence)
        let refusedLetters = refused
        try await NIOThreadPool.singleton.runIfActive { [spool] in try spool.complete(sequences: sequences, refused: refusedLetters) }
        counters.add("events_forwarded", Int64(entries.count - refused.count))
        counters.add("events_duplicate_downstream", result["duplicates"]?.intValue ?? 0)
        counters.add("events_refused_downstream", Int64(refused.count))
        return entries.count
    }
}
