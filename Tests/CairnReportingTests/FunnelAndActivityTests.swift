import CairnCore
import CairnPostgres
import CairnReporting
import CairnTesting
import CairnWire
import Testing

@testable import CairnStorage

/// ada: views anonymously, signs up (identified), buys 2 hours later.
/// bob: views, signs up 8 days later (outside a 7-day window), buys.
/// carol: signs up, then views (wrong order), never buys.
/// dan: views twice, nothing else.
@Suite struct FunnelAndActivityTests {
    func seeded() throws -> PostgresConnection {
        let connection = try PostgresConnection(conninfo: try TestPostgres.freshDatabase())
        try Schema.migrate(connection)
        _ = try AppRegistry.create(["name": "shop"], on: connection)
        func event(_ name: String, _ user: String?, _ at: String, anonymous: String? = nil, company: String? = nil) -> CanonicalEvent {
            CanonicalEvent(
                appToken: "shop",
                eventType: .track,
                eventName: name,
                userId: user,
                companyId: company,
                anonymousId: anonymous,
                source: "web-client",
                insertedAt: Timestamp(parsing: at)!,
                receivedAt: Timestamp(parsing: at)!,
                origin: .segment
            )
        }
        let events = [
            event("viewed", nil, "2024-05-01T08:00:00Z", anonymous: "device-A"),
            event("signed_up", "ada", "2024-05-01T08:10:00Z", anonymous: "device-A", company: "acme"),
            event("purchase", "ada", "2024-05-01T10:10:00Z"),
            event("viewed", "bob", "2024-05-01T09:00:00Z", company: "acme"),
            event("signed_up", "bob", "2024-05-09T09:00:00Z"),
            event("purchase", "bob", "2024-05-09T10:00:00Z"),
            event("signed_up", "carol", "2024-05-02T09:00:00Z", company: "globex"),
            event("viewed", "carol", "2024-05-02T09:30:00Z"),
            event("viewed", "dan", "2024-05-03T09:00:00Z"),
            event("viewed", "dan", "2024-05-03T09:01:00Z"),
        ]
        let users: JSON = .array(
            ["ada", "bob", "carol", "dan"].map { user in
                [
                    "app_token": "shop", "user_id": .string(user), "first_seen": "2024-05-01T00:00:00Z", "last_seen": "2024-05-10T00:00:00Z",
                    "traits": ["plan": .string(user == "ada" || user == "bob" ? "pro" : "free")], "trait_times": ["plan": "2024-05-01T00:00:00Z"],
                ]
            }
        )
        let memberships: JSON = [
            ["app_token": "shop", "user_id": "ada", "company_id": "acme", "first_seen": "2024-05-01T08:10:00Z", "last_seen": "2024-05-01T08:10:00Z"],
            ["app_token": "shop", "user_id": "bob", "company_id": "acme", "first_seen": "2024-05-01T09:00:00Z", "last_seen": "2024-05-01T09:00:00Z"],
            [
                "app_token": "shop", "user_id": "carol", "company_id": "globex", "first_seen": "2024-05-02T09:00:00Z",
                "last_seen": "2024-05-02T09:00:00Z",
            ],
        ]
        let sessions: JSON = [
            [
                "app_token": "shop", "person": "ada",
                "sessions": [[1, "2024-05-01T08:00:00Z", "2024-05-01T08:10:00Z", 2], [2, "2024-05-01T10:10:00Z", "2024-05-01T10:10:00Z", 1]],
            ],
            ["app_token": "shop", "person": "dan", "sessions": [[1, "2024-05-03T09:00:00Z", "2024-05-03T09:01:00Z", 2]]],
        ]
        _ = try EventWriter().write(
            events: events,
            users: users,
            companies: [
                [
                    "app_token": "shop", "company_id": "acme", "first_seen": "2024-05-01T00:00:00Z", "last_seen": "2024-05-01T00:00:00Z",
                    "traits": ["name": "Acme"], "trait_times": ["name": "2024-05-01T00:00:00Z"],
                ]
            ],
            memberships: memberships,
            aliases: [["app_token": "shop", "alias_id": "device-A", "user_id": "ada", "aliased_at": "2024-05-01T08:10:00Z"]],
            sessions: sessions,
            on: connection
        )
        return connection
    }

