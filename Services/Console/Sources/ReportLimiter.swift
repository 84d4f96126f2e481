import CairnCore
import HTTPTypes
import Synchronization

/// How many reports one app may run at once over HTTP. Reports run on a fixed set of threads
/// and connections; without this, one read key's slow requests (a decade by the hour) could
/// hold all of them, and every other app's reports and every key lookup would queue behind.
/// A request over the limit waits its turn, holding no thread, and is refused with 429
/// (`overloaded`) when its turn does not come within ``wait``.
final class ReportLimiter: Sendable {
    let perApp: Int
    let wait: Duration
    private let running = Mutex<[String: Int]>([:])

    init(perApp: Int = 6, wait: Duration = .seconds(20)) {
        self.perApp = perApp
        self.wait = wait
    }

    func run<T: Sendable>(app: String, _ body: () async throws -> T) async throws -> T {
        let deadline = ContinuousClock.now + wait
        while !acquire(app) {
            guard ContinuousClock.now < deadline else {
                throw APIRefusal(
                    .tooManyRequests,
                    .overloaded,
                    "app '\(app)' already runs \(perApp) reports over HTTP; retry when one has finished",
                    headers: [.retryAfter: "5"]
                )
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        defer { release(app) }
        return try await body()
    }

    private func acquire(_ app: String) -> Bool {
        running.withLock { running in
            guard running[app, default: 0] < perApp else { return false }
            running[app, default: 0] += 1
            return true
        }
    }

    private func release(_ app: String) {
        running.withLock { running in
            running[app, default: 1] -= 1
            if running[app] == 0 { running[app] = nil }
        }
    }
}
