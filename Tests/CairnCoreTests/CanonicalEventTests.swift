import CairnCore
import Testing

@Suite struct CanonicalEventTests {
    let receivedAt = Timestamp(parsing: "2024-05-01T10:00:00Z")!

    @Test func internalEventIdFollowsDesign() throws {
        // Reference: xxhash.xxh64("acme␟track␟Added to cart␟u-1␟c-1␟2024-05-01T09:05:00.000000Z").
        let event = CanonicalEvent(
            appToken: "acme", eventType: .track, eventName: "Added to cart", userId: "u-1", companyId: "c-1",
            source: "web-client", insertedAt: try #require(Timestamp(parsing: "2024-05-01T09:05:00Z")),
            receivedAt: receivedAt, origin: .userpilot)
        #expect(event.internalEventIdHex == "524219257021a6e6")
        #expect(event.internalEventIdBigint == Int64(bitPattern: 0x5242_1925_7021_A6E6))
        // Absent ids are empty strings in the key.
        let page = CanonicalEvent(
            appToken: "acme", eventType: .pageView, eventName: "", userId: "u-3", companyId: nil, source: "web-client",
            insertedAt: try #require(Timestamp(parsing: "2024-06-03T11:06:00Z")), receivedAt: receivedAt, origin: .userpilot)
        #expect(page.internalEventIdHex == "e0d693c18f16ca39")
    }

    @Test func canonicalJSONRoundTrips() throws {
        let event = CanonicalEvent(
            appToken: "acme", eventType: .interaction, eventName: "nps:1:SUBMITTED_SCORE", userId: "u", companyId: nil,
            anonymousId: "anon", source: "web-client", insertedAt: receivedAt, hostname: "h", pathname: "/p", screenWidth: 10,
            screenHeight: 20, countryCode: "DE", metadata: ["score": "9"], messageId: "m1", receivedAt: receivedAt, origin: .userpilot)
        let decoded = try CanonicalEvent(canonical: try JSONParser.parse(event.json.serialized()))
        #expect(decoded == event)
    }

    @Test func refusesATamperedId() throws {
        let event = CanonicalEvent(appToken: "acme", eventType: .track, eventName: "A", userId: "u", companyId: nil,
                                   source: "web-client", insertedAt: receivedAt, receivedAt: receivedAt, origin: .userpilot)
        guard case .object(var object) = event.json else { Issue.record("not an object"); return }
        object["event_name"] = "B"
        #expect(throws: EventError.self) { try CanonicalEvent(canonical: .object(object)) }
    }
}
