import CairnCore
import CairnPostgres
import CairnTesting
import CairnWire
import Testing

@testable import CairnStorage

func makeEvent(
    _ name: String,
    user: String?,
    company: String? = nil,
    at: String,
    type: EventType = .track,
    metadata: JSONObject = [:],
    app: String = "acme",
    anonymous: String? = nil
) -> CanonicalEvent {
    CanonicalEvent(
        appToken: app,
        eventType: type,
        eventName: type.hasEmptyName ? "" : name,
        userId: user,
        companyId: company,
        anonymousId: anonymous,
        source: "web-client",
        insertedAt: Timestamp(parsing: at)!,
        metadata: metadata,
        receivedAt: Timestamp(parsing: "2024-07-01T00:00:00Z")!,
        origin: .userpilot
    )
}

/// A connection to a fresh database with Cairn's schema.
func migrated() throws -> PostgresConnection {
    let connection = try PostgresConnection(conninfo: try TestPostgres.freshDatabase())
    try Schema.migrate(connection)
    return connection
}

@Suite struct EventWriterTests {
    @Test func migrationIsRepeatable() throws {
        let connection = try migrated()
        #expect(try Schema.migrate(connection) == Schema.migrations.last!.version)
        let versions = try connection.execute("SELECT count(*) FROM cairn_migrations").rows[0][0]
        #expect(versions == String(Schema.migrations.count))
    }

    /// A month partition dropped behind the writer's back (by hand, or a restored database) is
    /// made again, not taken for a fault of the events.
    @Test func aDroppedPartitionIsMadeAgain() throws {
        let connection = try migrated()
        let writer = EventWriter()
        let now = Timestamp.now()
        let parts = now.utcComponents
        _ = try writer.write(events: [makeEvent("A", user: "u1", at: now.description)], users: .array([]), companies: .array([]), on: connection)
        try connection.execute("DROP TABLE events_y\(parts.year)m\(parts.month < 10 ? "0" : "")\(parts.month)")
        let again = try writer.write(
            events: [makeEvent("B", user: "u1", at: now.description)],
            users: .array([]),
            companies: .array([]),
            on: connection
        )
        #expect(again.inserted == 1)
    }

    /// The partition bomb: one event per month of 1970-2025 makes one partition per year,
    /// not per month, and months near the present keep one each; a later month of a year
    /// whose other months already have partitions fills the gap between them.
    @Test func oldTimesShareAPartitionPerYear() throws {
        let connection = try migrated()
        let writer = EventWriter()
        var events: [CanonicalEvent] = []
        for year in 1970...2025 {
            for month in 1...12 {
                events.append(makeEvent("E", user: "u\(year)-\(month)", at: "\(year)-\(month < 10 ? "0" : "")\(month)-15T00:00:00Z"))
            }
        }
        // The cap on new partitions per write spreads them over several writes, as the forwarder's halving would.
        var written = 0
        for chunk in stride(from: 0, to: events.count, by: 96) {
            written += try writer.write(
                events: Array(events[chunk..<min(chunk + 96, events.count)]),
                users: .array([]),
                companies: .array([]),
                on: connection
            ).inserted
        }
        #expect(written == events.count)
        let partitions =
            try connection.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass").rows[0][0].flatMap { Int($0) } ?? 0
        #expect(partitions <= 56 + 15, "\(partitions) partitions")
        #expect(try connection.execute("SELECT count(*) FROM events").rows[0][0] == String(events.count))
        // Now and next month get month partitions of their own.
        let now = Timestamp.now()
        _ = try writer.write(events: [makeEvent("Now", user: "u", at: now.description)], users: .array([]), companies: .array([]), on: connection)
        let parts = now.utcComponents
        let name = "events_y\(parts.year)m\(parts.month < 10 ? "0" : "")\(parts.month)"
        #expect(try connection.execute("SELECT count(*) FROM pg_class WHERE relname = $1", [name]).rows[0][0] == "1")
        // A fresh writer (a restarted storage) reads the ranges back from the catalog and makes none again.
        let before = partitions
        _ = try EventWriter().write(
            events: [makeEvent("Again", user: "u", at: "1999-03-03T00:00:00Z")],
            users: .array([]),
            companies: .array([]),
            on: connection
        )
        let after =
            try connection.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass").rows[0][0].flatMap { Int($0) } ?? 0
        #expect(after == before + 1)
    }

