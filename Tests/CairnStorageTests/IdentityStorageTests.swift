import CairnCore
import CairnIdentity
import CairnPostgres
import CairnTesting
import CairnWire
import Logging
import Testing

@testable import CairnStorage

@Suite struct IdentityStorageTests {
    /// acme with users u1, u2, u3; u1 identified anonymous device-1.
    func seeded() throws -> PostgresConnection {
        let connection = try migrated()
        _ = try AppRegistry.create(["name": "acme"], on: connection)
        let writer = EventWriter()
        let events = [
            makeEvent("Viewed", user: nil, at: "2024-05-01T09:00:00Z", anonymous: "device-1"),
            makeEvent("Signed up", user: "u1", at: "2024-05-01T09:05:00Z", anonymous: "device-1"),
            makeEvent("Paid", user: "u2", at: "2024-05-02T09:00:00Z"),
            makeEvent("Paid", user: "u3", at: "2024-05-03T09:00:00Z"),
        ]
        var users: [JSON] = []
        for (user, plan) in [("u1", "pro"), ("u2", "free"), ("u3", "team")] {
            users.append([
                "app_token": "acme", "user_id": .string(user), "first_seen": "2024-05-01T00:00:00Z", "last_seen": "2024-05-03T00:00:00Z",
                "traits": ["plan": .string(plan), "only_\(user)": true],
                "trait_times": ["plan": "2024-05-01T00:00:00Z", "only_\(user)": "2024-05-01T00:00:00Z"],
            ])
        }
        _ = try writer.write(
            events: events,
            users: .array(users),
            companies: .array([]),
            aliases: [["app_token": "acme", "alias_id": "device-1", "user_id": "u1", "aliased_at": "2024-05-01T09:05:00Z"]],
            on: connection
        )
        return connection
    }

    @Test func anonymousEventsResolveToTheUserTheyBecame() throws {
        let connection = try seeded()
        let people = try connection.execute("SELECT event_name, person FROM events_resolved ORDER BY inserted_at").rows
        #expect(people.map { $0[1] } == ["u1", "u1", "u2", "u3"])
    }

    @Test func mergesAreExplicitTransitiveAndRepeatable() throws {
        let connection = try seeded()
        let first = try UserMerge.merge(["app": "acme", "from": "u1", "into": "u2"], on: connection)
        #expect(first["merged"] == .bool(true))
        // u2's traits win conflicts; u1's fill the gaps.
        let traits = try connection.execute("SELECT traits->>'plan', traits->>'only_u1' FROM users WHERE user_id = 'u2'").rows[0]
        #expect(traits == ["free", "true"])
        _ = try UserMerge.merge(["app": "acme", "from": "u2", "into": "u3"], on: connection)
        // Transitive: u1's and its anonymous device's events now resolve to u3.
        let people = try connection.execute("SELECT DISTINCT person FROM events_resolved").rows
        #expect(people == [["u3"]])
        let aliases = try connection.execute("SELECT alias_kind, alias_id, user_id FROM identity_aliases ORDER BY alias_kind, alias_id").rows
        #expect(aliases == [["anonymous", "device-1", "u3"], ["user", "u1", "u3"], ["user", "u2", "u3"]])
        let again = try UserMerge.merge(["app": "acme", "from": "u1", "into": "u3"], on: connection)
        #expect(again["merged"] == .bool(false))
        #expect(throws: StorageError.self) { _ = try UserMerge.merge(["app": "acme", "from": "nobody", "into": "u3"], on: connection) }
        // An identify of the merged-away user later still lands on the survivor.
        _ = try EventWriter().write(
            events: [],
            users: .array([]),
            companies: .array([]),
            aliases: [["app_token": "acme", "alias_id": "device-9", "user_id": "u1", "aliased_at": "2024-05-05T00:00:00Z"]],
            on: connection
        )
        #expect(try connection.execute("SELECT user_id FROM identity_aliases WHERE alias_id = 'device-9'").rows == [["u3"]])
    }
}

