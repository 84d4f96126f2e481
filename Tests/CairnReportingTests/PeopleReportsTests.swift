import CairnCore
import CairnPostgres
import CairnReporting
import CairnTesting
import CairnWire
import Testing

@testable import CairnStorage

/// A hand-built app: ada browses anonymously as device-A on May 1st and signs up the same
/// day; bob buys twice on May 1st and once on May 2nd; carol only on May 8th (the next week).
@Suite struct PeopleReportsTests {
    func seeded() throws -> PostgresConnection {
        let connection = try PostgresConnection(conninfo: try TestPostgres.freshDatabase())
        try Schema.migrate(connection)
        _ = try AppRegistry.create(["name": "shop"], on: connection)
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
        let events = [
            event("viewed", user: nil, anonymous: "device-A", at: "2024-05-01T08:00:00Z"),
            event("viewed", user: nil, anonymous: "device-A", at: "2024-05-01T08:05:00Z"),
            event("signed_up", user: "ada", anonymous: "device-A", at: "2024-05-01T08:10:00Z"),
            event("purchase", user: "bob", at: "2024-05-01T09:00:00Z", ["price": 10, "items": 1]),
            event("purchase", user: "bob", at: "2024-05-01T10:00:00Z", ["price": "30.5", "items": 3]),
            event("purchase", user: "bob", at: "2024-05-02T09:00:00Z", ["price": 20, "items": 2]),
            event("purchase", user: "carol", at: "2024-05-08T09:00:00Z", ["price": "free", "items": 1]),
        ]
        _ = try EventWriter().write(
            events: events,
            users: [
                ["app_token": "shop", "user_id": "ada", "first_seen": "2024-05-01T08:10:00Z", "last_seen": "2024-05-01T08:10:00Z"]
            ],
            companies: .array([]),
            aliases: [["app_token": "shop", "alias_id": "device-A", "user_id": "ada", "aliased_at": "2024-05-01T08:10:00Z"]],
            on: connection
        )
        return connection
    }

    @Test func uniquesCountAVisitorWhoSignedUpOnce() throws {
        let connection = try seeded()
        // May 1st: ada (3 events, two of them anonymous) and bob = 2; May 2nd: bob = 1.
        let daily = try UniquesReport(params: ["app": "shop", "by": "day", "since": "2024-05-01", "until": "2024-05-03"]).run(on: connection)
        #expect(daily.rows == [["2024-05-01", 2], ["2024-05-02", 1]])
        // Weeks start on Monday: April 29th holds ada and bob; May 6th holds carol.
        let weekly = try UniquesReport(params: ["app": "shop", "by": "week", "since": "2024-04-29", "until": "2024-05-13"]).run(on: connection)
        #expect(weekly.rows == [["2024-04-29", 2], ["2024-05-06", 1]])
        let buyers = try UniquesReport(params: ["app": "shop", "by": "month", "event": "purchase"]).run(on: connection)
        #expect(buyers.rows == [["2024-05-01", 2]])
        // An empty range is an empty result, not an error.
        let empty = try UniquesReport(params: ["app": "shop", "by": "day", "since": "2023-01-01", "until": "2023-01-03"]).run(on: connection)
        #expect(empty.rows == [["2023-01-01", 0], ["2023-01-02", 0]])
    }

    @Test func statsOfANumericAttribute() throws {
        let connection = try seeded()
        // bob's prices 10, 30.5, 20 are numbers; carol's "free" is not.
        let stats = try StatsReport(params: ["app": "shop", "event": "purchase", "attr": "price"]).run(on: connection)
        let row = try #require(stats.rows.first)
        let values = Dictionary(uniqueKeysWithValues: zip(stats.columns, row))
        #expect(values["count"] == .int(3))
        #expect(values["sum"] == .double(60.5))
        #expect(values["min"] == .int(10))
        #expect(values["max"] == .double(30.5))
        #expect(values["p50"] == .int(20))
        #expect(values["non_numeric"] == .int(1))
        #expect(values["avg"]?.doubleValue.map { abs($0 - 60.5 / 3) < 0.0001 } == true)
        // The last day only: items 2.
        let lastDay = try StatsReport(params: ["app": "shop", "event": "purchase", "attr": "items", "since": "2024-05-02", "until": "2024-05-03"])
            .run(on: connection)
        #expect(Dictionary(uniqueKeysWithValues: zip(lastDay.columns, lastDay.rows[0]))["sum"] == .int(2))
    }

    @Test func unknownNamesAreRefusedWithASuggestion() throws {
        let connection = try seeded()
        do {
            _ = try StatsReport(params: ["app": "shop", "event": "purchse", "attr": "price"]).run(on: connection)
            Issue.record("expected an error")
        } catch {
            let rpc = try #require(error as? ReportError)
            #expect(rpc.applicationCode == .unknownEvent)
            #expect(rpc.message.contains("did you mean 'purchase'?"))
        }
        do {
            _ = try StatsReport(params: ["app": "shop", "event": "purchase", "attr": "prize"]).run(on: connection)
            Issue.record("expected an error")
        } catch {
            #expect((error as? ReportError)?.message.contains("did you mean 'price'?") == true)
        }
        #expect(throws: ReportError.self) { try UniquesReport(params: ["app": "shop", "by": "hour"]) }
    }