    /// Each app of a batch commits in its own transaction (one shard per write on Citus), and a
    /// batch written again leaves the rows one write leaves.
    @Test func eachAppOfABatchCommitsOnItsOwn() throws {
        let connection = try migrated()
        let batch = [
            makeEvent("A1", user: "u", at: "2024-05-01T09:00:00Z", app: "acme"),
            makeEvent("B1", user: "u", at: "2024-05-01T09:00:01Z", app: "beta"),
            makeEvent("A2", user: "u", at: "2024-05-01T09:00:02Z", app: "acme"),
        ]
        let first = try EventWriter().write(events: batch, on: connection)
        #expect(first == EventWriter.Outcome(inserted: 3, duplicates: 0))
        let transactions = try connection.execute("SELECT app_token, count(DISTINCT stored_xid) AS n FROM events GROUP BY 1 ORDER BY 1").rows
        #expect(transactions == [["acme", "1"], ["beta", "1"]])
        let distinct = try connection.execute("SELECT count(DISTINCT stored_xid) FROM events").rows
        #expect(distinct == [["2"]])
        #expect(try EventWriter().write(events: batch, on: connection) == EventWriter.Outcome(inserted: 0, duplicates: 3))
    }

    /// More new partitions than one write may make: the write is refused as a data-class
    /// failure (SQLSTATE 54000), which ingest answers by halving the batch.
    @Test func aWriteMakesAtMostSixtyFourPartitions() throws {
        let connection = try migrated()
        let events = (1900...1999).map { makeEvent("E", user: "u\($0)", at: "\($0)-06-01T00:00:00Z") }
        #expect(throws: PostgresError.self) { try EventWriter().write(events: events, on: connection) }
        do {
            _ = try EventWriter().write(events: events, on: connection)
        } catch {
            #expect(error.sqlState == "54000")
        }
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
        let third = try EventWriter().write(
            events: events + [makeEvent("C", user: "u3", at: "2024-06-20T00:00:00Z")],
            users: .array([]),
            companies: .array([]),
            on: connection
        )
        #expect(third == EventWriter.Outcome(inserted: 1, duplicates: 3))
        #expect(try connection.execute("SELECT count(*) FROM events").rows[0][0] == "4")
        // May and June of 2024 are more than a year ago: one partition holds that year.
        let partitions = try connection.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass").rows[0][0]
        #expect(partitions == "1")
        let note = try connection.execute("SELECT metadata->>'note' FROM events WHERE event_name = 'B'").rows[0][0]
        #expect(note == "tab\there, new\nline, back\\slash, quote\"")
        let id = try connection.execute("SELECT internal_event_id FROM events WHERE event_name = 'B'").rows[0][0]
        #expect(id == String(events[2].internalEventIdBigint))
    }

    @Test func userUpsertsMergeTraitsKeyByKeyWhateverTheOrder() throws {
        let connection = try migrated()
        let writer = EventWriter()
        let older: JSON = [
            [
                "app_token": "acme", "user_id": "u1", "first_seen": "2024-05-01T00:00:00Z", "last_seen": "2024-05-02T00:00:00Z",
                "traits": ["plan": "free", "email": "a@x"],
                "trait_times": ["plan": "2024-05-02T00:00:00Z", "email": "2024-05-02T00:00:00Z"],
                "company_id": "c-old", "company_updated_at": "2024-05-02T00:00:00Z",
            ]
        ]
        let newer: JSON = [
            [
                "app_token": "acme", "user_id": "u1", "first_seen": "2024-05-03T00:00:00Z", "last_seen": "2024-05-04T00:00:00Z",
                "traits": ["plan": "pro"], "trait_times": ["plan": "2024-05-04T00:00:00Z"],
                "company_id": "c-new", "company_updated_at": "2024-05-04T00:00:00Z",
            ]
        ]
        // The newer batch arrives first, then the older one, then both again.
        for users in [newer, older, newer, older] {
            _ = try writer.write(events: [], users: users, companies: .array([]), on: connection)
        }
        let row = try connection.execute(
            "SELECT first_seen, last_seen, traits->>'plan', traits->>'email', company_id, trait_times->>'plan' FROM users"
        ).rows
        #expect(row.count == 1)
        #expect(row[0][0]?.hasPrefix("2024-05-01") == true)
        #expect(row[0][1]?.hasPrefix("2024-05-04") == true)
        #expect(row[0][2] == "pro")
        #expect(row[0][3] == "a@x")
        #expect(row[0][4] == "c-new")
        #expect(row[0][5]?.hasPrefix("2024-05-04") == true)
    }

