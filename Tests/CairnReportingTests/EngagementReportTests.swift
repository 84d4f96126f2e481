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
/// Userlike: widget 1 shown to p1, p2 and p3; p1 and p2 request a chat; p1 chats and rates; p3
/// is offered a chat proactively and takes it.
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
            event(.track, "chat_connected_proactive", "p3", ["widget_id": 1], origin: .userlike),
            event(.track, "chat_started_proactive", "p3", ["widget_id": 1], origin: .userlike),
        ]
        _ = try EventWriter().write(events: events, users: .array([]), companies: .array([]), on: connection)
        return connection
    }

    func rows(_ params: JSON, _ connection: PostgresConnection) throws -> [String: [JSON]] {
        let table = try EngagementReport(params: params).run(on: connection)
        return Dictionary(
            uniqueKeysWithValues: table.rows.map { row in
                (row.prefix(4).map { $0.stringValue ?? "" }.joined(separator: "/"), row)
            }
        )
    }

    @Test func flowsFromEveryToolWithTheirStagesAndRates() throws {
        let connection = try seeded()
        let table = try EngagementReport(params: ["app": "app", "entity": "flow"]).run(on: connection)
        #expect(
            table.columns == [
                "entity", "tool", "id", "part", "seen", "started", "completed", "dismissed", "started_percent", "completed_percent",
                "dismissed_percent",
            ]
        )
        let flows = Dictionary(uniqueKeysWithValues: table.rows.map { ($0[1].stringValue ?? "", $0) })
        // Userpilot flow 7: seen by 3; p1 completed (so started); p2 dismissed.
        #expect(Array(flows["userpilot"]![4...10]) == [3, 1, 1, 1, .double(33.33), .double(33.33), .double(33.33)])
        // UserGuiding guide 7: p4 started and completed, p5 dismissed (its "next" click is not a stage).
        #expect(Array(flows["userguiding"]![4...7]) == [2, 1, 1, 1])
        // Over a period the counts come from the events rather than the rollup, and agree with it.
        let ranged = try EngagementReport(params: ["app": "app", "entity": "flow", "since": "2024-05-01", "until": "2024-05-02"]).run(on: connection)
        #expect(ranged.rows == table.rows)
        // The first three and a half minutes: p1 saw and completed flow 7, p2 only saw it.
        let early = try EngagementReport(params: ["app": "app", "entity": "flow", "until": "2024-05-01T00:03:30Z"]).run(on: connection)
        #expect(early.rows.map { Array($0[1...7]) } == [["userpilot", "7", "", 2, 1, 1, 0]])
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
        // Its experiment events came minutes after the flow's: no experience is linked.
        #expect(
            table.rows == [
                ["9", "A", 2, .double(66.67), 1, .double(50), nil, nil, nil], ["9", "B", 1, .double(33.33), 0, .double(0), nil, nil, nil],
            ]
        )
    }

    @Test func surveyAnswersAndTheChatFunnel() throws {
        let connection = try seeded()
        let answers = try EngagementReport(params: ["app": "app", "entity": "survey", "id": "2"]).run(on: connection)
        #expect(answers.rows == [["Why?", "A", 2, .double(66.67)], ["Why?", "B", 1, .double(33.33)]])
        let chat = try rows(["app": "app", "entity": "chat"], connection)
        // Shown to 3, requested by 2 and proactively started with p3, so 3 started and 2 chatted; rated by 1.
        #expect(Array(chat["chat/userlike/1/"]![4...8]) == [3, 3, 2, 0, 1])
        #expect(throws: ReportError.self) { try EngagementReport(params: ["app": "app", "entity": "flows"]) }
    }
}

/// The Userpilot event schema's own examples and the links it documents: checklist 10 with its
/// tasks 11 and 12 (`parent_id: "checklist_10"`), survey 13 with its modules 49 and 50
/// (`parent_id: "survey_13"`), a task without a parent, and experiment 9 running flow 493
/// ("both `experiment:*` and `experience:*` events are generated").
@Suite struct EngagementLinkTests {
    static let start = Timestamp(parsing: "2024-05-01T00:00:00Z")!

    static func event(_ name: String, _ user: String, _ metadata: JSONObject = [:], at seconds: Int64) -> CanonicalEvent {
        let time = Timestamp(microseconds: start.microseconds + seconds * 1_000_000)
        return CanonicalEvent(
            appToken: "app",
            eventType: .interaction,
            eventName: name,
            userId: user,
            companyId: nil,
            source: "web-client",
            insertedAt: time,
            metadata: metadata,
            receivedAt: time,
            origin: .userpilot
        )
    }

