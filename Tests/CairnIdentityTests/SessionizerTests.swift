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
            #expect(Sessionizer().sessions(of: history.points).map { [Int64($0.number), $0.start.microseconds, $0.end.microseconds] }
                    == Sessionizer().sessions(of: SessionHistory(points: all).points).map { [Int64($0.number), $0.start.microseconds, $0.end.microseconds] })
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
