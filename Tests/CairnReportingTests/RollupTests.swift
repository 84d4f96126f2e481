import CairnCore
import CairnPostgres
import CairnReporting
import CairnTesting
import CairnWire
import Testing

@testable import CairnStorage

/// The rollups behind the fast reports stay exact while identity changes under them: events
/// counted for an anonymous visitor move when the visitor identifies, merged users become
/// one, memberships arriving late re-assign events to companies, and erasure takes
/// everything back out. Every expected number is worked out by hand in the comments.
@Suite struct RollupTests {
    let connection: PostgresConnection
    let writer = EventWriter()

    init() throws {
        connection = try PostgresConnection(conninfo: try TestPostgres.freshDatabase())
        try Schema.migrate(connection)
        _ = try AppRegistry.create(["name": "shop"], on: connection)
    }

    func event(_ name: String, user: String?, anonymous: String? = nil, at: String, _ metadata: JSONObject = [:]) -> CanonicalEvent {
        CanonicalEvent(
            appToken: "shop",
            eventType: .track,
            eventName: name,
            userId: user,
            companyId: nil,
            anonymousId: anonymous,
            source: "web-client",
            insertedAt: Timestamp(parsing: at)!,
            metadata: metadata,
            receivedAt: Timestamp(parsing: at)!,
            origin: .usercom
        )
    }

    func user(_ id: String) -> JSON {
        ["app_token": "shop", "user_id": .string(id), "first_seen": "2024-05-01T00:00:00Z", "last_seen": "2024-05-03T00:00:00Z"]
    }

    func daily() throws -> [[JSON]] {
        try UniquesReport(params: ["app": "shop", "by": "day", "since": "2024-05-01", "until": "2024-05-04"]).run(on: connection).rows
    }

    func weekly() throws -> [[JSON]] {
        try UniquesReport(params: ["app": "shop", "by": "week"]).run(on: connection).rows
    }

    func companies() throws -> [[JSON]] {
        try CompaniesReport(params: ["app": "shop"]).run(on: connection).rows.map { [$0[0], $0[2], $0[3]] }
    }

    func stats() throws -> (count: JSON?, sum: JSON?) {
        let table = try StatsReport(params: ["app": "shop", "event": "purchase", "attr": "price"]).run(on: connection)
        let values = Dictionary(uniqueKeysWithValues: zip(table.columns, table.rows[0]))
        return (values["count"], values["sum"])
    }

