import CairnCore
import CairnWire
import NIOPosix
import Synchronization

/// Refuses new work while the spool holds more than its high-water mark: backpressure while
/// the pipeline downstream catches up, shared by the socket and HTTP routes. Nothing already
/// accepted is dropped, and a refused request accepted nothing, so its sender simply retries.
///
/// The depth is read from the spool at most every 100 ms and counted up between reads as
/// requests add events, so the check costs no query per request.
public final class Backpressure: Sendable {
    private let spool: Spool
    /// Spooled events from which requests are refused (`overloaded`; HTTP `429`).
    public let highWaterMark: Int64
    private let state = Mutex<(depth: Int64, read: ContinuousClock.Instant?)>((0, nil))

    public init(spool: Spool, highWaterMark: Int64) {
        self.spool = spool
        self.highWaterMark = highWaterMark
    }

    /// Throws `overloaded` when the spool is at or over the high-water mark.
    public func admit() async throws(IngestError) {
        let spooled = await depth()
        guard spooled >= highWaterMark else { return }
        throw IngestError(
            .overloaded,
            "\(spooled) events are waiting in the spool (high-water mark \(highWaterMark)); nothing in this request was accepted, retry after a delay"
        )
    }

    func depth() async -> Int64 {
        let now = ContinuousClock.now
        let (depth, read) = state.withLock { $0 }
        if let read, now - read < .milliseconds(100) { return depth }
        state.withLock { $0.read = now }
        let spool = self.spool
        guard let fresh = try? await NIOThreadPool.singleton.runIfActive({ try spool.approximateDepth() }) else { return depth }
        state.withLock { $0.depth = fresh }
        return fresh
    }

    /// Counts events a request just added.
    func added(_ count: Int) {
        state.withLock { $0.depth += Int64(count) }
    }
}
