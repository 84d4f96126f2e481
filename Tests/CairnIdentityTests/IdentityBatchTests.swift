import CairnCore
import CairnIdentity
import Testing

@Suite struct IdentityBatchTests {
    func event(_ type: EventType, user: String?, company: String?, at: String, metadata: JSONObject = [:]) -> JSON {
        CanonicalEvent(appToken: "acme", eventType: type, eventName: type.hasEmptyName ? "" : "x", userId: user, companyId: company,
                       source: "web-client", insertedAt: Timestamp(parsing: at)!, metadata: metadata,
                       receivedAt: Timestamp(parsing: at)!, origin: .userpilot).json
    }

    @Test func foldsUsersWithLaterTraitsWinningWhateverTheOrder() throws {
        var batch = IdentityBatch()
        // Arrival order is the reverse of event time.
        batch.add(event(.identifyUser, user: "u1", company: "c2", at: "2024-05-03T00:00:00Z", metadata: ["plan": "pro"]))
        batch.add(event(.track, user: "u1", company: nil, at: "2024-05-04T00:00:00Z"))
        batch.add(event(.identifyUser, user: "u1", company: "c1", at: "2024-05-01T00:00:00Z", metadata: ["plan": "free", "email": "a@x"]))
        let users = try #require(batch.userRows().arrayValue)
        #expect(users.count == 1)
        let user = users[0]
        #expect(user["first_seen"] == "2024-05-01T00:00:00.000000Z")
        #expect(user["last_seen"] == "2024-05-04T00:00:00.000000Z")
        #expect(user["traits"]?["plan"] == "pro")
        #expect(user["traits"]?["email"] == "a@x")
        #expect(user["traits_updated_at"] == "2024-05-03T00:00:00.000000Z")
        #expect(user["company_id"] == "c2")
    }

    @Test func foldsCompaniesAndLeavesAnonymousEventsAlone() throws {
        var batch = IdentityBatch()
        batch.add(event(.identifyCompany, user: nil, company: "c1", at: "2024-05-02T00:00:00Z", metadata: ["name": "Acme"]))
        batch.add(event(.pageView, user: nil, company: nil, at: "2024-05-02T00:00:00Z"))
        batch.add(["garbage": true])
        #expect(batch.userRows().arrayValue?.isEmpty == true)
        let companies = try #require(batch.companyRows().arrayValue)
        #expect(companies.count == 1)
        #expect(companies[0]["traits"]?["name"] == "Acme")
        #expect(companies[0]["company_id"] == "c1")
    }
}
