import CairnService
import Synchronization
import Testing

@Suite struct SerialGateTests {
    /// What the callers saw, shared between their tasks.
    final class Record: Sendable {
        struct Seen {
            var inside = 0
            var mostInside = 0
            var order: [Int] = []
            var firstHolds = false
        }
        let seen = Mutex(Seen())
    }

    /// Bodies never overlap, and they run in the order their callers arrived.
    @Test func runsOneBodyAtATimeInArrivalOrder() async throws {
        let gate = SerialGate()
        let record = Record()
        try await withThrowingTaskGroup(of: Void.self) { group in
            // The first caller holds the gate while the others queue, one by one, behind it.
            group.addTask {
                await gate.run {
                    record.seen.withLock {
                        $0.firstHolds = true
                        $0.order.append(0)
                    }
                    try? await Task.sleep(for: .milliseconds(200))
                }
            }
            while !record.seen.withLock({ $0.firstHolds }) { try await Task.sleep(for: .milliseconds(1)) }
            for caller in 1...20 {
                group.addTask {
                    await gate.run {
                        record.seen.withLock { seen in
                            seen.inside += 1
                            seen.mostInside = max(seen.mostInside, seen.inside)
                            seen.order.append(caller)
                        }
                        await Task.yield()
                        record.seen.withLock { $0.inside -= 1 }
                    }
                }
                // Give each caller time to join the queue before the next one is started.
                try await Task.sleep(for: .milliseconds(5))
            }
            try await group.waitForAll()
        }
        let seen = record.seen.withLock { $0 }
        #expect(seen.mostInside == 1)
        #expect(seen.order == Array(0...20))
    }

    /// A body that throws still hands the gate on.
    @Test func aFailingBodyReleasesTheGate() async throws {
        struct Failure: Error {}
        let gate = SerialGate()
        await #expect(throws: Failure.self) { try await gate.run { throw Failure() } }
        #expect(await gate.run { 7 } == 7)
    }
}