@Suite struct MembershipTests {
    @Test func anEventWithoutACompanyGetsTheUsersCompanyAsOfItsTime() throws {
        let connection = try migrated()
        _ = try AppRegistry.create(["name": "acme"], on: connection)
        let writer = EventWriter()
        let events = [
            makeEvent("Joined", user: "u1", company: "old-co", at: "2024-05-01T00:00:00Z"),
            makeEvent("Clicked", user: "u1", at: "2024-05-02T00:00:00Z"),
            makeEvent("Moved", user: "u1", company: "new-co", at: "2024-05-10T00:00:00Z"),
            makeEvent("Clicked", user: "u1", at: "2024-05-11T00:00:00Z"),
            makeEvent("Clicked", user: "u1", at: "2024-04-01T00:00:00Z"),
        ]
        let memberships: JSON = [
            [
                "app_token": "acme", "user_id": "u1", "company_id": "old-co", "first_seen": "2024-05-01T00:00:00Z",
                "last_seen": "2024-05-01T00:00:00Z",
            ],
            [
                "app_token": "acme", "user_id": "u1", "company_id": "new-co", "first_seen": "2024-05-10T00:00:00Z",
                "last_seen": "2024-05-10T00:00:00Z",
            ],
        ]
        _ = try writer.write(events: events, users: .array([]), companies: .array([]), memberships: memberships, on: connection)
        let rows = try connection.execute("SELECT inserted_at::date::text, company FROM events_resolved ORDER BY inserted_at").rows
        #expect(
            rows == [
                ["2024-04-01", nil], ["2024-05-01", "old-co"], ["2024-05-02", "old-co"], ["2024-05-10", "new-co"], ["2024-05-11", "new-co"],
            ]
        )
    }
}

@Suite struct IdentityContextTests {
    @Test func returnsAliasesHistoriesAndTheAppsSessionLimits() throws {
        let connection = try migrated()
        _ = try AppRegistry.create(["name": "acme"], on: connection)
        _ = try AppRegistry.configure(["app": "acme", "session_inactivity": "10m", "session_max_length": "2h"], on: connection)
        #expect(throws: StorageError.self) { _ = try AppRegistry.configure(["app": "acme", "session_inactivity": "soon"], on: connection) }
        let events = [
            makeEvent("Seen", user: nil, at: "2024-05-01T09:00:00Z", anonymous: "device-1"),
            makeEvent("Seen", user: "u1", at: "2024-05-01T09:05:00Z"),
            makeEvent("", user: "u1", at: "2024-05-01T10:00:00Z", type: .sessionStart),
        ]
        _ = try EventWriter().write(events: events, users: .array([]), companies: .array([]), on: connection)
        let context = try IdentityContext.load(
            [
                "app_token": "acme", "user_ids": ["u1"], "anonymous_ids": ["device-1"],
                "new_aliases": [["alias_id": "device-1", "user_id": "u1", "aliased_at": "2024-05-01T09:05:00Z"]],
            ],
            on: connection
        )
        #expect(context["inactivity_s"] == .int(600))
        #expect(context["max_length_s"] == .int(7200))
        #expect(context["aliases"]?["device-1"] == "u1")
        // u1's history holds the visitor's event, its own, and the session start (packed even).
        let points = context["histories"]?["u1"]?.arrayValue?.compactMap(\.intValue).sorted() ?? []
        #expect(points.count == 3)
        #expect(points.filter { $0 % 2 == 0 }.count == 1)
        // A first identification is new: u1 absorbs the visitor, and is read whole.
        #expect(context["novel_aliases"] == ["device-1"])
        #expect(context["absorbing"] == ["u1"])
        let cached = try IdentityContext.load(["app_token": "acme", "user_ids": ["u1"], "cached": ["u1"]], on: connection)
        #expect(cached["histories"]?.objectValue?.isEmpty == true)

        // Once stored, the same identification again changes nothing: a cached u1 is not re-read.
        _ = try EventWriter().write(
            events: [],
            users: .array([]),
            companies: .array([]),
            aliases: [["app_token": "acme", "alias_id": "device-1", "user_id": "u1", "aliased_at": "2024-05-01T09:05:00Z"]],
            on: connection
        )
        let repeated = try IdentityContext.load(
            [
                "app_token": "acme", "user_ids": ["u1"], "cached": ["u1"],
                "new_aliases": [["alias_id": "device-1", "user_id": "u1", "aliased_at": "2024-05-01T09:06:00Z"]],
            ],
            on: connection
        )
        #expect(repeated["novel_aliases"] == [])
        #expect(repeated["absorbing"] == [])
        #expect(repeated["histories"]?.objectValue?.isEmpty == true)
        #expect(repeated["aliases"]?["device-1"] == "u1")
    }
}

@Suite struct StatisticsKeeperTests {
    @Test func analyzesOnceEnoughRowsChanged() throws {
        let keeper = StatisticsKeeper(pool: PostgresPool(conninfo: "host=/nonexistent"), logger: .init(label: "test"))
        #expect(!keeper.isDue)
        keeper.record(9_999)
        #expect(!keeper.isDue)
        keeper.record(1)
        #expect(keeper.isDue)
    }
}
