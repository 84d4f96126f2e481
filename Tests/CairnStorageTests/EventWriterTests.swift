import CairnCore
@testable import CairnStorage
import CairnPostgres
import CairnTesting
import Testing

func makeEvent(_ name: String, user: String?, company: String? = nil, at: String, type: EventType = .track,
               metadata: JSONObject = [:], app: String = "acme") -> CanonicalEvent {
    CanonicalEvent(appToken: app, eventType: type, eventName: type.hasEmptyName ? "" : name, userId: user, companyId: company,
                   source: "web-client", insertedAt: Timestamp(parsing: at)!, metadata: metadata,
                   receivedAt: Timestamp(parsing: "2024-07-01T00:00:00Z")!, origin: .userpilot)
}

@Suite struct EventWriterTests {
    func migrated() throws -> PostgresConnection {
        let connection = try PostgresConnection(conninfo: try TestPostgres.freshDatabase())
        try Schema.migrate(connection)
        return connection
    }

    @Test func migrationIsRepeatable() throws {
        let connection = try migrated()
        #expect(try Schema.migrate(connection) == Schema.migrations.last!.version)
        let versions = try connection.execute("SELECT count(*) FROM cairn_migrations").rows[0][0]
        #expect(versions == String(Schema.migrations.count))
    }

    @Test func writesPartitionsAndDeduplicatesRedelivery() throws {
        let connection = try migrated()
        let writer = EventWriter()
        let events = [
            makeEvent("A", user: "u1", at: "2024-05-31T23:59:59.999999Z"),
            makeEvent("A", user: "u1", at: "2024-06-01T00:00:00Z"),
            makeEvent("B", user: "u2", at: "2024-06-15T12:00:00Z", metadata: ["note": "tab\there, new\nline, back\\slash, quote\""]),
        ]
        let first = try writer.write(events: events, users: .array([]), companies: .array([]), on: connection)
        #expect(first == EventWriter.Outcome(inserted: 3, duplicates: 0))
        // The same batch again, as a retry after a lost answer would send it.
        let second = try writer.write(events: events, users: .array([]), companies: .array([]), on: connection)
        #expect(second == EventWriter.Outcome(inserted: 0, duplicates: 3))
        // A fresh writer (a restarted storage) does not know the partitions but still succeeds.
        let third = try EventWriter().write(events: events + [makeEvent("C", user: "u3", at: "2024-06-20T00:00:00Z")],
                                            users: .array([]), companies: .array([]), on: connection)
        #expect(third == EventWriter.Outcome(inserted: 1, duplicates: 3))
        #expect(try connection.execute("SELECT count(*) FROM events").rows[0][0] == "4")
        let partitions = try connection.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass").rows[0][0]
        #expect(partitions == "2")
        let note = try connection.execute("SELECT metadata->>'note' FROM events WHERE event_name = 'B'").rows[0][0]
        #expect(note == "tab\there, new\nline, back\\slash, quote\"")
        let id = try connection.execute("SELECT internal_event_id FROM events WHERE event_name = 'B'").rows[0][0]
        #expect(id == String(events[2].internalEventIdBigint))
    }

    @Test func userUpsertsAreIdempotentAndOrderIndependent() throws {
        let connection = try migrated()
        let writer = EventWriter()
        let older: JSON = [["app_token": "acme", "user_id": "u1", "first_seen": "2024-05-01T00:00:00Z", "last_seen": "2024-05-02T00:00:00Z",
                            "traits": ["plan": "free", "email": "a@x"], "traits_updated_at": "2024-05-02T00:00:00Z",
                            "company_id": "c-old", "company_updated_at": "2024-05-02T00:00:00Z"]]
        let newer: JSON = [["app_token": "acme", "user_id": "u1", "first_seen": "2024-05-03T00:00:00Z", "last_seen": "2024-05-04T00:00:00Z",
                            "traits": ["plan": "pro"], "traits_updated_at": "2024-05-04T00:00:00Z",
                            "company_id": "c-new", "company_updated_at": "2024-05-04T00:00:00Z"]]
        // The newer batch arrives first, then the older one, then both again.
        for users in [newer, older, newer, older] {
            _ = try writer.write(events: [], users: users, companies: .array([]), on: connection)
        }
        let row = try connection.execute("SELECT first_seen, last_seen, traits->>'plan', traits->>'email', company_id FROM users").rows
        #expect(row.count == 1)
        #expect(row[0][0]?.hasPrefix("2024-05-01") == true)
        #expect(row[0][1]?.hasPrefix("2024-05-04") == true)
        #expect(row[0][2] == "pro")
        #expect(row[0][3] == "a@x")
        #expect(row[0][4] == "c-new")
    }

    @Test func copyTextEscapesEverythingCopyCares() {
        let event = makeEvent("tab\tname\\", user: "line\nbreak", at: "2024-05-01T00:00:00Z")
        let text = String(decoding: EventWriter.copyText([event]), as: UTF8.self)
        #expect(text.contains("tab\\tname\\\\"))
        #expect(text.contains("line\\nbreak"))
        #expect(text.hasSuffix("\n"))
        #expect(text.split(separator: "\t", omittingEmptySubsequences: false).count == EventWriter.columns.count)
    }
}