    @Test func everyRollupFollowsIdentityAndErasure() throws {
        // Batch 1: device-A browses on May 1st and 2nd; bob buys on May 1st, carol on May 3rd.
        _ = try writer.write(
            events: [
                event("viewed", user: nil, anonymous: "device-A", at: "2024-05-01T08:00:00Z"),
                event("viewed", user: nil, anonymous: "device-A", at: "2024-05-02T08:00:00Z"),
                event("purchase", user: "bob", at: "2024-05-01T09:00:00Z", ["price": 10]),
                event("purchase", user: "carol", at: "2024-05-03T09:00:00Z", ["price": "20"]),
            ],
            users: [user("bob"), user("carol")],
            companies: .array([]),
            on: connection
        )
        // Price is registered after its events arrived: the values are filled in then.
        _ = try AppRegistry.setAttribute(["app": "shop", "name": "price", "type": "number"], on: connection)
        #expect(try stats() == (.int(2), .int(30)))
        // Batch 2: ada signs up on May 2nd and buys for 5; nobody has linked her to device-A yet.
        _ = try writer.write(
            events: [
                event("signed_up", user: "ada", at: "2024-05-02T09:00:00Z"),
                event("purchase", user: "ada", at: "2024-05-02T10:00:00Z", ["price": 5]),
            ],
            users: [user("ada")],
            companies: .array([]),
            on: connection
        )
        // May 1st: device-A, bob; May 2nd: device-A, ada; May 3rd: carol. The week: all four.
        #expect(try daily() == [["2024-05-01", 2], ["2024-05-02", 2], ["2024-05-03", 1]])
        #expect(try weekly() == [["2024-04-29", 4]])
        #expect(try stats() == (.int(3), .int(35)))

        // Batch 3: device-A turns out to be ada. May 2nd is now one person; the week three.
        _ = try writer.write(
            events: [],
            users: .array([]),
            companies: .array([]),
            aliases: [["app_token": "shop", "alias_id": "device-A", "user_id": "ada", "aliased_at": "2024-05-02T09:00:00Z"]],
            on: connection
        )
        #expect(try daily() == [["2024-05-01", 2], ["2024-05-02", 1], ["2024-05-03", 1]])
        #expect(try weekly() == [["2024-04-29", 3]])

        // bob joins acme from May 1st: his purchase counts for acme; carol's does not.
        _ = try writer.write(
            events: [],
            users: .array([]),
            companies: .array([]),
            memberships: [
                [
                    "app_token": "shop", "user_id": "bob", "company_id": "acme",
                    "first_seen": "2024-05-01T00:00:00Z", "last_seen": "2024-05-01T00:00:00Z",
                ]
            ],
            on: connection
        )
        #expect(try companies() == [["acme", 1, 1]])

        // carol merges into bob: May 3rd is still one person, the week two, and acme gains her purchase.
        _ = try UserMerge.merge(["app": "shop", "from": "carol", "into": "bob"], on: connection)
        #expect(try daily() == [["2024-05-01", 2], ["2024-05-02", 1], ["2024-05-03", 1]])
        #expect(try weekly() == [["2024-04-29", 2]])
        #expect(try companies() == [["acme", 1, 2]])

        // Counts by name over a period that starts and ends inside hours: from May 1st 08:30
        // to May 3rd 09:30 holds bob's and carol's and ada's purchases, one view and one signup.
        let counts = try EventsReport(params: ["app": "shop", "since": "2024-05-01T08:30:00Z", "until": "2024-05-03T09:30:00Z"]).run(on: connection)
        #expect(counts.rows.map { [$0[1], $0[2]] } == [["purchase", 3], ["signed_up", 1], ["viewed", 1]])
        // A one-second period inside an hour: only carol's purchase at 09:00:00.
        let second = try EventsReport(params: ["app": "shop", "since": "2024-05-03T09:00:00Z", "until": "2024-05-03T09:00:01Z"]).run(on: connection)
        #expect(second.rows.map { [$0[1], $0[2]] } == [["purchase", 1]])

        // Erasing ada removes her anonymous and signed-in days, events and purchase.
        _ = try UserErasure.delete(["app": "shop", "user": "ada"], on: connection)
        #expect(try daily() == [["2024-05-01", 1], ["2024-05-02", 0], ["2024-05-03", 1]])
        #expect(try weekly() == [["2024-04-29", 1]])
        #expect(try stats() == (.int(2), .int(30)))
        #expect(try companies() == [["acme", 1, 2]])
        let remaining = try EventsReport(params: ["app": "shop"]).run(on: connection)
        #expect(remaining.rows.map { [$0[1], $0[2]] } == [["purchase", 2]])
    }

    @Test func aDuplicateBatchCountsOnce() throws {
        let batch = [event("purchase", user: "bob", at: "2024-05-01T09:00:00Z", ["price": 10])]
        _ = try AppRegistry.setAttribute(["app": "shop", "name": "price", "type": "number"], on: connection)
        for _ in 0..<2 { _ = try writer.write(events: batch, users: [user("bob")], companies: .array([]), on: connection) }
        #expect(try EventsReport(params: ["app": "shop"]).run(on: connection).rows.map { $0[2] } == [1])
        #expect(try weekly() == [["2024-04-29", 1]])
        #expect(try stats() == (.int(1), .int(10)))
    }

