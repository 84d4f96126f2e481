import CairnCore
import CairnIdentity
import Testing

@Suite struct SessionizerTests {
    let base = Timestamp(parsing: "2024-05-01T00:00:00Z")!

    func point(_ minutes: Int64, start: Bool = false) -> Sessionizer.Point {
        Sessionizer.Point(time: Timestamp(microseconds: base.microseconds + minutes * 60_000_000), isSessionStart: start)
    }

    func spans(_ points: [Sessionizer.Point], _ sessionizer: Sessionizer = Sessionizer()) -> [[Int64]] {
        sessionizer.sessions(of: SessionHistory(points: points).points).map {
            [Int64($0.number), ($0.start.microseconds - base.microseconds) / 60_000_000, ($0.end.microseconds - base.microseconds) / 60_000_000]
        }
    }

    @Test func inactivitySplitsSessions() {
        #expect(spans([point(0), point(10), point(40), point(71)]) == [[1, 0, 40], [2, 71, 71]])
        // Exactly 30 minutes apart is still the same session.
        #expect(spans([point(0), point(30)]) == [[1, 0, 30]])
    }

    @Test func aSessionLastsAtMost24Hours() {
        let steady = (0..<(30 * 3)).map { point(Int64($0) * 20) }  // every 20 minutes for 30 hours
        let sessions = spans(steady)
        #expect(sessions.count == 2)
        #expect(sessions[0] == [1, 0, 1420])
        #expect(sessions[1][1] == 1440)
    }

    @Test func sessionStartEventsStartASession() {
        #expect(spans([point(0), point(5), point(6, start: true), point(8)]) == [[1, 0, 5], [2, 6, 8]])
        #expect(spans([point(0, start: true), point(1)]) == [[1, 0, 1]])
    }

    @Test func perAppLimits() {
        let short = Sessionizer(inactivity: .seconds(600), maximumLength: .seconds(3600))
        #expect(spans([point(0), point(11), point(20), point(65)], short) == [[1, 0, 0], [2, 11, 20], [3, 65, 65]])
    }

    @Test func theResultDoesNotDependOnBatchingRedeliveryOrLateArrival() {
        let all = [point(0), point(20), point(45), point(70, start: true), point(71), point(200), point(215), point(2000)]
        let expected = spans(all)
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<50 {
            var history = SessionHistory()
            var remaining = all.shuffled(using: &generator)
            while !remaining.isEmpty {
                let size = Int.random(in: 1...3, using: &generator)
                let chunk = Array(remaining.prefix(size))
                remaining.removeFirst(min(size, remaining.count))
                history.insert(chunk)
                if Bool.random(using: &generator) { history.insert(chunk) }  // redelivered
            }
            #expect(
                Sessionizer().sessions(of: history.points).map { [Int64($0.number), $0.start.microseconds, $0.end.microseconds] }
                    == Sessionizer().sessions(of: SessionHistory(points: all).points).map {
                        [Int64($0.number), $0.start.microseconds, $0.end.microseconds]
                    }
            )
        }
        #expect(expected.count == 4)
    }

    @Test func aLateEventJoinsTheSessionItsTimeFallsIn() {
        var history = SessionHistory(points: [point(0), point(60)])
        #expect(Sessionizer().sessions(of: history.points).count == 2)
        history.insert([point(10)])
        #expect(Sessionizer().sessions(of: history.points).map(\.events) == [2, 1])
        // A late event that bridges the gap makes one session of two.
        history.insert([point(35)])
        #expect(Sessionizer().sessions(of: history.points).map(\.events) == [4])
    }
}

@Suite struct SessionPlanTests {
    func event(_ user: String, _ time: String) -> JSON {
        ["app_token": "acme", "user_id": .string(user), "event_type": "track", "inserted_at": .string(time)]
    }

    /// The context storage would give for a person it has no events of.
    let empty: JSON = ["aliases": [:], "users": [:], "histories": ["u1": []], "inactivity_s": 1800, "max_length_s": 86400]

    /// A person read from the database gets their whole list; once cached, only the sessions
    /// from the first that changed; and nothing when nothing changed.
    @Test func sendsOnlyTheSessionsThatChanged() {
        let cache = SessionCache()
        let first = SessionPlan.compute(
            app: "acme",
            events: [event("u1", "2024-05-01T00:00:00Z"), event("u1", "2024-05-01T02:00:00Z")],
            context: empty,
            cache: cache
        )
        #expect(first.rows.count == 1)
        #expect(first.rows[0]["from"] == nil)
        #expect(first.rows[0]["sessions"]?.arrayValue?.count == 2)
        cache.commit(app: "acme", first.histories, forget: first.forget)

        // Extends the second session: sessions 2 onwards only.
        let second = SessionPlan.compute(app: "acme", events: [event("u1", "2024-05-01T02:10:00Z")], context: empty, cache: cache)
        #expect(second.rows.count == 1)
        #expect(second.rows[0]["from"] == .int(2))
        #expect(second.rows[0]["sessions"] == [[2, "2024-05-01T02:00:00.000000Z", "2024-05-01T02:10:00.000000Z", 2]])
        cache.commit(app: "acme", second.histories, forget: second.forget)

        // A late event that joins the first session renumbers nothing but changes session 1.
        let late = SessionPlan.compute(app: "acme", events: [event("u1", "2024-05-01T00:20:00Z")], context: empty, cache: cache)
        #expect(late.rows[0]["from"] == .int(1))
        #expect(late.rows[0]["sessions"]?.arrayValue?.count == 2)
        cache.commit(app: "acme", late.histories, forget: late.forget)

        // The same event again (a redelivery): nothing to send.
        let again = SessionPlan.compute(app: "acme", events: [event("u1", "2024-05-01T00:20:00Z")], context: empty, cache: cache)
        #expect(again.rows.isEmpty)
    }
}
