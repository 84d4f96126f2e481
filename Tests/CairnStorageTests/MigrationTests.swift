import CairnCore
import CairnPostgres
import CairnTesting
import Foundation
import Testing

@testable import CairnStorage

/// Shipped migrations never change, and a database upgraded one version at a time ends up the
/// same as a fresh one, with its rows intact.
@Suite struct MigrationTests {
    /// SHA-256 of each shipped migration (Migration/checksum). A failure here means a shipped
    /// migration was edited: put the change in a new migration instead.
    static let pinned: [Int: String] = [
        1: "71ab1ed7ef48e5e9ab9e714c99492992414db8cd56cffd9ca3a4c1670b5ec4e0",
        2: "f3be6bc3000477699858d8aca08ef793bc6de3a54e5d1cd106794cbcf32cb0d4",
        3: "ad081da915d460cf258e68f3fd973bfb931b7a597e6c0e3b7fc9ca45f7468396",
        4: "c0d42349f7c588b860cb3b0e12505af111d898d4a82781c3ec48901afacb4150",
        5: "820d03c4591ddc2b1fd6f254d7dcd4f6ae24963b5d6f892ebe624c8bd2e2ec08",
        6: "6bee9fda470324dd7d45b5ec8be94fc6fa86da3e8749a8d83dcd656badc83c8b",
        7: "e692fc16c52505ef060ba7e2d46bbc1247ae7a4a7b29d7e425cc785415fb0ee4",
        8: "66ba8b4985ec045a87dc3a99f14541fc2de6b3699605672d57eedaf336a0888d",
        9: "2d014fedd2e3b91f2b96cb7c887e8834e77962c672c3e094f44302482df7b55d",
        10: "e0c2ebbe287f81c2a12b3998423a08bad58a789c4768cf747ae43ca22bd222e1",
        11: "e34468fed15c1949d58c455a58211812211131331cdc0c1e2ffee9be3d5972a7",
        12: "e979415b18641353e33289c1333036a5975c5e603d705e5c0d93731488d26ef1",
        13: "d030dd233ec2c5af6c153ecbb7fecff2d3f76986943ead8db95c8de92ad5bad5",
        14: "e164bc2ff3a9b5db49e76bbd30e9d82e075b30382c723a631333846365c98382",
        15: "d14cb11ecd5a882165dbf973ef2d683bd91ad6c9432237f7fde97478b3f79a9e",
        16: "c72a5e1631201ddcabe6a677c0375dd7fa60058fd83075ec3ee9b1c2c1de2858",
        17: "5365c6ba7c08fb47fa766a7e9f0ac39a6a87d3d6fd2893aabcb7997d96f9b6dc",
        18: "6308a53c490277bc8bad311155f3dd9afb5776118cb1f9d899abe0a310629bd8",
        19: "7ceadf1678560b727213a4ea081b0a1c9acdade22fed623138d00de5ca42cbc5",
    ]

    @Test func everyShippedMigrationIsUnchanged() {
        let versions = Schema.migrations.map(\.version)
        #expect(versions == Array(1...versions.count), "versions run 1, 2, 3… with no gap")
        #expect(Set(versions) == Set(Self.pinned.keys), "every migration is pinned, and every pin has its migration")
        for migration in Schema.migrations {
            #expect(migration.checksum == Self.pinned[migration.version], "migration \(migration.version) (\(migration.name)) was edited")
        }
    }