    @Test func funnelIsStrictCountsEachPersonOnceAndCrossesIdentification() throws {
        let connection = try seeded()
        let funnel = try FunnelReport(params: ["app": "shop", "steps": ["viewed", "signed_up", "purchase"]]).run(on: connection)
        // viewed: ada (anonymously), bob, carol, dan = 4. signed_up after viewed: ada, bob = 2
        // (carol signed up before she viewed). purchase after that: ada, bob = 2.
        #expect(funnel.rows.map { $0[2] } == [.int(4), .int(2), .int(2)])
        #expect(funnel.rows.map { $0[3] } == [.double(100), .double(50), .double(50)])
        #expect(funnel.rows.map { $0[4] } == [.int(0), .int(2), .int(0)])
        // Median from viewed to signed_up: ada 10 min, bob 8 days → (600 + 691200) / 2.
        #expect(funnel.rows[1][5] == .double((600 + 691_200) / 2))
        let week = try FunnelReport(params: ["app": "shop", "steps": ["viewed", "signed_up", "purchase"], "within": "7d"]).run(on: connection)
        #expect(week.rows.map { $0[2] } == [.int(4), .int(1), .int(1)])
        let byPlan = try FunnelReport(params: ["app": "shop", "steps": ["viewed", "signed_up"], "by_trait": "plan"]).run(on: connection)
        #expect(byPlan.columns.first == "plan")
        #expect(byPlan.rows.map { [$0[0], $0[3]] } == [["free", .int(2)], ["free", .int(0)], ["pro", .int(2)], ["pro", .int(2)]])
        #expect(throws: ReportError.self) { try FunnelReport(params: ["app": "shop", "steps": ["viewed"]]) }
    }

    @Test func sessionsSummarise() throws {
        let connection = try seeded()
        let sessions = try SessionsReport(params: ["app": "shop"]).run(on: connection)
        // Three sessions of 600 s, 0 s and 60 s; 2, 1 and 2 events; one bounce of three.
        let row = Dictionary(uniqueKeysWithValues: zip(sessions.columns, sessions.rows[0]))
        #expect(row["sessions"] == .int(3))
        #expect(row["people"] == .int(2))
        #expect(row["median_seconds"] == .int(60))
        #expect(row["bounce_rate_percent"] == .double(33.33))
        let empty = try SessionsReport(params: ["app": "shop", "since": "2023-01-01", "until": "2023-02-01"]).run(on: connection)
        #expect(empty.rows[0][0] == .int(0))
    }

    @Test func companiesCountPeopleByTheirCompanyAtEachEvent() throws {
        let connection = try seeded()
        let companies = try CompaniesReport(params: ["app": "shop"]).run(on: connection)
        // acme: ada (sign-up, then her purchase as of that time) and bob (all his events) → 2 people, 5 events.
        // globex: carol's two events. dan has no company.
        #expect(companies.rows == [["acme", "Acme", 2, 5], ["globex", nil, 1, 2]])
    }
}

