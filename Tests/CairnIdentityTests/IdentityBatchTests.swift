import CairnCore
import CairnIdentity
import Testing

@Suite struct IdentityBatchTests {
    func event(_ type: EventType, user: String?, company: String? = nil, anonymous: String? = nil, at: String, metadata: JSONObject = [:]) -> JSON {
        CanonicalEvent(
            appToken: "acme",
            eventType: type,
            eventName: type.hasEmptyName ? "" : "x",
            userId: user,
            companyId: company,
            anonymousId: anonymous,
            source: "web-client",
            insertedAt: Timestamp(parsing: at)!,
            metadata: metadata,
            receivedAt: Timestamp(parsing: at)!,
            origin: .userpilot
        ).json
    }

    var identifies: [JSON] {
        [
            event(.identifyUser, user: "u1", company: "c2", at: "2024-05-03T00:00:00Z", metadata: ["plan": "pro"]),
            event(.track, user: "u1", at: "2024-05-04T00:00:00Z"),
            event(.identifyUser, user: "u1", company: "c1", at: "2024-05-01T00:00:00Z", metadata: ["plan": "free", "email": "a@x"]),
        ]
    }

    /// Two ids that Swift calls equal (a precomposed é, and e with a combining accent) are two
    /// users to PostgreSQL, so they are two rows here too, each with its own traits.
    @Test func idsAndTraitNamesCompareByTheirBytes() throws {
        var batch = IdentityBatch()
        batch.add(event(.identifyUser, user: "ann\u{e9}", at: "2024-05-01T00:00:00Z", metadata: ["plan": "nfc"]))
        batch.add(event(.identifyUser, user: "anne\u{301}", at: "2024-05-01T00:00:00Z", metadata: ["plan": "nfd", "caf\u{e9}": 1, "cafe\u{301}": 2]))
        let users = try #require(batch.userRows().arrayValue)
        #expect(users.count == 2)
        let nfd = try #require(users.first { Array(($0["user_id"]?.stringValue ?? "").utf8) == Array("anne\u{301}".utf8) })
        #expect(nfd["traits"]?.objectValue?.count == 3)
    }

    @Test func laterTraitsWinKeyByKeyWhateverTheOrder() throws {
        for order in [identifies, identifies.reversed(), [identifies[1], identifies[2], identifies[0]]] {
            var batch = IdentityBatch()
            for event in order { batch.add(event) }
            let users = try #require(batch.userRows().arrayValue)
            #expect(users.count == 1)
            let user = users[0]
            #expect(user["first_seen"] == "2024-05-01T00:00:00.000000Z")
            #expect(user["last_seen"] == "2024-05-04T00:00:00.000000Z")
            #expect(user["traits"] == ["email": "a@x", "plan": "pro"])
            #expect(user["trait_times"]?["plan"] == "2024-05-03T00:00:00.000000Z")
            #expect(user["trait_times"]?["email"] == "2024-05-01T00:00:00.000000Z")
            #expect(user["company_id"] == "c2")
            let memberships = try #require(batch.membershipRows().arrayValue)
            #expect(memberships.map { $0["company_id"] } == ["c1", "c2"])
        }
    }

    @Test func equalTimesAreDecidedByValueNotArrival() throws {
        let a = event(.identifyUser, user: "u", at: "2024-05-01T00:00:00Z", metadata: ["plan": "alpha"])
        let b = event(.identifyUser, user: "u", at: "2024-05-01T00:00:00Z", metadata: ["plan": "beta"])
        var first = IdentityBatch()
        first.add(a)
        first.add(b)
        var second = IdentityBatch()
        second.add(b)
        second.add(a)
        #expect(first.userRows() == second.userRows())
        #expect(first.userRows().arrayValue?.first?["traits"]?["plan"] == "beta")
    }

    @Test func identifiesAliasAnonymousIdsEarliestFirstAndNeverIllegalOnes() throws {
        var batch = IdentityBatch()
        batch.add(event(.identifyUser, user: "u2", anonymous: "device-1", at: "2024-05-02T00:00:00Z"))
        batch.add(event(.identifyUser, user: "u1", anonymous: "device-1", at: "2024-05-01T00:00:00Z"))
        batch.add(event(.identifyUser, user: "u3", anonymous: "undefined", at: "2024-05-01T00:00:00Z"))
        batch.add(event(.identifyUser, user: "u4", anonymous: "[object Object]", at: "2024-05-01T00:00:00Z"))
        batch.add(event(.identifyUser, user: "u5", anonymous: "  ", at: "2024-05-01T00:00:00Z"))
        batch.add(event(.track, user: "u6", anonymous: "device-6", at: "2024-05-01T00:00:00Z"))
        let aliases = try #require(batch.aliasRows().arrayValue)
        #expect(aliases.count == 1)
        #expect(aliases[0]["alias_id"] == "device-1")
        #expect(aliases[0]["user_id"] == "u1")
        #expect(batch.refusedAliases == 3)
    }

    @Test(arguments: ["", "anonymous", "Guest", "null", "0", "NaN", "undefined", "[object Object]", "None", "distinct_id", "EMAIL"])
    func illegalIds(_ id: String) {
        #expect(IllegalIds.contains(id))
    }

    @Test func ordinaryIdsAreLegal() {
        for id in ["u-1", "7f3c2a9e", "ada@acme.io", "00", "nullable"] { #expect(!IllegalIds.contains(id)) }
    }

    @Test func foldsCompaniesAndLeavesAnonymousEventsAlone() throws {
        var batch = IdentityBatch()
        batch.add(event(.identifyCompany, user: nil, company: "c1", at: "2024-05-02T00:00:00Z", metadata: ["name": "Acme"]))
        batch.add(event(.pageView, user: nil, at: "2024-05-02T00:00:00Z"))
        batch.add(["garbage": true])
        #expect(batch.userRows().arrayValue?.isEmpty == true)
        let companies = try #require(batch.companyRows().arrayValue)
        #expect(companies.count == 1)
        #expect(companies[0]["traits"]?["name"] == "Acme")
        #expect(companies[0]["company_id"] == "c1")
    }
}

@Suite struct UserlikeAliasTests {
    @Test func anIdentifiedUserlikeContactAliasesItsClientUUID() throws {
        let event = CanonicalEvent(
            appToken: "acme",
            eventType: .track,
            eventName: "chat_started",
            userId: "ada@example.com",
            companyId: nil,
            anonymousId: "client-uuid-1",
            source: "web-client",
            insertedAt: Timestamp(parsing: "2024-05-01T00:00:00Z")!,
            receivedAt: Timestamp(parsing: "2024-05-01T00:00:00Z")!,
            origin: .userlike
        )
        var batch = IdentityBatch()
        batch.add(event.json)
        #expect(batch.aliasRows().arrayValue?.first?["alias_id"] == "client-uuid-1")
        #expect(batch.aliasRows().arrayValue?.first?["user_id"] == "ada@example.com")
    }
}