    @Test func aDatabaseUpgradedStepByStepMatchesAFreshOne() async throws {
        let upgradedInfo = try TestPostgres.freshDatabase()
        let upgraded = try PostgresConnection(conninfo: upgradedInfo)
        #expect(try Schema.migrate(upgraded, upTo: 1) == 1)
        try upgraded.execute(Self.partition)
        // Rows as version 1 stored them.
        try upgraded.execute(
            """
            INSERT INTO events (app_token, inserted_at, internal_event_id, event_type, event_name, user_id, anonymous_id, source, metadata, received_at, origin)
            VALUES ('shop', '2024-05-01T08:00:00Z', 1, 'track', 'viewed', NULL, 'device-A', 'web-client', '{"page": "home"}', '2024-05-01T08:00:01Z', 'segment'),
                   ('shop', '2024-05-02T09:00:00Z', 2, 'track', 'purchase', 'ada', NULL, 'web-client', '{"price": 12}', '2024-05-02T09:00:01Z', 'segment'),
                   ('shop', '2024-05-03T10:00:00Z', 3, 'identify', '', 'ada', 'device-A', 'web-client', '{}', '2024-05-03T10:00:01Z', 'segment')
            """
        )
        try upgraded.execute(
            "INSERT INTO users (app_token, user_id, first_seen, last_seen, traits, company_id) VALUES ('shop', 'ada', '2024-05-02T09:00:00Z', '2024-05-03T10:00:00Z', '{\"plan\": \"pro\"}', 'acme')"
        )
        try upgraded.execute(
            "INSERT INTO companies (app_token, company_id, first_seen, last_seen) VALUES ('shop', 'acme', '2024-05-02T09:00:00Z', '2024-05-03T10:00:00Z')"
        )
        for version in 2...Schema.migrations.count {
            #expect(try Schema.migrate(upgraded, upTo: version) == version)
            switch version {
            case 2:
                try upgraded.execute("INSERT INTO apps (token, name, write_key_hash) VALUES ('shop', 'shop', 'hash')")
                try upgraded.execute("INSERT INTO app_attributes (app_token, name, type) VALUES ('shop', 'price', 'number')")
            case 3:
                try upgraded.execute(
                    """
                    INSERT INTO identity_aliases (app_token, alias_kind, alias_id, user_id, aliased_at, reason)
                    VALUES ('shop', 'anonymous', 'device-A', 'ada', '2024-05-03T10:00:00Z', 'identify')
                    """
                )
            default:
                break
            }
        }

        let freshInfo = try TestPostgres.freshDatabase()
        let fresh = try PostgresConnection(conninfo: freshInfo)
        try Schema.migrate(fresh)
        try fresh.execute(Self.partition)

        let upgradedSchema = try await Self.schemaDump(upgradedInfo)
        let freshSchema = try await Self.schemaDump(freshInfo)
        #expect(upgradedSchema.contains("CREATE TABLE public.rollup_event_counts"))
        let same = upgradedSchema == freshSchema
        #expect(same, "pg_dump --schema-only differs: \(Self.firstDifference(upgradedSchema, freshSchema))")

        // The rows are intact, and the migrations that derive from them did.
        let events = try upgraded.execute(
            "SELECT internal_event_id, event_name, coalesce(user_id, ''), metadata::text, stored_xid FROM events ORDER BY 1"
        ).rows
        #expect(
            events == [
                ["1", "viewed", "", #"{"page": "home"}"#, "0"], ["2", "purchase", "ada", #"{"price": 12}"#, "0"], ["3", "", "ada", "{}", "0"],
            ]
        )
        #expect(try upgraded.execute("SELECT user_id, traits::text, company_id FROM users").rows == [["ada", #"{"plan": "pro"}"#, "acme"]])
        #expect(try upgraded.execute("SELECT sum(events) FROM rollup_event_counts WHERE app_token = 'shop'").rows == [["3"]])
        #expect(try upgraded.execute("SELECT value FROM rollup_attribute_values WHERE attribute = 'price'").rows == [["12"]])
        // device-A was identified as ada: one person on each of the three days.
        #expect(
            try upgraded.execute("SELECT period::text, people FROM rollup_period_people WHERE grain = 'day' ORDER BY 1").rows
                == [["2024-05-01", "1"], ["2024-05-02", "1"], ["2024-05-03", "1"]]
        )
        #expect(try upgraded.execute("SELECT DISTINCT person FROM events_resolved").rows == [["ada"]])
        #expect(try upgraded.execute("SELECT event_time_future_s FROM apps").rows == [["86400"]])
    }

    /// The month the rows fall in, made by hand in both databases, as the event writer would.
    static let partition = "CREATE TABLE events_y2024m05 PARTITION OF events FOR VALUES FROM ('2024-05-01T00:00:00Z') TO ('2024-06-01T00:00:00Z')"

    static func schemaDump(_ conninfo: String) async throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try EmbeddedPostgres.binary("pg_dump"))
        process.arguments = ["--schema-only", "--no-owner", "--dbname", conninfo]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        #expect(await process.waitForExit() == 0)
        // Newer pg_dump brackets its output with a random `\restrict` key: not part of the schema.
        return String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
            .filter { !$0.hasPrefix("\\restrict ") && !$0.hasPrefix("\\unrestrict ") }.joined(separator: "\n")
    }

    static func firstDifference(_ a: String, _ b: String) -> String {
        let left = a.split(separator: "\n", omittingEmptySubsequences: false)
        let right = b.split(separator: "\n", omittingEmptySubsequences: false)
        for index in 0..<max(left.count, right.count) {
            let l = index < left.count ? String(left[index]) : "<end>"
            let r = index < right.count ? String(right[index]) : "<end>"
            if l != r { return "line \(index + 1): upgraded «\(l)», fresh «\(r)»" }
        }
        return "none"
    }
}
