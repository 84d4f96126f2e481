import Synchronization

/// Wakes whoever waits for new work, instead of their polling for it.
///
/// A waiter first reads ``rings``, then looks for work, and only then waits *after* that
/// count: a ring that came while it looked ends the wait at once, so no ring is ever missed
/// between the look and the wait.
public final class Doorbell: Sendable {
    private struct State {
        var rings: UInt64 = 0
        var nextWaiter: UInt64 = 0
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        /// Waits cancelled before their continuation was stored.
        var cancelled: Set<UInt64> = []
    }

    private let state = Mutex(State())

    public init() {}

    /// How many times the bell has rung: the `after` of the next ``wait(after:timeout:)``.
    public var rings: UInt64 { state.withLock { $0.rings } }

    /// Wakes every waiter.
    public func ring() {
        let waiting = state.withLock { state in
            state.rings &+= 1
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for waiter in waiting { waiter.resume() }
    }

    /// Returns when the bell has rung more than `seen` times (at once if it already has), after
    /// `timeout`, or when the task is cancelled. True when it rang.
    @discardableResult
    public func wait(after seen: UInt64, timeout: Duration) async -> Bool {
        if rings != seen { return true }
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await self.rung(after: seen)
                return !Task.isCancelled
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first || rings != seen
        }
    }

    private func rung(after seen: UInt64) async {
        let id = state.withLock { state in
            state.nextWaiter &+= 1
            return state.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { state in
                    if state.rings != seen || state.cancelled.remove(id) != nil { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { state in
                guard let waiter = state.waiters.removeValue(forKey: id) else {
                    state.cancelled.insert(id)
                    return nil as CheckedContinuation<Void, Never>?
                }
                return waiter
            }
            waiter?.resume()
        }
        // A cancellation that raced the ring leaves its mark behind: clear it.
        state.withLock { _ = $0.cancelled.remove(id) }
    }
}