    static var events: [CanonicalEvent] {
        func task(_ id: Int, _ status: String, _ user: String, parent: String = "checklist_10", at seconds: Int64) -> CanonicalEvent {
            event(
                "checklist_task:\(id):\(status)",
                user,
                [
                    "interaction_id": .string("checklist_task_\(id)"), "is_dismissed": status == "DISMISSED" ? "1" : "0",
                    "parent_id": .string(parent), "status": .string(status),
                ],
                at: seconds
            )
        }
        func module(_ id: Int, _ status: String, _ user: String, question: String, feedback: String?, at seconds: Int64) -> CanonicalEvent {
            var attributes: JSONObject = [
                "interaction_id": .string("survey_module_\(id)"), "is_dismissed": status == "DISMISSED" ? "1" : "0", "parent_id": "survey_13",
                "status": .string(status), "survey_question": .string(question), "variant": "multiple_choice",
            ]
            if let feedback { attributes["feedback"] = .string(feedback) }
            return event("survey_module:\(id):\(status)", user, attributes, at: seconds)
        }
        let checklist: JSONObject = ["interaction_id": "checklist_10", "is_dismissed": "", "parent_id": "", "status": "SEEN"]
        return [
            event("checklist:10:SEEN", "q1", checklist, at: 10), task(11, "SEEN", "q1", at: 20), task(11, "COMPLETED", "q1", at: 30),
            task(12, "COMPLETED", "q1", at: 40), event("checklist:10:COMPLETED", "q1", at: 50),
            event("checklist:10:SEEN", "q2", checklist, at: 60), task(11, "DISMISSED", "q2", at: 70),
            task(12, "SEEN", "q3", at: 80),
            task(99, "COMPLETED", "q4", parent: "", at: 90),
            module(49, "COMPLETED", "q1", question: "How did you hear about us?", feedback: "Friend", at: 100),
            // The schema's own example leaves the question empty.
            module(50, "COMPLETED", "q1", question: "", feedback: "no", at: 110),
            module(49, "COMPLETED", "q2", question: "How did you hear about us?", feedback: "Ad", at: 120),
            module(50, "DISMISSED", "q2", question: "", feedback: nil, at: 130),
            module(49, "SEEN", "q3", question: "How did you hear about us?", feedback: nil, at: 140),
            event("experience_step:12:COMPLETED", "q4", ["interaction_id": "experience_step_12", "status": "COMPLETED"], at: 150),
            event("experiment:9:SEEN", "q1", ["interaction_id": "experiment_9", "variant": "B", "status": "SEEN"], at: 200),
            event("experience:493:SEEN", "q1", ["interaction_id": "experience_493", "status": "SEEN"], at: 200),
            event("experience:493:COMPLETED", "q1", ["interaction_id": "experience_493", "status": "COMPLETED"], at: 260),
            event("experiment:9:SEEN", "q2", ["interaction_id": "experiment_9", "variant": "A", "status": "SEEN"], at: 300),
            event("experience:493:SEEN", "q2", ["interaction_id": "experience_493", "status": "SEEN"], at: 301),
            event(
                "experience:493:DISMISSED",
                "q2",
                ["interaction_id": "experience_493", "is_dismissed": "1", "status": "DISMISSED", "total_dismissed": "1"],
                at: 330
            ),
            event("experiment:9:SEEN", "q3", ["interaction_id": "experiment_9", "variant": "B", "status": "SEEN"], at: 400),
            // Another flow, minutes later: not the experiment's.
            event("experience:7:SEEN", "q3", ["interaction_id": "experience_7", "status": "SEEN"], at: 700),
        ]
    }

    func seeded() throws -> PostgresConnection {
        let connection = try PostgresConnection(conninfo: try TestPostgres.freshDatabase())
        try Schema.migrate(connection)
        _ = try AppRegistry.create(["name": "app"], on: connection)
        _ = try EventWriter().write(events: Self.events, users: .array([]), companies: .array([]), on: connection)
        return connection
    }

    /// Rows keyed `tool/id/part`, each its seen, started, completed and dismissed people.
    func stages(_ params: JSON, _ connection: PostgresConnection) throws -> [String: [JSON]] {
        let table = try EngagementReport(params: params).run(on: connection)
        #expect(Array(table.columns.prefix(8)) == ["entity", "tool", "id", "part", "seen", "started", "completed", "dismissed"])
        return Dictionary(
            uniqueKeysWithValues: table.rows.map { row in (row[1...3].map { $0.stringValue ?? "" }.joined(separator: "/"), Array(row[4...7])) }
        )
    }