    @Test func theTimelineIncludesTheAnonymousVisitInOrder() throws {
        let connection = try seeded()
        let timeline = try TimelineReport(params: ["app": "shop", "user": "ada"]).run(on: connection)
        #expect(timeline.rows.map { $0[2] } == ["viewed", "viewed", "signed_up"])
        #expect(timeline.rows.map { $0[3] } == ["anonymous:device-A", "anonymous:device-A", "ada"])
        let limited = try TimelineReport(params: ["app": "shop", "user": "bob", "limit": 2]).run(on: connection)
        #expect(limited.rows.map { $0[0] } == ["2024-05-01T10:00:00.000000", "2024-05-02T09:00:00.000000"])
        #expect(limited.rows[0][5].stringValue?.contains("30.5") == true)
        #expect(throws: ReportError.self) { _ = try TimelineReport(params: ["app": "shop", "user": "nobody"]).run(on: connection) }
    }

    @Test func aReportPastItsTimeoutIsCancelled() throws {
        let connection = try seeded()
        var scope = try ReportScope(params: ["app": "shop", "timeout_s": 1])
        scope.timeoutSeconds = 1
        do {
            _ = try scope.run(on: connection) { _ in try connection.execute("SELECT pg_sleep(3)") }
            Issue.record("expected a timeout")
        } catch {
            #expect((error as? ReportError)?.applicationCode == .reportTimeout)
        }
    }
}

@Suite struct ReportEdgeCaseTests {
    @Test func calendarBucketsFollowTheTimeZoneAcrossDST() throws {
        let connection = try PostgresConnection(conninfo: try TestPostgres.freshDatabase())
        try Schema.migrate(connection)
        _ = try AppRegistry.create(["name": "app"], on: connection)
        func event(_ at: String) -> CanonicalEvent {
            CanonicalEvent(
                appToken: "app",
                eventType: .track,
                eventName: "tick",
                userId: "u",
                companyId: nil,
                source: "web-client",
                insertedAt: Timestamp(parsing: at)!,
                receivedAt: Timestamp(parsing: at)!,
                origin: .userpilot
            )
        }
        // Berlin moves from UTC+1 to UTC+2 at 01:00 UTC on March 31st 2024.
        _ = try EventWriter().write(
            events: [
                event("2024-03-30T22:30:00Z"), event("2024-03-30T23:30:00Z"), event("2024-03-31T00:30:00Z"),
                event("2024-03-31T01:30:00Z"), event("2024-03-31T22:30:00Z"),
            ],
            users: .array([]),
            companies: .array([]),
            on: connection
        )
        // Local times: Mar 30 23:30, Mar 31 00:30, 01:30, 03:30, Apr 1 00:30.
        let daily = try EventsReport(params: ["app": "app", "by": "day", "tz": "Europe/Berlin", "since": "2024-03-30", "until": "2024-04-02"]).run(
            on: connection
        )
        #expect(daily.rows == [["2024-03-30", 1], ["2024-03-31", 3], ["2024-04-01", 1]])
        // The hour from 02:00 to 03:00 does not exist that night, so it has no bucket.
        let hourly = try EventsReport(params: [
            "app": "app", "by": "hour", "tz": "Europe/Berlin", "since": "2024-03-31", "until": "2024-03-31T04:00:00+02:00",
        ]).run(on: connection)
        #expect(hourly.rows == [["2024-03-31 00:00", 1], ["2024-03-31 01:00", 1], ["2024-03-31 03:00", 1]])
    }

    @Test func erasedAndDuplicateEventsAreNotCounted() throws {
        let connection = try PeopleReportsTests().seeded()
        // The same purchase again changes nothing.
        let again = CanonicalEvent(
            appToken: "shop",
            eventType: .track,
            eventName: "purchase",
            userId: "bob",
            companyId: nil,
            source: "web-client",
            insertedAt: Timestamp(parsing: "2024-05-01T09:00:00Z")!,
            metadata: ["price": 10, "items": 1],
            receivedAt: Timestamp(parsing: "2024-05-01T09:00:00Z")!,
            origin: .usercom
        )
        _ = try EventWriter().write(events: [again], users: .array([]), companies: .array([]), on: connection)
        let before = try UniquesReport(params: ["app": "shop", "by": "month"]).run(on: connection)
        #expect(before.rows == [["2024-05-01", 3]])
        #expect(try StatsReport(params: ["app": "shop", "event": "purchase", "attr": "price"]).run(on: connection).rows[0][2] == .int(3))
        _ = try UserErasure.delete(["app": "shop", "user": "ada"], on: connection)
        let after = try UniquesReport(params: ["app": "shop", "by": "month"]).run(on: connection)
        #expect(after.rows == [["2024-05-01", 2]])
        #expect(throws: ReportError.self) { _ = try TimelineReport(params: ["app": "shop", "user": "ada"]).run(on: connection) }
    }
}
