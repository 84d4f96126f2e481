import CairnCore
import CairnIdentity
import CairnPostgres
import CairnReporting
import CairnRollups
import CairnStorage
import CairnTesting
import Testing

/// The identity follower derives users, aliases, memberships, sessions and the rollups from
/// the events log; reports stay exact before it has folded anything (the unfolded tail), and
/// folding in many small spans gives exactly what one large span gives.
@Suite struct IdentityFollowerTests {
    let conninfo: String
    let connection: PostgresConnection

    init() throws {
        conninfo = try TestPostgres.freshDatabase()
        connection = try PostgresConnection(conninfo: conninfo)
        try Schema.migrate(connection)
        _ = try AppRegistry.create(["name": "shop", "token": "shop"], on: connection)
    }

    static func event(
        _ type: EventType,
        _ name: String,
        user: String?,
        anonymous: String? = nil,
        company: String? = nil,
        at: String,
        _ metadata: JSONObject = [:]
    ) -> CanonicalEvent {
        CanonicalEvent(
            appToken: "shop",
            eventType: type,
            eventName: name,
            userId: user,
            companyId: company,
            anonymousId: anonymous,
            source: "web-client",
            insertedAt: Timestamp(parsing: at)!,
            metadata: metadata,
            receivedAt: Timestamp(parsing: at)!,
            origin: .segment
        )
    }

    /// device-A browses on May 1st and identifies as ada on May 2nd; ada buys for acme; bob
    /// starts a guide; carol's two views are 40 minutes apart (two sessions).
    static let stream: [CanonicalEvent] = [
        event(.track, "viewed", user: nil, anonymous: "device-A", at: "2024-05-01T08:00:00Z"),
        event(.track, "viewed", user: nil, anonymous: "device-A", at: "2024-05-02T08:00:00Z"),
        event(.identifyUser, "", user: "ada", anonymous: "device-A", at: "2024-05-02T08:05:00Z", ["plan": "pro"]),
        event(.track, "purchase", user: "ada", company: "acme", at: "2024-05-02T08:10:00Z", ["price": 12]),
        event(.track, "Guide Started", user: "bob", at: "2024-05-03T09:00:00Z", ["guide_id": "7"]),
        event(.track, "viewed", user: "carol", at: "2024-05-03T10:00:00Z"),
        event(.track, "viewed", user: "carol", at: "2024-05-03T10:40:00Z"),
    ]

    func reports() throws -> [[[JSON]]] {
        [
            try EventsReport(params: ["app": "shop"]).run(on: connection).rows,
            try UniquesReport(params: ["app": "shop", "by": "day"]).run(on: connection).rows,
            try UniquesReport(params: ["app": "shop", "by": "week"]).run(on: connection).rows,
            try CompaniesReport(params: ["app": "shop"]).run(on: connection).rows,
            try EngagementReport(params: ["app": "shop", "entity": "flow"]).run(on: connection).rows,
            try StatsReport(params: ["app": "shop", "event": "purchase", "attr": "price"]).run(on: connection).rows,
        ]
    }

    /// Everything the follower keeps, as text, for comparing two runs.
    func derivedState() throws -> [[[String?]]] { try Self.derivedState(of: connection) }

    static func derivedState(of connection: PostgresConnection) throws -> [[[String?]]] {
        try [
            "SELECT user_id, first_seen, last_seen, traits::text, company_id FROM users ORDER BY 1",
            "SELECT alias_kind, alias_id, user_id, aliased_at FROM identity_aliases ORDER BY 1, 2",
            "SELECT user_id, company_id, first_seen, last_seen FROM user_companies ORDER BY 1, 2",
            "SELECT person, session, started_at, ended_at, events FROM user_sessions ORDER BY 1, 2",
            "SELECT hour, event_type, event_name, events FROM rollup_event_counts ORDER BY 1, 2, 3",
            "SELECT grain, period, people FROM rollup_period_people ORDER BY 1, 2",
            "SELECT person, grain, period FROM rollup_person_periods ORDER BY 1, 2, 3",
            "SELECT company, person, events FROM rollup_company_people ORDER BY 1, 2",
            "SELECT entity, id, stage, person FROM rollup_engagement_people ORDER BY 1, 2, 3, 4",
        ].map { try connection.execute($0).rows }
    }

