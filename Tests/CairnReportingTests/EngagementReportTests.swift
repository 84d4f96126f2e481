import CairnCore
import CairnPostgres
import CairnReporting
import CairnTesting
import CairnWire
import Testing

@testable import CairnStorage

/// Userpilot: p1 sees and completes experience 7, p2 sees and dismisses it, p3 only sees it;
/// experiment 9 shows variant A to p1 and p2 (p1 completes) and B to p3.
/// UserGuiding: p4 starts and completes guide 7 (another tool's flow 7), p5 dismisses it.
/// NPS: p1 answers 9 then 6 (latest counts), p2 answers 10, p3 answers 7, p4 answers 3 in UserGuiding.
/// Userlike: widget 1 shown to p1, p2 and p3; p1 and p2 request a chat; p1 chats and rates.
@Suite struct EngagementReportTests {
    func seeded() throws -> PostgresConnection {
        let connection = try PostgresConnection(conninfo: try TestPostgres.freshDatabase())
        try Schema.migrate(connection)
        _ = try AppRegistry.create(["name": "app"], on: connection)
        var minute: Int64 = 0
        func event(
            _ type: EventType,
            _ name: String,
            _ user: String,
            _ metadata: JSONObject = [:],
            origin: InputFormat = .userpilot
        ) -> CanonicalEvent {
            minute += 1
            let time = Timestamp(microseconds: Timestamp(parsing: "2024-05-01T00:00:00Z")!.microseconds + minute * 60_000_000)
            return CanonicalEvent(
                appToken: "app",
                eventType: type,
                eventName: name,
                userId: user,
                companyId: nil,
                source: "web-client",
                insertedAt: time,
                metadata: metadata,
                receivedAt: time,
                origin: origin
            )
        }
        let events = [
            event(.interaction, "experience:7:SEEN", "p1"), event(.interaction, "experience:7:COMPLETED", "p1"),
            event(.interaction, "experience:7:SEEN", "p2"), event(.interaction, "experience:7:DISMISSED", "p2"),
            event(.interaction, "experience:7:SEEN", "p3"),
            event(.interaction, "experiment:9:SEEN", "p1", ["variant": "A"]), event(.interaction, "experiment:9:COMPLETED", "p1", ["variant": "A"]),
            event(.interaction, "experiment:9:SEEN", "p2", ["variant": "A"]), event(.interaction, "experiment:9:SEEN", "p3", ["variant": "B"]),
            event(.track, "Guide Started", "p4", ["guide_id": "7"], origin: .userguiding),
            event(.track, "Guide Completed", "p4", ["guide_id": "7"], origin: .userguiding),
            event(.track, "Guide Button Click", "p5", ["guide_id": "7", "action": "dismiss-guide"], origin: .userguiding),
            event(.track, "Guide Button Click", "p5", ["guide_id": "7", "action": "next"], origin: .userguiding),
            event(.interaction, "nps:1:SUBMITTED_SCORE", "p1", ["score": "9"]), event(.interaction, "nps:1:SUBMITTED_SCORE", "p1", ["score": "6"]),
            event(.interaction, "nps:1:SUBMITTED_SCORE", "p2", ["score": "10"]),
            event(.interaction, "nps:1:SUBMITTED_FEEDBACK", "p3", ["score": "7"]),
            event(.track, "Survey Question Answer", "p4", ["survey_id": "1", "question_type": "NPS Rating", "score": 3], origin: .userguiding),
            event(
                .track,
                "Survey Question Answer",
                "p5",
                ["survey_id": "2", "question_type": "Multiple Choice", "survey_question": "Why?", "choices": "A"],
                origin: .userguiding
            ),
            event(
                .track,
                "Survey Question Answer",
                "p4",
                ["survey_id": "2", "question_type": "Multiple Choice", "survey_question": "Why?", "choices": "A"],
                origin: .userguiding
            ),
            event(
                .track,
                "Survey Question Answer",
                "p3",
                ["survey_id": "2", "question_type": "Multiple Choice", "survey_question": "Why?", "choices": "B"],
                origin: .userguiding
            ),
            event(.track, "button_displayed", "p1", ["widget_id": 1], origin: .userlike),
            event(.track, "button_displayed", "p2", ["widget_id": 1], origin: .userlike),
            event(.track, "button_displayed", "p3", ["widget_id": 1], origin: .userlike),
            event(.track, "chat_requested", "p1", ["widget_id": 1], origin: .userlike),
            event(.track, "chat_requested", "p2", ["widget_id": 1], origin: .userlike),
            event(.track, "chat_started", "p1", ["widget_id": 1], origin: .userlike),
            event(.track, "rating_submit", "p1", ["widget_id": 1], origin: .userlike),
        ]
        _ = try EventWriter().write(events: events, users: .array([]), companies: .array([]), on: connection)
        return connection
    }