    @Test func checklistTasksRollUpUnderTheirChecklist() throws {
        let connection = try seeded()
        let checklists = try stages(["app": "app", "entity": "checklist"], connection)
        // Checklist 10 as a whole: seen by q1, q2 and q3 (q3 only through task 12); started by q1
        // (tasks completed); completed by q1's own event; a dismissed task does not dismiss it.
        #expect(checklists["userpilot/10/"] == [3, 1, 1, 0], "\(checklists)")
        #expect(checklists["userpilot/10/checklist_task:11"] == [2, 1, 1, 1])
        #expect(checklists["userpilot/10/checklist_task:12"] == [2, 1, 1, 0])
        // A task without a parent stands alone, under a name no checklist can have.
        #expect(checklists["userpilot/checklist_task:99/"] == [1, 1, 1, 0])
        #expect(checklists.keys.allSatisfy { !$0.hasPrefix("userpilot/11/") && !$0.hasPrefix("userpilot/12/") }, "\(checklists.keys.sorted())")
        #expect(checklists.count == 4)
        // Over a period the events say the same.
        #expect(try stages(["app": "app", "entity": "checklist", "since": "2024-05-01", "until": "2024-05-02"], connection) == checklists)
        // One id: the checklist and its tasks.
        #expect(try stages(["app": "app", "entity": "checklist", "id": "10"], connection).count == 3)
    }