    /// A database that held events before the rollups existed gets them filled in by the migration.
    @Test func theMigrationFillsTheRollupsFromExistingEvents() throws {
        let older = try PostgresConnection(conninfo: try TestPostgres.freshDatabase())
        #expect(try Schema.migrate(older, upTo: 7) == 7)
        // As that version created apps (today's registry writes columns that schema lacks).
        try older.execute("INSERT INTO apps (token, name, write_key_hash, personal_data) VALUES ('shop', 'shop', $1, 'hash')", [WriteKey.hash("k")])
        // As that version registered types (today's registry reads columns that schema lacks).
        try older.execute("INSERT INTO app_attributes (app_token, name, type) VALUES ('shop', 'price', 'number')")
        _ = try writer.write(
            events: [
                event("viewed", user: nil, anonymous: "device-A", at: "2024-05-01T08:00:00Z"),
                event("Guide Started", user: nil, anonymous: "device-A", at: "2024-05-01T08:01:00Z", ["guide_id": "7"]),
                event("purchase", user: "ada", at: "2024-05-02T09:00:00Z", ["price": 12]),
            ],
            users: [user("ada")],
            companies: .array([]),
            on: older
        )
        // As the writer of that version stored links (today's also stamps the transaction, which that schema lacks).
        try older.execute(
            """
            INSERT INTO identity_aliases (app_token, alias_kind, alias_id, user_id, aliased_at, reason)
            VALUES ('shop', 'anonymous', 'device-A', 'ada', '2024-05-02T09:00:00Z', 'identify')
            """
        )
        try Schema.migrate(older)
        // ada (as device-A on May 1st, herself on May 2nd): one person each day and in the week.
        let daily = try UniquesReport(params: ["app": "shop", "by": "day", "since": "2024-05-01", "until": "2024-05-03"]).run(on: older)
        #expect(daily.rows == [["2024-05-01", 1], ["2024-05-02", 1]])
        let counts = try EventsReport(params: ["app": "shop"]).run(on: older)
        #expect(counts.rows.map { [$0[1], $0[2]] } == [["Guide Started", 1], ["purchase", 1], ["viewed", 1]])
        let stats = try StatsReport(params: ["app": "shop", "event": "purchase", "attr": "price"]).run(on: older)
        #expect(Dictionary(uniqueKeysWithValues: zip(stats.columns, stats.rows[0]))["sum"] == .int(12))
        // Her anonymous guide start counts for her: seen and started by one person.
        let flows = try EngagementReport(params: ["app": "shop", "entity": "flow"]).run(on: older)
        #expect(flows.rows.map { [$0[1], $0[2], $0[4], $0[5], $0[6]] } == [["userguiding", "7", 1, 1, 0]])
    }

    /// Outside UTC, or over a period that cuts a day, the same questions are answered from
    /// the events themselves; the answers must agree with the rollups where both apply.
    @Test func theRawPathAgreesWithTheRollups() throws {
        _ = try writer.write(
            events: [
                event("viewed", user: "a", at: "2024-05-01T23:30:00Z"),
                event("viewed", user: "b", at: "2024-05-02T00:30:00Z"),
                event("viewed", user: "a", at: "2024-05-02T12:00:00Z"),
            ],
            users: [user("a"), user("b")],
            companies: .array([]),
            on: connection
        )
        // UTC days: May 1st a; May 2nd a and b.
        #expect(try daily() == [["2024-05-01", 1], ["2024-05-02", 2], ["2024-05-03", 0]])
        // Berlin (UTC+2 in May): all three events fall on May 2nd: a and b.
        let berlin = try UniquesReport(params: ["app": "shop", "by": "day", "tz": "Europe/Berlin", "since": "2024-05-02", "until": "2024-05-03"]).run(
            on: connection
        )
        #expect(berlin.rows == [["2024-05-02", 2]])
        // From noon on May 1st (not a day boundary) the raw path counts the partial first day: a.
        let partial = try UniquesReport(params: ["app": "shop", "by": "day", "since": "2024-05-01T12:00:00Z", "until": "2024-05-03T00:00:00Z"]).run(
            on: connection
        )
        #expect(partial.rows == [["2024-05-01", 1], ["2024-05-02", 2]])
        // Hourly buckets in Kolkata (UTC+5:30) cannot come from UTC hours: 23:30Z is 05:00 on May 2nd.
        let kolkata = try EventsReport(params: [
            "app": "shop", "by": "hour", "tz": "Asia/Kolkata", "since": "2024-05-02T05:00:00+05:30", "until": "2024-05-02T07:00:00+05:30",
        ]).run(on: connection)
        #expect(kolkata.rows == [["2024-05-02 05:00", 1], ["2024-05-02 06:00", 1]])
    }
}
