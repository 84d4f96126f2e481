import CairnCore
import CairnIdentity
import Foundation

// The identity resolver alone, one core, warm state, no sockets: folding users, companies,
// memberships and aliases (IdentityBatch) and recomputing the sessions of every person a
// batch touches (SessionPlan.compute) against histories already cached, as identity does
// for each batch between its two storage calls. Then the resident memory of the state for
// one million users.

let users = Int(ProcessInfo.processInfo.environment["BENCH_IDENTITY_USERS"] ?? "") ?? 100_000
let batches = 200
let batchSize = 2_000
let start = Timestamp(parsing: "2024-05-01T00:00:00Z")!

func event(_ n: Int, user: Int) -> JSON {
    let time = Timestamp(microseconds: start.microseconds + Int64(n) * 7_000_000)
    let kind = n % 10
    let type: EventType = kind == 0 ? .identifyUser : kind == 1 ? .sessionStart : .track
    return CanonicalEvent(
        appToken: "bench",
        eventType: type,
        eventName: type == .track ? "Used" : "",
        userId: "user-\(user)",
        companyId: kind == 2 ? "company-\(user % 2000)" : nil,
        anonymousId: kind == 0 ? "device-\(user)" : nil,
        source: "web-client",
        insertedAt: time,
        metadata: kind == 0 ? ["plan": "pro", "seats": .int(Int64(n % 50))] : [:],
        receivedAt: time,
        origin: .userpilot
    ).json
}

func residentMegabytes() -> Double {
    let statm = (try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8)) ?? "0 0"
    let pages = Double(statm.split(separator: " ")[1]) ?? 0
    return pages * 4096 / 1_048_576
}

// Warm state: every user's history already cached, as after identity has seen them once.
let cache = SessionCache(capacity: 2_000_000)
for user in 0..<users {
    let points = (0..<5).map {
        Sessionizer.Point(time: Timestamp(microseconds: start.microseconds - Int64(5 - $0) * 600_000_000), isSessionStart: $0 == 0)
    }
    cache.commit(app: "bench", ["user-\(user)": SessionHistory(points: points)], forget: [])
}
var generator = SystemRandomNumberGenerator()
let workload: [[JSON]] = (0..<batches).map { batch in
    (0..<batchSize).map { i in event(batch * batchSize + i, user: Int.random(in: 0..<users, using: &generator)) }
}
let context: JSON = ["aliases": [:], "users": [:], "histories": [:], "inactivity_s": 1800, "max_length_s": 86400]

var rates: [Double] = []
for pass in 0..<4 {
    let began = ContinuousClock.now
    var rows = 0
    for events in workload {
        var batch = IdentityBatch()
        for event in events { batch.add(event) }
        rows += (batch.userRows().arrayValue?.count ?? 0) + (batch.aliasRows().arrayValue?.count ?? 0)
        let update = SessionPlan.compute(app: "bench", events: events, context: context, cache: cache)
        rows += update.rows.count
    }
    let elapsed = ContinuousClock.now - began
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    if pass > 0 { rates.append(Double(batches * batchSize) / seconds) }
    precondition(rows > 0)
}
print("identity resolver, one core, warm state, \(users) users, \(batches) batches of \(batchSize)")
print(String(format: "resolver      %10.0f events/s   target 200,000", rates.sorted()[1]))

// Memory: the state held for one million users (their cached histories).
let before = residentMegabytes()
let million = SessionCache(capacity: 2_000_000)
for user in 0..<1_000_000 {
    let points = (0..<5).map {
        Sessionizer.Point(time: Timestamp(microseconds: start.microseconds + Int64($0) * 600_000_000), isSessionStart: $0 == 0)
    }
    million.commit(app: "bench", ["user-\(user)": SessionHistory(points: points)], forget: [])
}
let stateMegabytes = residentMegabytes() - before
print(String(format: "state for %d users: %.0f MB resident (target: under 300 MB)", million.count, stateMegabytes))
if let path = ProcessInfo.processInfo.environment["BENCH_IDENTITY_JSON"] {
    try? String(format: "{\"events_per_s\": %.0f, \"state_mb\": %.1f}\n", rates.sorted()[1], stateMegabytes).write(
        toFile: path,
        atomically: true,
        encoding: .utf8
    )
}