extension FunnelAndActivityTests {
    @Test func retentionCohortsByFirstStartAndCountsReturnsPerDay() throws {
        let connection = try seeded()
        // Cohorts by first "viewed": May 1st (ada via device-A, bob), May 2nd (carol), May 3rd (dan).
        // Returns ("purchase"): ada on May 1st (period 0); bob on May 9th (period 8).
        let table = try RetentionReport(params: ["app": "shop", "start_event": "viewed", "return_event": "purchase", "by": "day", "periods": 8]).run(
            on: connection
        )
        #expect(table.rows.map { $0[0] } == ["2024-05-01", "2024-05-02", "2024-05-03"])
        #expect(table.rows.map { $0[1] } == [2, 1, 1])
        let first = Dictionary(uniqueKeysWithValues: zip(table.columns, table.rows[0]))
        #expect(first["period_0"] == .int(1))
        #expect(first["period_0_percent"] == .double(50))
        #expect(first["period_1"] == .int(0))
        #expect(first["period_8"] == .int(1))
        let weekly = try RetentionReport(params: ["app": "shop", "start_event": "viewed", "return_event": "purchase", "by": "week", "periods": 2])
            .run(on: connection)
        // All four started in the week of April 29th; ada returned that week, bob the next.
        #expect(weekly.rows.map { Array($0.prefix(6)) } == [["2024-04-29", 4, 1, .double(25), 1, .double(25)]])
    }
}

@Suite struct UsersReportTests {
    /// From PeopleReportsTests' shop: bob buys 3 times (price 10, "30.5", 20; items 1, 3, 2),
    /// carol once (price "free"); ada views anonymously and signs up.
    func shop() throws -> PostgresConnection { try PeopleReportsTests().seeded() }

    func people(_ params: JSON, on connection: PostgresConnection) throws -> [JSON] {
        try UsersReport(params: params).run(on: connection).rows.map { $0[0] }
    }

    @Test func filtersOnEventsTheirAttributesAndTheirCounts() throws {
        let connection = try shop()
        #expect(try people(["app": "shop", "did": "purchase"], on: connection) == ["bob", "carol"])
        #expect(try people(["app": "shop", "did": "purchase", "times": ">2"], on: connection) == ["bob"])
        #expect(try people(["app": "shop", "did": "purchase", "times": "1"], on: connection) == ["carol"])
        let rows = try UsersReport(params: ["app": "shop", "did": "purchase", "where": "price > 15"]).run(on: connection).rows
        // 30.5 (a numeric string) and 20 count; 10 does not; "free" is not a number.
        #expect(rows.map { [$0[0], $0[1]] } == [["bob", 2]])
        #expect(try people(["app": "shop", "did": "purchase", "where": "price > 15 and items >= 3"], on: connection) == ["bob"])
        #expect(try people(["app": "shop", "did": "purchase", "where": "price > 150"], on: connection) == [])
        #expect(try people(["app": "shop", "did": "viewed", "not_did": ["purchase"]], on: connection) == ["ada"])
        #expect(try people(["app": "shop", "did": "purchase", "since": "2024-05-02"], on: connection) == ["bob", "carol"])
    }

    @Test func filtersOnTraits() throws {
        let connection = try FunnelAndActivityTests().seeded()
        #expect(try people(["app": "shop", "did": "viewed", "traits": ["plan = 'pro'"]], on: connection) == ["ada", "bob"])
        #expect(try people(["app": "shop", "traits": ["plan in ('free')"]], on: connection) == ["carol", "dan"])
        // ada and bob both have three events (ada's anonymous view included): ties go by name.
        #expect(try people(["app": "shop", "traits": ["not plan = 'free'"]], on: connection) == ["ada", "bob"])
    }

    @Test func unknownNamesAndBadOptionsAreClear() throws {
        let connection = try shop()
        func message(_ params: JSON) -> String? {
            do {
                _ = try UsersReport(params: params).run(on: connection)
                return nil
            } catch {
                return (error as? RPCError)?.message ?? cliWording(error)
            }
        }
        #expect(message(["app": "shop", "did": "purchse"])?.contains("did you mean 'purchase'?") == true)
        #expect(message(["app": "shop", "did": "purchase", "where": "prize > 1"])?.contains("did you mean 'price'?") == true)
        #expect(message(["app": "shop", "did": "purchase", "times": "lots"])?.contains("--times expects a count") == true)
        #expect(message(["app": "shop"])?.contains("--did or traits must be given") == true)
    }
}

