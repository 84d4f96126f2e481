import CairnCore
import CairnPostgres
import CairnReporting
import CairnStorage
import CairnTesting
import CairnWire
import Testing

@Suite struct EventsReportTests {
    func seeded() throws -> PostgresConnection {
        let connection = try PostgresConnection(conninfo: try TestPostgres.freshDatabase())
        try Schema.migrate(connection)
        _ = try AppRegistry.create(["name": "acme"], on: connection)
        _ = try AppRegistry.create(["name": "other"], on: connection)
        func event(_ name: String, _ type: EventType, _ at: String, app: String = "acme") -> CanonicalEvent {
            CanonicalEvent(
                appToken: app,
                eventType: type,
                eventName: type.hasEmptyName ? "" : name,
                userId: "u",
                companyId: nil,
                source: "web-client",
                insertedAt: Timestamp(parsing: at)!,
                receivedAt: Timestamp(parsing: at)!,
                origin: .userpilot
            )
        }
        let events = [
            event("Purchased", .track, "2024-05-01T10:00:00Z"),
            event("Purchased", .track, "2024-05-01T23:30:00Z"),
            event("Purchased", .track, "2024-05-03T01:00:00Z"),
            event("", .pageView, "2024-05-01T10:05:00Z"),
            event("Purchased", .track, "2024-05-01T10:00:00Z", app: "other"),
        ]
        _ = try EventWriter().write(events: events, users: .array([]), companies: .array([]), on: connection)
        return connection
    }

    @Test func countsPerNameForOneAppOnly() throws {
        let connection = try seeded()
        let table = try EventsReport(params: ["app": "acme"]).run(on: connection)
        #expect(table.columns == ["event_type", "event_name", "events"])
        #expect(table.rows == [["track", "Purchased", 3], ["page_view", "", 1]])
        let filtered = try EventsReport(params: ["app": "acme", "type": "page_view"]).run(on: connection)
        #expect(filtered.rows == [["page_view", "", 1]])
        let top = try EventsReport(params: ["app": "acme", "top": 1]).run(on: connection)
        #expect(top.rows.count == 1)
    }

    @Test func dailySeriesFillsGapsAndHonoursTheTimeZone() throws {
        let connection = try seeded()
        let utc = try EventsReport(params: ["app": "acme", "by": "day", "since": "2024-05-01", "until": "2024-05-04", "event": "Purchased"]).run(
            on: connection
        )
        #expect(utc.rows == [["2024-05-01", 2], ["2024-05-02", 0], ["2024-05-03", 1]])
        // 23:30 UTC is already May 2nd in Berlin (UTC+2 in summer).
        let berlin = try EventsReport(params: [
            "app": "acme", "by": "day", "since": "2024-05-01", "until": "2024-05-04",
            "event": "Purchased", "tz": "Europe/Berlin",
        ]).run(on: connection)
        #expect(berlin.rows.map { $0[1] } == [1, 1, 1])
        let hourly = try EventsReport(params: ["app": "acme", "by": "hour", "since": "2024-05-01T10:00:00Z", "until": "2024-05-01T12:00:00Z"]).run(
            on: connection
        )
        #expect(hourly.rows == [["2024-05-01 10:00", 2], ["2024-05-01 11:00", 0]])
    }

    @Test func findsTheAppByNameOrTokenAndRefusesUnknownApps() throws {
        let connection = try seeded()
        _ = try AppRegistry.create(["name": "shop", "token": "NX-shop-1"], on: connection)
        #expect(try EventsReport(params: ["app": "shop"]).run(on: connection).rows.isEmpty)
        do {
            _ = try EventsReport(params: ["app": "nobody"]).run(on: connection)
            Issue.record("expected an error")
        } catch {
            #expect((error as? ReportError)?.applicationCode == .unknownApp)
        }
    }

    @Test func refusesBadParametersClearly() throws {
        #expect(throws: JSONDecodingError(path: ["app"], expected: "a string", found: "nothing")) { try EventsReport(params: [:]) }
        #expect(throws: ReportError.self) { try EventsReport(params: ["app": "acme", "since": "last tuesday"]) }
        #expect(throws: ReportError.self) { try EventsReport(params: ["app": "acme", "by": "fortnight"]) }
        #expect(throws: ReportError.self) { try EventsReport(params: ["app": "acme", "since": "2024-05-02", "until": "2024-05-01"]) }
        let connection = try seeded()
        do {
            _ = try EventsReport(params: ["app": "acme", "by": "day", "tz": "Mars/Olympus"]).run(on: connection)
            Issue.record("expected an error")
        } catch {
            #expect((error as? ReportError)?.applicationCode.rawValue == "invalid_time_zone")
        }
    }
}
