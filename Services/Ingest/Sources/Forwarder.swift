import CairnCore
import CairnMethods
import CairnMetrics
import CairnService
import CairnWire
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization

/// Drains the spool downstream in order: a batch at a time to storage, which commits it to
/// the events log, deleting entries only after that commit. Failures back off
/// exponentially and retry the same batch, and every hop is idempotent, so a retry after
/// a lost answer stores nothing twice.
public struct Forwarder: Service {
    let spool: Spool
    let storage: ReconnectingClient
    let counters: Counters
    let logger: Logger
    let health: ForwardingHealth
    /// Events per `storage.write` call. Defaults to `10000`.
    public var batchSize = 10000
    /// The events' bytes per call, at most: the frame must stay under the frame limit
    /// (16 MiB), or the batch could never be delivered.
    public var batchBytes = 12 << 20

    public init(spool: Spool, storage: ReconnectingClient, counters: Counters, logger: Logger, health: ForwardingHealth = ForwardingHealth()) {
        self.spool = spool
        self.storage = storage
        self.counters = counters
        self.logger = logger
        self.health = health
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
            let seen = spool.appended.rings
            do {
                let delivered = try await forwardOneBatch()
                health.succeeded()
                if lastFailure != nil {
                    logger.info("forwarding resumed")
                    lastFailure = nil
                }
                delay = .milliseconds(100)
                if delivered == 0 {
                    // Asleep until an append; the timeout only bounds the hourly prune's wait.
                    _ = await cancelWhenGracefulShutdown { await spool.appended.wait(after: seen, timeout: .seconds(60)) }
                }
            } catch {
                counters.add("forward_failures")
                CairnMetric.batches.increment("forward", "failed")
                let message = "\(error)"
                health.failed(message)
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
        let entries = try await NIOThreadPool.singleton.runIfActive { [spool, batchSize, batchBytes] in
            try spool.peek(limit: batchSize, maximumBytes: batchBytes)
        }
        guard !entries.isEmpty else { return 0 }
        try await deliver(entries[...])
        return entries.count
    }

    /// Delivers `entries` and removes them from the spool. When storage refuses them for
    /// their data (`write_refused`: a SQLSTATE of class 22, 23 or 54, which no retry can
    /// cure), or the batch is too large for one frame (`batch_too_large`), the
    /// batch splits by app and then in halves until each refused event stands alone; that
    /// event becomes a dead letter with storage's reason (`source: storage`) and the rest
    /// commits. Any other failure is thrown, and the forwarder retries.
    private func deliver(_ entries: ArraySlice<Spool.Entry>) async throws {
        let result: StorageWrite.Result
        do {
            // The events are already canonical JSON: relay the bytes, do not re-encode them.
            var params: [UInt8] = []
            params.reserveCapacity(entries.reduce(16) { $0 + $1.event.count + 1 })
            params.append(contentsOf: "{\"events\":[".utf8)
            for (offset, entry) in entries.enumerated() {
                if offset > 0 { params.append(UInt8(ascii: ",")) }
                params.append(contentsOf: entry.event)
            }
            params.append(contentsOf: "]}".utf8)
            result = try await storage.call(StorageWrite.self, rawParams: params)
        } catch let error as RPCError where error.applicationCode == Self.refusedCode || error.applicationCode == Self.tooLargeCode {
            guard entries.count > 1 else {
                let entry = entries[entries.startIndex]
                let sqlState = error.data?["sqlstate"]?.stringValue.map { " (SQLSTATE \($0))" } ?? ""
                let letter = Self.deadLetter(entry, EventError(.storageRefused, field: nil, "storage refused the event: \(error.message)\(sqlState)"))
                try await NIOThreadPool.singleton.runIfActive { [spool] in
                    try spool.complete(sequences: [entry.sequence], refused: [(entry.sequence, letter)])
                }
                counters.add("events_refused_downstream")
                logger.warning("storage refused an event; it is a dead letter", metadata: ["app": "\(letter.app)", "error": "\(error.message)"])
                return
            }
            // One app's refused events must not hold up another's: the batch splits by app
            // first (in order of first appearance), then in halves.
            let apps = Self.splitByApp(entries)
            if apps.count > 1 {
                for part in apps { try await deliver(part[...]) }
                return
            }
            let middle = entries.startIndex + entries.count / 2
            try await deliver(entries[..<middle])
            try await deliver(entries[middle...])
            return
        }

        var refused: [(sequence: Int64, deadLetter: Spool.DeadLetter)] = []
        for rejection in result.rejected {
            guard let offset = rejection["index"]?.intValue.map(Int.init), offset >= 0, offset < entries.count else { continue }
            let entry = entries[entries.startIndex + offset]
            let error = EventError(
                EventError.Code(rawValue: rejection["code"]?.stringValue ?? "invalid_event"),
                field: rejection["field"]?.stringValue,
                rejection["message"]?.stringValue ?? "refused by storage"
            )
            refused.append((entry.sequence, Self.deadLetter(entry, error)))
        }
        let sequences = entries.map(\.sequence)
        let refusedLetters = refused
        try await NIOThreadPool.singleton.runIfActive { [spool] in try spool.complete(sequences: sequences, refused: refusedLetters) }
        counters.add("events_forwarded", Int64(entries.count - refused.count))
        CairnMetric.batches.increment("forward", "ok")
        CairnMetric.events.increment(by: entries.count - refused.count, "forward", "delivered")
        counters.add("events_duplicate_downstream", Int64(result.duplicates))
        counters.add("events_refused_downstream", Int64(refused.count))
    }

    /// The application error code storage answers when PostgreSQL refuses a batch for its data.
    static let refusedCode = ErrorCode.writeRefused
    /// The code a service answers when a batch would not fit one frame.
    static let tooLargeCode = ErrorCode.batchTooLarge

    /// The entries grouped by app, each group in spool order.
    static func splitByApp(_ entries: ArraySlice<Spool.Entry>) -> [[Spool.Entry]] {
        var order: [String] = []
        var groups: [String: [Spool.Entry]] = [:]
        for entry in entries {
            let app = Self.appToken(of: entry.event)
            if groups[app] == nil { order.append(app) }
            groups[app, default: []].append(entry)
        }
        return order.map { groups[$0]! }
    }

    /// The `app_token` of a canonical event's JSON, which always comes first.
    static func appToken(of event: [UInt8]) -> String {
        (try? JSONParser.parse(event))?["app_token"]?.stringValue ?? ""
    }

    /// A spooled event storage refused, kept whole with why.
    private static func deadLetter(_ entry: Spool.Entry, _ error: EventError) -> Spool.DeadLetter {
        Spool.DeadLetter(
            app: appToken(of: entry.event),
            format: Ingestor.canonicalFormat,
            source: "storage",
            record: nil,
            error: error,
            raw: entry.event
        )
    }
}

/// Whether forwarding works: consecutive failures and the last error, for `cairn status`
/// (`degraded`) and `/metrics`.
public final class ForwardingHealth: Sendable {
    private struct State {
        var consecutiveFailures = 0
        var failingSince: Timestamp?
        var lastError = ""
    }

    private let state = Mutex(State())
    /// Failures in a row after which ingest reports itself degraded: with the forwarder's
    /// backoff (100 ms doubling to 5 s), about 3 seconds of failing.
    public static let failuresBeforeDegraded = 5

    public init() {}

    func succeeded() {
        state.withLock { $0 = State() }
    }

    func failed(_ error: String) {
        state.withLock { state in
            state.consecutiveFailures += 1
            state.failingSince = state.failingSince ?? .now()
            state.lastError = error
        }
    }

    /// Why acknowledged events are not reaching storage, or nil.
    public func problem(oldestSpooled: Timestamp?, now: Timestamp, ageLimit: Duration) -> String? {
        let current = state.withLock { $0 }
        if current.consecutiveFailures >= Self.failuresBeforeDegraded {
            return
                "forwarding has failed \(current.consecutiveFailures) times in a row since \(current.failingSince?.description ?? "?"): \(current.lastError)"
        }
        if let oldestSpooled {
            let age = (now.microseconds - oldestSpooled.microseconds) / 1_000_000
            if age > ageLimit.components.seconds {
                return "the oldest spooled event has waited \(age) s (limit \(ageLimit.components.seconds) s, settings.spool_age_limit_s)"
            }
        }
        return nil
    }
}