    @Test func reportsCountTheUnfoldedTailAndAgreeOnceFolded() throws {
        _ = try AppRegistry.setAttribute(["app": "shop", "name": "price", "type": "number"], on: connection)
        _ = try EventWriter().write(events: Self.stream, on: connection)
        let lag = try FollowerCheckpoint.lag(on: connection)
        #expect(lag.map(\.events) == [7])
        // Nothing folded: the events report and the stats count all seven events and the price.
        let before = try reports()
        #expect(before[0].map { [$0[1], $0[2]] } == [["viewed", 4], ["", 1], ["Guide Started", 1], ["purchase", 1]])
        #expect(before[5][0][2] == .int(1))
        let spans = try IdentityFollower(cache: SessionCache()).catchUp(on: connection)
        #expect(spans.map(\.events) == [7])
        #expect(try FollowerCheckpoint.lag(on: connection).map(\.events) == [0])
        let after = try reports()
        #expect(after[0] == before[0])
        #expect(after[5] == before[5])
        // Folded, device-A is ada: May 1st device-A (now ada), May 2nd ada, May 3rd bob and carol.
        #expect(after[1] == [["2024-05-01", 1], ["2024-05-02", 1], ["2024-05-03", 2]])
        #expect(after[2] == [["2024-04-29", 3]])
        #expect(after[3].map { [$0[0], $0[2], $0[3]] } == [["acme", 1, 1]])
        #expect(after[4].map { [$0[1], $0[2], $0[4]] } == [["userguiding", "7", 1]])
        // Identity: ada with her trait, device-A aliased to her, carol's two sessions.
        #expect(try connection.execute("SELECT traits->>'plan' FROM users WHERE user_id = 'ada'").rows == [["pro"]])
        #expect(try connection.execute("SELECT user_id FROM identity_aliases WHERE alias_id = 'device-A'").rows == [["ada"]])
        #expect(try connection.execute("SELECT count(*) FROM user_sessions WHERE person = 'carol'").rows == [["2"]])
        #expect(try connection.execute("SELECT count(*) FROM user_sessions WHERE person = 'anonymous:device-A'").rows == [["0"]])
        // Folding again finds nothing to fold and changes nothing.
        let state = try derivedState()
        #expect(try IdentityFollower(cache: SessionCache()).catchUp(on: connection).isEmpty)
        #expect(try derivedState() == state)
    }

    /// One event per stored batch, folded one span per two batches: in time order the visitor's
    /// events are folded before the identify that joins them to ada (her rollups gain them), and
    /// in reverse order after it.
    @Test(arguments: [false, true]) func manySmallSpansEqualOneLargeSpan(reversed: Bool) throws {
        for event in reversed ? Self.stream.reversed() : Self.stream { _ = try EventWriter().write(events: [event], on: connection) }
        let cache = SessionCache()
        let spans = try IdentityFollower(cache: cache, spanLimit: 2).catchUp(on: connection)
        #expect(spans.count == 4)
        #expect(spans.map(\.events).reduce(0, +) == 7)
        let small = try derivedState()

        let other = try PostgresConnection(conninfo: try TestPostgres.freshDatabase())
        try Schema.migrate(other)
        _ = try AppRegistry.create(["name": "shop", "token": "shop"], on: other)
        _ = try EventWriter().write(events: Self.stream, on: other)
        #expect(try IdentityFollower(cache: SessionCache()).catchUp(on: other).count == 1)
        let large = try Self.derivedState(of: other)
        #expect(small == large)
    }

    /// A transaction still writing holds the horizon: the follower folds up to it and no
    /// further, so an event committed late is folded later, never skipped.
    @Test func anOpenWriteHoldsTheFollowerBack() throws {
        try connection.execute(
            "CREATE TABLE events_test_may PARTITION OF events FOR VALUES FROM ('2024-05-01T00:00:00Z') TO ('2024-06-01T00:00:00Z')"
        )
        let writer = try PostgresConnection(conninfo: conninfo)
        try writer.execute("BEGIN")
        try writer.execute(
            """
            INSERT INTO events (app_token, inserted_at, internal_event_id, event_type, event_name, user_id, source, metadata, received_at, origin)
            VALUES ('shop', '2024-05-01T07:00:00Z', 99, 'track', 'late', 'dan', 'web-client', '{}', '2024-05-01T07:00:00Z', 'segment')
            """
        )
        _ = try EventWriter().write(events: Self.stream, on: connection)
        // The stream committed after the open transaction began: it lies above the horizon too.
        #expect(try IdentityFollower(cache: SessionCache()).catchUp(on: connection).isEmpty)
        try writer.execute("COMMIT")
        let spans = try IdentityFollower(cache: SessionCache()).catchUp(on: connection)
        #expect(spans.map(\.events).reduce(0, +) == 8)
        #expect(try EventsReport(params: ["app": "shop"]).run(on: connection).rows.map { $0[2] }.contains(.int(1)))
        #expect(try connection.execute("SELECT events FROM rollup_event_counts WHERE event_name = 'late'").rows == [["1"]])
    }