    func rows(_ params: JSON, _ connection: PostgresConnection) throws -> [String: [JSON]] {
        let table = try EngagementReport(params: params).run(on: connection)
        return Dictionary(
            uniqueKeysWithValues: table.rows.map { row in
                (row.prefix(3).map { $0.stringValue ?? "" }.joined(separator: "/"), row)
            }
        )
    }

    @Test func flowsFromEveryToolWithTheirStagesAndRates() throws {
        let connection = try seeded()
        let table = try EngagementReport(params: ["app": "app", "entity": "flow"]).run(on: connection)
        #expect(
            table.columns == [
                "entity", "tool", "id", "seen", "started", "completed", "dismissed", "started_percent", "completed_percent", "dismissed_percent",
            ]
        )
        let flows = Dictionary(uniqueKeysWithValues: table.rows.map { ($0[1].stringValue ?? "", $0) })
        // Userpilot flow 7: seen by 3; p1 completed (so started); p2 dismissed.
        #expect(Array(flows["userpilot"]![3...9]) == [3, 1, 1, 1, .double(33.33), .double(33.33), .double(33.33)])
        // UserGuiding guide 7: p4 started and completed, p5 dismissed (its "next" click is not a stage).
        #expect(Array(flows["userguiding"]![3...6]) == [2, 1, 1, 1])
        // Over a period the counts come from the events rather than the rollup, and agree with it.
        let ranged = try EngagementReport(params: ["app": "app", "entity": "flow", "since": "2024-05-01", "until": "2024-05-02"]).run(on: connection)
        #expect(ranged.rows == table.rows)
        // The first three and a half minutes: p1 saw and completed flow 7, p2 only saw it.
        let early = try EngagementReport(params: ["app": "app", "entity": "flow", "until": "2024-05-01T00:03:30Z"]).run(on: connection)
        #expect(early.rows.map { Array($0[1...6]) } == [["userpilot", "7", 2, 1, 1, 0]])
    }

    @Test func npsFromEachPersonsLatestAnswer() throws {
        let connection = try seeded()
        let table = try EngagementReport(params: ["app": "app", "entity": "nps"]).run(on: connection)
        // Userpilot nps 1: p1's latest is 6 (detractor), p2 10 (promoter), p3 7 (passive) → 33 − 33 = 0.
        #expect(table.rows.first { $0[0] == "userpilot" } == ["userpilot", "1", 3, 1, 1, 1, 0])
        // UserGuiding survey 1 (an NPS question): p4 answered 3 → −100.
        #expect(table.rows.first { $0[0] == "userguiding" } == ["userguiding", "1", 1, 0, 0, 1, -100])
    }

    @Test func experimentsSplitByVariantWithCompletion() throws {
        let connection = try seeded()
        let table = try EngagementReport(params: ["app": "app", "entity": "experiment"]).run(on: connection)
        #expect(table.rows == [["9", "A", 2, .double(66.67), 1, .double(50)], ["9", "B", 1, .double(33.33), 0, .double(0)]])
    }

    @Test func surveyAnswersAndTheChatFunnel() throws {
        let connection = try seeded()
        let answers = try EngagementReport(params: ["app": "app", "entity": "survey", "id": "2"]).run(on: connection)
        #expect(answers.rows == [["Why?", "A", 2, .double(66.67)], ["Why?", "B", 1, .double(33.33)]])
        let chat = try rows(["app": "app", "entity": "chat"], connection)
        // Shown to 3, requested by 2, started by 1, rated by 1.
        #expect(Array(chat["chat/userlike/1"]![3...7]) == [3, 2, 1, 0, 1])
        #expect(throws: ReportError.self) { try EngagementReport(params: ["app": "app", "entity": "flows"]) }
    }
}
