import CairnCore
import Foundation
import Testing

@Suite struct CanonicalEventTests {
    let receivedAt = Timestamp(parsing: "2024-05-01T10:00:00Z")!

    @Test func internalEventIdFollowsDesign() throws {
        // Reference: xxhash.xxh64("acme␟track␟Added to cart␟u-1␟c-1␟2024-05-01T09:05:00.000000Z").
        let event = CanonicalEvent(
            appToken: "acme",
            eventType: .track,
            eventName: "Added to cart",
            userId: "u-1",
            companyId: "c-1",
            source: "web-client",
            insertedAt: try #require(Timestamp(parsing: "2024-05-01T09:05:00Z")),
            receivedAt: receivedAt,
            origin: .userpilot
        )
        #expect(event.internalEventIdHex == "524219257021a6e6")
        #expect(event.internalEventIdBigint == Int64(bitPattern: 0x5242_1925_7021_A6E6))
        // Absent ids are empty strings in the key.
        let page = CanonicalEvent(
            appToken: "acme",
            eventType: .pageView,
            eventName: "",
            userId: "u-3",
            companyId: nil,
            source: "web-client",
            insertedAt: try #require(Timestamp(parsing: "2024-06-03T11:06:00Z")),
            receivedAt: receivedAt,
            origin: .userpilot
        )
        #expect(page.internalEventIdHex == "e0d693c18f16ca39")
    }

    @Test func canonicalJSONRoundTrips() throws {
        let event = CanonicalEvent(
            appToken: "acme",
            eventType: .interaction,
            eventName: "nps:1:SUBMITTED_SCORE",
            userId: "u",
            companyId: nil,
            anonymousId: "anon",
            source: "web-client",
            insertedAt: receivedAt,
            hostname: "h",
            pathname: "/p",
            screenWidth: 10,
            screenHeight: 20,
            countryCode: "DE",
            metadata: ["score": "9"],
            messageId: "m1",
            receivedAt: receivedAt,
            origin: .userpilot
        )
        let decoded = try CanonicalEvent(canonical: try JSONParser.parse(event.json.serialized()))
        #expect(decoded == event)
    }

    @Test func aCanonicalEventKeepsTheIdItCarries() throws {
        // Ids are not recomputed between hops: an event spooled under older identity rules keeps its row.
        let event = CanonicalEvent(
            appToken: "acme",
            eventType: .track,
            eventName: "A",
            userId: "u",
            companyId: nil,
            source: "web-client",
            insertedAt: receivedAt,
            receivedAt: receivedAt,
            origin: .segment
        )
        guard case .object(var object) = event.json else {
            Issue.record("not an object")
            return
        }
        object["internal_event_id"] = "00000000000000ff"
        #expect(try CanonicalEvent(canonical: .object(object)).internalEventId == 255)
        object["internal_event_id"] = "not-an-id"
        #expect(throws: EventError.self) { try CanonicalEvent(canonical: .object(object)) }
        object["internal_event_id"] = nil
        #expect(try CanonicalEvent(canonical: .object(object)).internalEventId == event.internalEventId)
    }

    /// Issue 17's four messages: two anonymous visitors and one user's two purchases, each
    /// pair in the same second, each message with its own id, are four events.
    @Test func differentMessagesAreDifferentEventsAndARetryIsOne() throws {
        let context = IngestContext(appToken: "acme", receivedAt: receivedAt)
        let lines = [
            #"{"type":"track","event":"Viewed","anonymousId":"anon-1","timestamp":"2024-05-01T09:00:00Z","messageId":"m-1"}"#,
            #"{"type":"track","event":"Viewed","anonymousId":"anon-2","timestamp":"2024-05-01T09:00:00Z","messageId":"m-2"}"#,
            #"{"type":"track","event":"Purchased","userId":"u-1","properties":{"price":10},"timestamp":"2024-05-01T09:00:00Z","messageId":"m-3"}"#,
            #"{"type":"track","event":"Purchased","userId":"u-1","properties":{"price":20},"timestamp":"2024-05-01T09:00:00Z","messageId":"m-4"}"#,
        ]
        let ids = lines.map { EventNormalizer.normalize(recordBytes: Array($0.utf8), format: .auto, context: context).events.first?.internalEventId }
        #expect(Set(ids.compactMap { $0 }).count == 4)
        // A retry a second later (its own receipt time) is the same event.
        let later = IngestContext(appToken: "acme", receivedAt: Timestamp(microseconds: receivedAt.microseconds + 1_000_000))
        #expect(EventNormalizer.normalize(recordBytes: Array(lines[2].utf8), format: .auto, context: later).events.first?.internalEventId == ids[2])
        // Without messageIds, the whole record is the identity: the two purchases still differ.
        let bare = lines.map { $0.replacingOccurrences(of: #","messageId":"m-\d""#, with: "", options: .regularExpression) }
        let bareIds = bare.map {
            EventNormalizer.normalize(recordBytes: Array($0.utf8), format: .auto, context: context).events.first?.internalEventId
        }
        #expect(Set(bareIds.compactMap { $0 }).count == 4)
        #expect(
            EventNormalizer.normalize(recordBytes: Array(bare[3].utf8), format: .auto, context: later).events.first?.internalEventId == bareIds[3]
        )
        // Property order does not make a different event.
        let reordered = #"{"event":"Purchased","type":"track","timestamp":"2024-05-01T09:00:00Z","properties":{"price":20},"userId":"u-1"}"#
        #expect(
            EventNormalizer.normalize(recordBytes: Array(reordered.utf8), format: .auto, context: context).events.first?.internalEventId == bareIds[3]
        )
    }
}