    /// An erasure as the storage service runs it: the follower's backlog first, then the method.
    static func erase(_ user: String, _ pool: PostgresPool) async throws -> JSON {
        try await FollowerWait.awaitBacklog(app: "shop", pool: pool)
        return try await pool.withConnection { try UserErasure.delete(["app": "shop", "user": .string(user)], on: $0) }
    }

    /// The identity service's follower loop, after a moment: what a merge or an erasure waits for.
    static func follow(_ pool: PostgresPool) async throws {
        try await Task.sleep(for: .milliseconds(300))
        while true {
            _ = try await pool.withConnection { try IdentityFollower(cache: SessionCache()).catchUp(on: $0) }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Runs `body` with the follower loop beside it, as the services run; returns what `body` returns.
    static func withFollower<T: Sendable>(_ pool: PostgresPool, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self, returning: T.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await follow(pool)
                return nil
            }
            defer { group.cancelAll() }
            while let result = try await group.next() {
                if let result { return result }
            }
            throw CancellationError()
        }
    }

    /// Waits until some backend of the test database waits for an advisory lock.
    func awaitAdvisoryWaiter() async throws {
        for _ in 0..<250 {
            let waiting = try connection.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event = 'advisory'"
            ).rows
            if waiting != [["0"]] { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        Issue.record("no backend waited for an advisory lock")
    }

    func remaining(_ where: String) throws -> String? {
        try connection.execute("SELECT count(*) FROM events WHERE app_token = 'shop' AND (\(`where`))").rows[0][0]
    }

    /// An erasure waits for the follower: device-A is ada's only through an identify nobody
    /// has folded yet, and ada herself is known only from unfolded events; both are erased.
    @Test func anErasureWaitsForTheFollowerAndErasesIdsOnlyUnfoldedIdentifiesLink() async throws {
        _ = try EventWriter().write(events: Self.stream, on: connection)
        let pool = PostgresPool(conninfo: conninfo)
        let erased = try await Self.withFollower(pool) { try await Self.erase("ada", pool) }
        #expect(erased["anonymous_ids"] == ["device-A"])
        #expect(erased["removed"]?["events"] == 4)
        #expect(try remaining("user_id = 'ada' OR anonymous_id = 'device-A'") == "0")
        #expect(try connection.execute("SELECT kind, id FROM suppressions ORDER BY 1").rows == [["anonymous", "device-A"], ["user", "ada"]])
    }

    /// With the follower stopped, an erasure gives up with `follower_behind` and erases nothing.
    @Test func anErasureRefusesWhileTheFollowerIsBehind() throws {
        _ = try EventWriter().write(events: Self.stream, on: connection)
        #expect {
            _ = try UserErasure.delete(["app": "shop", "user": "ada"], on: connection, followerWait: .milliseconds(100))
        } throws: { error in
            (error as? StorageError)?.applicationCode == .followerBehind && "\(error)".contains("7 events of app 'shop'")
        }
        #expect(try remaining("true") == "7")
        #expect(try connection.execute("SELECT count(*) FROM suppressions").rows == [["0"]])
    }