    @Test func surveyModulesRollUpUnderTheirSurvey() throws {
        let connection = try seeded()
        let surveys = try stages(["app": "app", "entity": "survey"], connection)
        // Survey 13: seen by 3, started by q1 and q2; completed by q1 alone, who completed both
        // modules; dismissed by q2, who dismissed module 50.
        #expect(surveys["userpilot/13/"] == [3, 2, 1, 1], "\(surveys)")
        #expect(surveys["userpilot/13/survey_module:49"] == [3, 2, 2, 0])
        #expect(surveys["userpilot/13/survey_module:50"] == [2, 1, 1, 1])
        #expect(surveys.count == 3)
        #expect(try stages(["app": "app", "entity": "survey", "since": "2024-05-01", "until": "2024-05-02"], connection) == surveys)
        // Its answers, question by question (by module where the question is empty), across its modules.
        let answers = try EngagementReport(params: ["app": "app", "entity": "survey", "id": "13"]).run(on: connection)
        #expect(
            answers.rows == [
                ["How did you hear about us?", "Ad", 1, .double(50)], ["How did you hear about us?", "Friend", 1, .double(50)],
                ["survey_module:50", "no", 1, .double(100)],
            ],
            "\(answers.rows)"
        )
    }

    @Test func anExperimentShowsTheFlowItRan() throws {
        let connection = try seeded()
        let table = try EngagementReport(params: ["app": "app", "entity": "experiment"]).run(on: connection)
        #expect(Array(table.columns.suffix(3)) == ["experience", "experience_completed", "experience_completed_percent"])
        // Variant A: q2, who dismissed flow 493. Variant B: q1, who completed it, and q3, whose
        // only flow came minutes later.
        #expect(
            table.rows == [
                ["9", "A", 1, .double(33.33), 0, .double(0), "493", 0, .double(0)],
                ["9", "B", 2, .double(66.67), 0, .double(0), "493", 1, .double(50)],
            ],
            "\(table.rows)"
        )
        let one = try EngagementReport(params: ["app": "app", "entity": "experiment", "id": "9", "since": "2024-05-01", "until": "2024-05-02"])
            .run(on: connection)
        #expect(one.rows == table.rows)
    }

    /// Hostile parents: a bare prefix is no parent, and an id with its part too long for the
    /// rollup's key is left out of the reports instead of stopping the fold.
    @Test func oddParentsAndLongIds() throws {
        let connection = try seeded()
        let long = String(repeating: "x", count: 990)
        let events = [
            Self.event("checklist_task:22:COMPLETED", "b1", ["parent_id": "checklist_"], at: 900),
            Self.event("checklist_task:\(long):SEEN", String(repeating: "u", count: 1000), ["parent_id": .string("checklist_" + long)], at: 901),
        ]
        _ = try EventWriter().write(events: events, users: .array([]), companies: .array([]), on: connection)
        let checklists = try stages(["app": "app", "entity": "checklist"], connection)
        #expect(checklists["userpilot/checklist_task:22/"] == [1, 1, 1, 0], "\(checklists)")
        #expect(!checklists.keys.contains { $0.contains("/checklist_task:22/checklist_task") || $0.contains(long) }, "\(checklists.keys.sorted())")
        #expect(try stages(["app": "app", "entity": "checklist", "since": "2024-05-01", "until": "2024-05-02"], connection) == checklists)
    }

    /// A flow step names no flow: it is an entity of its own, never flow 12.
    @Test func flowStepsAreNotFlows() throws {
        let connection = try seeded()
        let flows = try stages(["app": "app", "entity": "flow"], connection)
        #expect(flows["userpilot/experience_step:12/"] == [1, 1, 1, 0], "\(flows)")
        #expect(flows["userpilot/493/"] == [2, 1, 1, 1] && flows["userpilot/7/"] == [1, 0, 0, 0], "\(flows)")
        #expect(flows["userpilot/12/"] == nil && flows.count == 3)
    }

    /// The classifier's SQL reads parents as the catalog names them.
    @Test func theClassifierFollowsTheCatalogsParts() throws {
        let connection = try PostgresConnection(conninfo: try TestPostgres.freshDatabase())
        try Schema.migrate(connection)
        for (prefix, parent) in EngagementCatalog.userpilotParts {
            let entity = EngagementCatalog.userpilotPrefixes.first { $0.prefix == prefix }?.entity.rawValue
            let row = try connection.execute(
                """
                SELECT cairn_engagement_id($1, 'interaction', $2, $3::jsonb) AS id, cairn_engagement_part('interaction', $2, $3::jsonb) AS part,
                       cairn_engagement_id($1, 'interaction', $2, '{"parent_id": ""}') AS alone
                """,
                [entity, prefix + ":5:SEEN", #"{"parent_id": "\#(parent)_7"}"#]
            ).firstRow
            #expect(row?["id"] == "7" && row?["part"] == prefix + ":5" && row?["alone"] == prefix + ":5", "\(prefix)")
        }
    }

    /// A database that folded checklist tasks as checklists before version 19 is derived again.
    @Test func theUpgradeDerivesTheRollupAgain() throws {
        let connection = try PostgresConnection(conninfo: try TestPostgres.freshDatabase())
        #expect(try Schema.migrate(connection, upTo: 18) == 18)
        _ = try AppRegistry.create(["name": "app"], on: connection)
        // Stored as version 18 stored them (its writer folds with version 19's rollup).
        try connection.execute(
            "CREATE TABLE events_y2024m05 PARTITION OF events FOR VALUES FROM ('2024-05-01T00:00:00Z') TO ('2024-06-01T00:00:00Z')"
        )
        for (index, event) in Self.events.enumerated() {
            try connection.execute(
                """
                INSERT INTO events (app_token, inserted_at, internal_event_id, event_type, event_name, user_id, source, metadata, received_at, origin)
                VALUES ('app', $1::timestamptz, $2::bigint, 'interaction', $3, $4, 'web-client', $5::jsonb, $1::timestamptz, 'userpilot')
                """,
                [event.insertedAt.description, String(index + 1), event.eventName, event.userId, JSON.object(event.metadata).serializedString()]
            )
        }
        // What version 18's fold stored: task 11 as checklist 11.
        try connection.execute(
            """
            INSERT INTO rollup_engagement_people (app_token, entity, tool, id, stage, person)
            VALUES ('app', 'checklist', 'userpilot', '11', 'seen', 'q1'), ('app', 'checklist', 'userpilot', '10', 'seen', 'q1'),
                   ('app', 'flow', 'userpilot', '12', 'seen', 'q4'), ('app', 'flow', 'userguiding', '7', 'seen', 'q1')
            """
        )
        #expect(try Schema.migrate(connection) == Schema.migrations.count)
        let rows = try connection.execute(
            "SELECT entity, id, part, count(*) FROM rollup_engagement_people GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
        ).rows.map { $0.map { $0 ?? "" } }
        #expect(!rows.contains { $0[0] == "checklist" && $0[1] == "11" }, "\(rows)")
        #expect(rows.contains { $0[0] == "checklist" && $0[1] == "10" && $0[2] == "checklist_task:11" }, "\(rows)")
        #expect(rows.contains { $0[0] == "survey" && $0[1] == "13" && $0[2] == "survey_module:49" }, "\(rows)")
        // Flow step 12 was flow 12; UserGuiding's rows are left as they were.
        #expect(!rows.contains { $0[0] == "flow" && $0[1] == "12" } && rows.contains { $0 == ["flow", "experience_step:12", "", "3"] }, "\(rows)")
        #expect(rows.contains { $0 == ["flow", "7", "", "2"] }, "\(rows)")
    }
}
