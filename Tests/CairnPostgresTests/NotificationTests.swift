import CairnCore
import CairnPostgres
import CairnTesting
import Logging
import Testing

@Suite struct NotificationTests {
    /// A ring between reading the count and waiting ends the wait at once; without a ring the
    /// wait ends at its timeout; a cancelled wait ends at once.
    @Test func aDoorbellNeverMissesARingBetweenLookAndWait() async {
        let bell = Doorbell()
        let seen = bell.rings
        bell.ring()
        let began = ContinuousClock.now
        #expect(await bell.wait(after: seen, timeout: .seconds(30)))
        #expect(ContinuousClock.now - began < .seconds(1))
        #expect(await bell.wait(after: bell.rings, timeout: .milliseconds(50)) == false)
        let waiter = Task { await bell.wait(after: bell.rings, timeout: .seconds(60)) }
        try? await Task.sleep(for: .milliseconds(50))
        bell.ring()
        #expect(await waiter.value)
        let cancelled = Task { await bell.wait(after: bell.rings, timeout: .seconds(60)) }
        cancelled.cancel()
        #expect(await cancelled.value == false)
    }

    /// A `NOTIFY` committed by another connection rings the doorbells of its channel (and of its
    /// payload), not the others'; an uncommitted one rings nothing; stopping ends the listener.
    @Test func notificationsRingTheirDoorbellsOnCommit() async throws {
        let conninfo = try TestPostgres.freshDatabase()
        let notifications = PostgresNotifications(conninfo: conninfo, channels: ["cairn_a", "cairn_b"], logger: Logger(label: "test"))
        let anyA = notifications.doorbell(channels: ["cairn_a"])
        let acmeA = notifications.doorbell(channels: ["cairn_a"], payload: "acme")
        let onlyB = notifications.doorbell(channels: ["cairn_b"])
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await notifications.run() }
            // Generous: under the full suite the shared test server can be short of connections
            // for a while, and the listener retries with a backoff of up to 5 s.
            let readyBy = ContinuousClock.now + .seconds(90)
            while !notifications.isListening {
                guard ContinuousClock.now < readyBy else { throw PostgresError(.unavailable, "never listened") }
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(notifications.timeout(poll: .milliseconds(100)) == PostgresNotifications.idleLook)
            let sender = try PostgresConnection(conninfo: conninfo)
            let (seenAny, seenAcme, seenB) = (anyA.rings, acmeA.rings, onlyB.rings)
            try sender.execute("BEGIN")
            try sender.execute("SELECT pg_notify('cairn_b', 'globex')")
            try sender.execute("ROLLBACK")
            try sender.execute("SELECT pg_notify('cairn_a', 'globex')")
            #expect(await anyA.wait(after: seenAny, timeout: .seconds(10)))
            #expect(await acmeA.wait(after: seenAcme, timeout: .milliseconds(300)) == false)
            #expect(onlyB.rings == seenB)
            let seenAcme2 = acmeA.rings
            try sender.execute("SELECT pg_notify('cairn_a', 'acme')")
            #expect(await acmeA.wait(after: seenAcme2, timeout: .seconds(10)))
            #expect(onlyB.rings == seenB)
            notifications.stop()
            try await group.waitForAll()
        }
        #expect(notifications.isListening == false)
    }
}

extension NotificationTests {
    /// Without a server, waiters poll at their own interval, and are rung each time the
    /// listener gives up a connection attempt.
    @Test func withoutAServerWaitersFallBackToPolling() async throws {
        let notifications = PostgresNotifications(
            conninfo: "host=/tmp/cairn-no-such-server port=1 connect_timeout=1",
            channels: ["cairn_a"],
            logger: Logger(label: "test")
        )
        let bell = notifications.doorbell(channels: ["cairn_a"])
        let seen = bell.rings
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await notifications.run() }
            #expect(await bell.wait(after: seen, timeout: .seconds(10)))
            #expect(notifications.isListening == false)
            #expect(notifications.timeout(poll: .milliseconds(100)) == .milliseconds(100))
            notifications.stop()
            try await group.waitForAll()
        }
    }
}
