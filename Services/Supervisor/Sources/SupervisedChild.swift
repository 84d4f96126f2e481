#if canImport(Glibc)
import Glibc
#endif

/// Where the stack as a whole is: it starts services in order, runs, then stops them.
enum StackPhase: String, Sendable, Equatable {
    case starting
    case running
    case stopping
}

/// One supervised child's life. Every state is a case and every change is a function of the
/// current one, as `ServiceGroup` models its services; only ``statusName(at:)`` turns a state
/// into the word `cairn status` prints.
struct SupervisedChild: Sendable {
    enum State: Sendable, Equatable {
        /// Not spawned yet.
        case starting
        /// Spawned; `since` is when, for uptime and for telling a stable run from a quick exit.
        case running(pid: pid_t, since: ContinuousClock.Instant)
        /// Ended unexpectedly and is waiting out its backoff before the next start.
        case restarting(after: ChildProcess.Termination)
        /// Ended, and its restart policy does not bring it back.
        case exited(ChildProcess.Termination)
        /// Ended because the stack is stopping.
        case stopped(ChildProcess.Termination)
        /// Could not be spawned at all; the reason is the spawn error.
        case failedToStart(String)
    }

    /// What the supervisor does after the child exits.
    enum NextStep: Sendable, Equatable {
        /// Start it again after the backoff. `stableRun` when the run outlasted `stableAfter`,
        /// so the backoff starts over; `flapping` when it keeps exiting quickly.
        case restart(stableRun: Bool, flapping: Bool)
        /// Leave it down: the stack is stopping or the policy says so.
        case leaveDown
    }

    private(set) var state: State = .starting
    private(set) var process: ChildProcess?
    private(set) var restarts = 0
    /// Exits in a row that came before `stableAfter`.
    private(set) var quickExits = 0
    private(set) var stopSignal = SIGTERM
    /// How its last run ended; kept while it runs again, so `status` can show it.
    private(set) var lastExit: ChildProcess.Termination?
    /// The last few lines it wrote, for start-up errors.
    var recentOutput: [String] = []

    let flappingAfter: Int
    let stableAfter: Duration

    init(flappingAfter: Int, stableAfter: Duration) {
        self.flappingAfter = flappingAfter
        self.stableAfter = stableAfter
    }

    /// The process to signal, while there is one running.
    var runningProcess: ChildProcess? {
        if case .running = state { return process }
        return nil
    }

    var isRunning: Bool {
        if case .running = state { return true }
        return false
    }

    /// The child was spawned.
    mutating func started(_ process: ChildProcess, at now: ContinuousClock.Instant, stopSignal: Int32) {
        self.process = process
        self.stopSignal = stopSignal
        state = .running(pid: process.pid, since: now)
    }

    /// The child could not be spawned; the supervisor gives up on it.
    mutating func failedToStart(_ reason: String) {
        state = .failedToStart(reason)
    }

    /// The child exited: decides between restarting it and leaving it down, from the stack's
    /// phase, the restart policy and how long this run lasted.
    mutating func exited(
        _ termination: ChildProcess.Termination,
        at now: ContinuousClock.Instant,
        stackStopping: Bool,
        policy: StackFile.RestartPolicy
    ) -> NextStep {
        let ranFor: Duration? = if case .running(_, let since) = state { now - since } else { nil }
        lastExit = termination
        if stackStopping {
            state = .stopped(termination)
            return .leaveDown
        }
        let restartable = policy == .always || (policy == .onFailure && termination != .exited(0))
        guard restartable else {
            state = .exited(termination)
            return .leaveDown
        }
        restarts += 1
        let stableRun = (ranFor ?? .zero) > stableAfter
        quickExits = stableRun ? 0 : quickExits + 1
        state = .restarting(after: termination)
        return .restart(stableRun: stableRun, flapping: quickExits >= flappingAfter)
    }

    /// Seconds since the current run started, while running.
    func uptime(at now: ContinuousClock.Instant) -> Int64? {
        guard case .running(_, let since) = state else { return nil }
        return (now - since).components.seconds
    }

    /// The word `cairn status` shows. A child that keeps exiting is "flapping" until one run
    /// outlasts `stableAfter`.
    func statusName(at now: ContinuousClock.Instant) -> String {
        let flapping = quickExits >= flappingAfter
        switch state {
        case .starting: return "starting"
        case .running(_, let since): return flapping && now - since < stableAfter ? "flapping" : "running"
        case .restarting: return flapping ? "flapping" : "restarting"
        case .exited: return "exited"
        case .stopped: return "stopped"
        case .failedToStart: return "failed"
        }
    }
}
