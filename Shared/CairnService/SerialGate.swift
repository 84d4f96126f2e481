import Synchronization

/// Runs async work one piece at a time, in the order it arrived.
///
/// Identity's state (the session cache) and its write to storage must move together, batch by
/// batch. One ingest's forwarder sends one batch at a time, but a stack may run several
/// ingest instances, plus the CLI's refreshes; the gate keeps them from interleaving.
///
/// A waiter is not cancellable: the work it waits for is short, and a turn given up halfway
/// would have to be handed on anyway.
public final class SerialGate: Sendable {
    private struct State {
        var busy = false
        var waiting: [CheckedContinuation<Void, Never>] = []
    }
    private let state = Mutex(State())

    public init() {}

    /// Runs `body` once every earlier caller's body has finished.
    public func run<Result: Sendable>(_ body: () async throws -> Result) async rethrows -> Result {
        await enter()
        defer { leave() }
        return try await body()
    }

    private func enter() async {
        let entered = state.withLock { state -> Bool in
            if state.busy { return false }
            state.busy = true
            return true
        }
        if entered { return }
        await withCheckedContinuation { continuation in
            let enteredNow = state.withLock { state -> Bool in
                if !state.busy {
                    state.busy = true
                    return true
                }
                state.waiting.append(continuation)
                return false
            }
            if enteredNow { continuation.resume() }
        }
    }

    /// Hands the turn straight to the next waiter, so that nobody can overtake it.
    private func leave() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if state.waiting.isEmpty {
                state.busy = false
                return nil
            }
            return state.waiting.removeFirst()
        }
        next?.resume()
    }
}