    /// A write of the person's events and their erasure never interleave: a write waits for an
    /// erasure under way and then drops the events, and an erasure waits for a write under way
    /// and then deletes its events.
    @Test func writesAndAnErasureOfTheSamePersonNeverInterleave() async throws {
        _ = try EventWriter().write(events: Self.stream, on: connection)
        try foldCommittedEvents(on: connection)
        let pool = PostgresPool(conninfo: conninfo)
        let late = Self.event(.track, "late", user: "ada", at: "2024-05-04T08:00:00Z")
        // An erasure under way (its lock, then its suppression): the write waits, then drops.
        let eraser = try PostgresConnection(conninfo: conninfo)
        try eraser.execute("BEGIN")
        try Rollups.lockWrites(app: "shop", exclusive: true, on: eraser)
        let outcome = try await withThrowingTaskGroup(of: EventWriter.Outcome?.self) { group in
            group.addTask { try await pool.withConnection { try EventWriter().write(events: [late], on: $0) } }
            try await awaitAdvisoryWaiter()
            try eraser.execute("INSERT INTO suppressions (app_token, kind, id) VALUES ('shop', 'user', 'ada')")
            try eraser.execute("COMMIT")
            var outcome: EventWriter.Outcome?
            for try await result in group { outcome = result }
            return outcome
        }
        #expect(outcome.map { [$0.inserted, $0.duplicates, $0.suppressed] } == [0, 0, 1])
        try connection.execute("DELETE FROM suppressions")
        // A write under way (its lock, then its row): the erasure waits, then deletes the row.
        let writer = try PostgresConnection(conninfo: conninfo)
        try writer.execute("BEGIN")
        try Rollups.lockWrites(app: "shop", exclusive: false, on: writer)
        try writer.execute(
            """
            INSERT INTO events (app_token, inserted_at, internal_event_id, event_type, event_name, user_id, source, metadata, received_at, origin)
            VALUES ('shop', '2024-05-04T09:00:00Z', 99, 'track', 'late', 'ada', 'web-client', '{}', '2024-05-04T09:00:00Z', 'segment')
            """
        )
        async let erasure = Self.withFollower(pool) { try await Self.erase("ada", pool) }
        try await awaitAdvisoryWaiter()
        // The erasure then waits for the late row to be folded.
        try writer.execute("COMMIT")
        let erased = try await erasure
        #expect(erased["removed"]?["events"] == 5)
        #expect(try remaining("user_id = 'ada' OR anonymous_id = 'device-A'") == "0")
    }

    /// A merge waits for the follower too: bob's traits come from an identify not folded yet.
    @Test func aMergeWaitsForTheFollowerAndKeepsTraitsOfUnfoldedIdentifies() async throws {
        _ = try EventWriter().write(events: Self.stream, on: connection)
        try foldCommittedEvents(on: connection)
        let identify = Self.event(.identifyUser, "", user: "bob", at: "2024-05-04T08:00:00Z", ["team": "ops", "plan": "free"])
        _ = try EventWriter().write(events: [identify], on: connection)
        let pool = PostgresPool(conninfo: conninfo)
        _ = try await Self.withFollower(pool) {
            try await FollowerWait.awaitBacklog(app: "shop", pool: pool)
            return try await pool.withConnection { try UserMerge.merge(["app": "shop", "from": "bob", "into": "ada"], on: $0) }
        }
        // ada's own plan wins; bob's team fills the gap.
        #expect(try connection.execute("SELECT traits->>'plan', traits->>'team' FROM users WHERE user_id = 'ada'").rows == [["pro", "ops"]])
    }

    /// People already in a rollup and seen again in the tail count once: the reports agree
    /// before and after the tail is folded.
    @Test func peopleInBothTheRollupsAndTheTailCountOnce() throws {
        _ = try AppRegistry.setAttribute(["app": "shop", "name": "price", "type": "number"], on: connection)
        _ = try EventWriter().write(events: Self.stream, on: connection)
        try foldCommittedEvents(on: connection)
        let again: [CanonicalEvent] = [
            Self.event(.track, "purchase", user: "ada", company: "acme", at: "2024-05-04T08:10:00Z", ["price": 3]),
            Self.event(.track, "purchase", user: "dan", company: "acme", at: "2024-05-04T08:20:00Z", ["price": 4]),
            Self.event(.track, "Guide Started", user: "bob", at: "2024-05-04T09:00:00Z", ["guide_id": "7"]),
            Self.event(.track, "Guide Started", user: "carol", at: "2024-05-04T09:30:00Z", ["guide_id": "7"]),
        ]
        _ = try EventWriter().write(events: again, on: connection)
        let tail = try reports()
        // acme: ada (folded and tail) and dan (tail only); guide 7: bob (both) and carol.
        #expect(tail[3].map { [$0[0], $0[2], $0[3]] } == [["acme", 2, 3]])
        #expect(tail[4].map { [$0[1], $0[2], $0[4]] } == [["userguiding", "7", 2]])
        try foldCommittedEvents(on: connection)
        #expect(try reports() == tail)
    }
}
