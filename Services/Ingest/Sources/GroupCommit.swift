import CairnCore
import CairnMetrics
import CairnSQLite
import NIOPosix
import Synchronization

/// Group commit for the spool, as RudderStack's gateway does it: concurrent requests share
/// one SQLite transaction, so durability costs one sync per group, not one per request.
///
/// No background task: the first request that finds no commit running becomes the leader.
/// It writes everything queued so far, its own included, in one transaction, answers every
/// request of the group, and goes round again while more arrived meanwhile.
public final class GroupCommit: Sendable {
    public typealias Request = (events: [CanonicalEvent], deadLetters: [Spool.DeadLetter])
    public typealias Counts = (new: Int, duplicates: Int)

    private struct Waiting {
        var request: Request
        var continuation: CheckedContinuation<Counts, any Error>
    }

    private struct State {
        var queue: [Waiting] = []
        var leading = false
        /// Groups committed and requests in them, for `/metrics`.
        var groups: Int64 = 0
        var requests: Int64 = 0
    }

    public let spool: Spool
    private let state = Mutex(State())

    public init(spool: Spool) {
        self.spool = spool
    }

    /// Appends one request's events and dead letters; returns once they are durable.
    public func append(events: [CanonicalEvent], deadLetters: [Spool.DeadLetter]) async throws -> Counts {
        guard !events.isEmpty || !deadLetters.isEmpty else { return (0, 0) }
        return try await withCheckedThrowingContinuation { continuation in
            let lead = state.withLock { state -> Bool in
                state.queue.append(Waiting(request: (events, deadLetters), continuation: continuation))
                if state.leading { return false }
                state.leading = true
                return true
            }
            if lead { commitQueued() }
        }
    }

    /// Commits group after group until the queue is empty. Runs on the leader's thread pool
    /// thread, so requests that arrive meanwhile join the next group.
    private func commitQueued() {
        NIOThreadPool.singleton.submit { [self] _ in
            while true {
                let group = state.withLock { state -> [Waiting] in
                    let group = state.queue
                    state.queue.removeAll()
                    if group.isEmpty { state.leading = false }
                    state.groups += group.isEmpty ? 0 : 1
                    state.requests += Int64(group.count)
                    return group
                }
                if group.isEmpty { return }
                CairnMetric.spoolGroupCommits.increment()
                CairnMetric.spoolGroupCommitRequests.increment(by: group.count)
                do {
                    let counts = try spool.append(group.map(\.request))
                    for (waiting, count) in zip(group, counts) { waiting.continuation.resume(returning: count) }
                } catch {
                    for waiting in group { waiting.continuation.resume(throwing: error) }
                }
            }
        }
    }

    /// Groups committed, and the requests they carried.
    public var totals: (groups: Int64, requests: Int64) {
        state.withLock { ($0.groups, $0.requests) }
    }
}