extension FunnelAndActivityTests {
    /// `--source sender`: the events' own session ids, per person. ada's session "1" starts on
    /// her anonymous device and goes on once she is known (one session, not two); the same id
    /// for another person is another session; events without an id are in none.
    @Test func senderSessionsGroupEachPersonsEventsByTheirOwnSessionId() throws {
        let connection = try PostgresConnection(conninfo: try TestPostgres.freshDatabase())
        try Schema.migrate(connection)
        _ = try AppRegistry.create(["name": "shop"], on: connection)
        func event(_ name: String, _ user: String?, _ at: String, session: String?, anonymous: String? = nil) -> CanonicalEvent {
            CanonicalEvent(
                appToken: "shop",
                eventType: .track,
                eventName: name,
                userId: user,
                companyId: nil,
                anonymousId: anonymous,
                source: "web-client",
                insertedAt: Timestamp(parsing: at)!,
                session: session,
                receivedAt: Timestamp(parsing: at)!,
                origin: .userpilot
            )
        }
        let events = [
            event("viewed", nil, "2024-05-01T08:00:00Z", session: "1", anonymous: "device-A"),
            event("signed_up", "ada", "2024-05-01T08:05:00Z", session: "1", anonymous: "device-A"),
            event("purchase", "ada", "2024-05-01T08:20:00Z", session: "1"),
            // Two hours idle: the server would start a new session; the sender says it is still "1".
            event("purchase", "ada", "2024-05-01T10:20:00Z", session: "1"),
            event("viewed", "ada", "2024-05-02T09:00:00Z", session: "2"),
            event("viewed", "bob", "2024-05-01T09:00:00Z", session: "1"),
            event("viewed", "bob", "2024-05-01T09:00:30Z", session: nil),
            event("viewed", "carol", "2024-05-03T09:00:00Z", session: ""),
        ]
        _ = try EventWriter().write(
            events: events,
            users: [],
            companies: [],
            memberships: [],
            aliases: [["app_token": "shop", "alias_id": "device-A", "user_id": "ada", "aliased_at": "2024-05-01T08:05:00Z"]],
            sessions: [],
            on: connection
        )
        func row(_ params: JSON) throws -> [String: JSON] {
            let table = try SessionsReport(params: params).run(on: connection)
            return Dictionary(uniqueKeysWithValues: zip(table.columns, table.rows[0]))
        }
        // ada "1": 08:00 to 10:20 (8400 s, 4 events); ada "2": one event; bob "1": one event.
        let all = try row(["app": "shop", "source": "sender"])
        #expect(all["sessions"] == .int(3), "\(all)")
        #expect(all["people"] == .int(2))
        #expect(all["median_seconds"] == .int(0))
        #expect(all["p90_seconds"]?.doubleValue == 0.8 * 8400, "\(all)")
        #expect(all["events_per_session"] == .double(2), "\(all)")
        #expect(all["bounce_rate_percent"] == .double(66.67))
        // A session belongs to the period it starts in: ada's "1" started before May 1st 09:00.
        let later = try row(["app": "shop", "source": "sender", "since": "2024-05-01T09:00:00Z", "until": "2024-05-03T00:00:00Z"])
        #expect(later["sessions"] == .int(2), "\(later)")
        #expect(later["events_per_session"] == .double(1), "\(later)")
        // A period that ends before a session's last event still counts the whole session.
        let morning = try row(["app": "shop", "source": "sender", "since": "2024-05-01T00:00:00Z", "until": "2024-05-01T09:00:00Z"])
        #expect(morning["sessions"] == .int(1), "\(morning)")
        #expect(morning["median_seconds"] == .int(8400) && morning["events_per_session"] == .double(4), "\(morning)")
        // The default is the server's sessions (none were computed here).
        #expect(try row(["app": "shop"])["sessions"] == .int(0))
        #expect(try row(["app": "shop", "source": "server"])["sessions"] == .int(0))
        #expect(throws: ReportError.self) { try SessionsReport(params: ["app": "shop", "source": "client"]) }
    }
}