    @Test func aliasesKeepTheEarliestIdentificationAndNeverSwallowAUser() throws {
        let connection = try migrated()
        let writer = EventWriter()
        func alias(_ anonymous: String, _ user: String, _ at: String) -> JSON {
            [["app_token": "acme", "alias_id": .string(anonymous), "user_id": .string(user), "aliased_at": .string(at)]]
        }
        let user: JSON = [["app_token": "acme", "user_id": "u-known", "first_seen": "2024-05-01T00:00:00Z", "last_seen": "2024-05-01T00:00:00Z"]]
        _ = try writer.write(events: [], users: user, companies: .array([]), on: connection)
        _ = try writer.write(
            events: [],
            users: .array([]),
            companies: .array([]),
            aliases: alias("device", "u2", "2024-05-02T00:00:00Z"),
            on: connection
        )
        _ = try writer.write(
            events: [],
            users: .array([]),
            companies: .array([]),
            aliases: alias("device", "u1", "2024-05-01T00:00:00Z"),
            on: connection
        )
        _ = try writer.write(
            events: [],
            users: .array([]),
            companies: .array([]),
            aliases: alias("device", "u3", "2024-05-03T00:00:00Z"),
            on: connection
        )
        _ = try writer.write(
            events: [],
            users: .array([]),
            companies: .array([]),
            aliases: alias("u-known", "u1", "2024-05-01T00:00:00Z"),
            on: connection
        )
        let rows = try connection.execute("SELECT alias_id, user_id FROM identity_aliases ORDER BY alias_id").rows
        #expect(rows == [["device", "u1"]])
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

@Suite struct AppRegistryTests {
    @Test func createsAppsWithHashedKeysAndFindsThemByNameOrToken() throws {
        let connection = try migrated()
        let created = try AppRegistry.create(["name": "acme", "token": "NX-42"], on: connection)
        let key = try #require(created["write_key"]?.stringValue)
        #expect(key.count == 32)
        let stored = try connection.execute("SELECT write_key_hash FROM apps").rows[0][0]
        #expect(stored == WriteKey.hash(key))
        #expect(stored != key)
        #expect(try AppRegistry.find("acme", on: connection)?["token"] == "NX-42")
        #expect(try AppRegistry.find("NX-42", on: connection)?["name"] == "acme")
        #expect(try AppRegistry.find("nobody", on: connection) == nil)
        #expect(try AppRegistry.find("acme", on: connection)?["personal_data"] == "hash")
        #expect(throws: StorageError.self) { _ = try AppRegistry.create(["name": "acme"], on: connection) }
        #expect(throws: StorageError.self) { _ = try AppRegistry.create(["name": "bad/name"], on: connection) }
        let rotated = try AppRegistry.rotateKey(["app": "acme"], on: connection)
        #expect(rotated["write_key"] != created["write_key"])
        #expect(try connection.execute("SELECT write_key_hash FROM apps").rows[0][0] == WriteKey.hash(rotated["write_key"]!.stringValue!))
    }

    @Test func registersAttributeTypesAndSettings() throws {
        let connection = try migrated()
        _ = try AppRegistry.create(["name": "acme"], on: connection)
        _ = try AppRegistry.setAttribute(["app": "acme", "name": "price", "type": "number"], on: connection)
        _ = try AppRegistry.setAttribute(["app": "acme", "name": "price", "type": "string"], on: connection)
        _ = try AppRegistry.setAttribute(["app": "acme", "name": "paid_at", "type": "date"], on: connection)
        #expect(throws: StorageError.self) { _ = try AppRegistry.setAttribute(["app": "acme", "name": "x", "type": "money"], on: connection) }
        #expect(throws: StorageError.self) { _ = try AppRegistry.setAttribute(["app": "nobody", "name": "x", "type": "number"], on: connection) }
        let app = try #require(try AppRegistry.find("acme", on: connection))
        #expect(app["attributes"] == ["paid_at": "date", "price": "string"])
        _ = try AppRegistry.configure(["app": "acme", "personal_data": "drop"], on: connection)
        #expect(try AppRegistry.find("acme", on: connection)?["personal_data"] == "drop")
        #expect(throws: StorageError.self) { _ = try AppRegistry.configure(["app": "acme", "personal_data": "publish"], on: connection) }
    }
}
