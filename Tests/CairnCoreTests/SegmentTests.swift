import Testing

@testable import CairnCore

@Suite struct SegmentTests {
    /// Segment's clock-skew correction, and a sentAt that would carry the time out of the
    /// writable years is no correction (the window then judges the stated time).
    @Test func sentAtCorrectsTheDevicesClock() throws {
        let context = IngestContext(appToken: "acme", receivedAt: Timestamp(parsing: "2024-05-01T12:00:00Z")!)
        let skewed = try event(
            #"{"type":"track","event":"E","userId":"u","timestamp":"2024-05-01T13:00:00Z","sentAt":"2024-05-01T13:00:05Z"}"#,
            context: context
        )
        #expect(skewed.insertedAt.description == "2024-05-01T11:59:55.000000Z")
        let wild = failure(
            #"{"type":"track","event":"E","userId":"u","timestamp":"2026-01-01T00:00:00Z","sentAt":"9999-01-01T00:00:00Z"}"#,
            context: context
        )
        #expect(wild?.code == .timeOutOfRange)
        // The envelope's sentAt stands for its messages'.
        let outcome = EventNormalizer.normalize(
            recordBytes: Array(
                #"{"batch":[{"type":"track","event":"E","userId":"u","timestamp":"2024-05-01T13:00:00Z"}],"sentAt":"2024-05-01T13:00:05Z"}"#.utf8
            ),
            format: .auto,
            context: context
        )
        #expect(outcome.events.first?.insertedAt.description == "2024-05-01T11:59:55.000000Z")
    }

    /// The envelope's context reaches every message, so each must fit the 32 KB limit with it.
    @Test func theEnvelopesContextCountsTowardsEachMessage() throws {
        let blob = String(repeating: "y", count: 40_000)
        let record = #"{"context":{"traits":{"blob":"\#(blob)"}},"batch":[{"type":"identify","userId":"a"},{"type":"identify","userId":"b"}]}"#
        let outcome = EventNormalizer.normalize(recordBytes: Array(record.utf8), format: .auto, context: testContext)
        #expect(outcome.events.isEmpty)
        // Refused once, whole: not copied into a dead letter per message.
        #expect(outcome.rejections.map(\.error.code) == [.recordTooLarge])
        #expect(outcome.rejections.first?.error.field == "context")
        // A context within the limit that one message's properties push over it refuses that message alone.
        let half = String(repeating: "z", count: 20_000)
        let mixed =
            #"{"context":{"traits":{"blob":"\#(half)"}},"batch":[{"type":"track","event":"E","userId":"a","properties":{"p":"\#(half)"}},{"type":"identify","userId":"b"}]}"#
        let split = EventNormalizer.normalize(recordBytes: Array(mixed.utf8), format: .auto, context: testContext)
        #expect(split.events.count == 1 && split.rejections.map(\.message) == [0])
    }

    func events() throws -> [CanonicalEvent] {
        try fixtureLines("segment.jsonl").flatMap { line -> [CanonicalEvent] in
            let outcome = EventNormalizer.normalize(recordBytes: Array(line.utf8), format: .auto, context: testContext)
            #expect(outcome.rejections.isEmpty, "\(outcome.rejections.map(\.error))")
            return outcome.events
        }
    }

    @Test func mapsEachCallType() throws {
        let all = try events()
        #expect(all.count == 8)
        let track = all[0]
        #expect(track.eventType == .track)
        #expect(track.eventName == "Order Completed")
        #expect(track.metadata["revenue"] == .double(19.99))
        #expect(track.userId == "u-1")
        #expect(track.anonymousId == nil)
        #expect(track.messageId == "5c9ac019-0001")
        #expect(track.insertedAt.description == "2024-05-01T12:00:00.071000Z")
        #expect(track.hostname == "app.acme.io")
        #expect(track.pathname == "/checkout")
        #expect(track.userAgent == "Mozilla/5.0")
        #expect(track.browserLanguage == "en-US")
        #expect(track.operatingSystem == "macOS")
        #expect(track.deviceType == "desktop")
        #expect(track.screenWidth == 1440)
        #expect(track.screenHeight == 900)
        #expect(track.countryCode == "DE")
        #expect(track.companyId == "c-1")
        #expect(track.source == "backend-segment")
        #expect(track.origin == .segment)

        let identify = all[1]
        #expect(identify.eventType == .identifyUser)
        #expect(identify.metadata["plan"] == "pro")
        #expect(identify.anonymousId == "anon-1")
        let group = all[2]
        #expect(group.eventType == .identifyCompany)
        #expect(group.companyId == "c-1")
        #expect(group.metadata["employees"] == "50")
        let page = all[3]
        #expect(page.eventType == .pageView)
        #expect(page.eventName == "")
        #expect(page.metadata["name"] == "Pricing")
        #expect(page.metadata["category"] == "Docs")
        #expect(page.hostname == "acme.io")
        #expect(page.pathname == "/pricing")
        let screen = all[4]
        #expect(screen.eventType == .pageView)
        #expect(screen.metadata["name"] == "Home")
        #expect(screen.metadata["screen"] == .bool(true))
        #expect(screen.deviceType == "ios")
        let alias = all[5]
        #expect(alias.eventType == .identifyUser)
        #expect(alias.userId == "u-1")
        #expect(alias.anonymousId == "anon-1")
        #expect(alias.eventName == "alias")
        // The batch envelope: its context reaches each message; a UserGuiding name is the UserGuiding event.
        #expect(all[6].eventName == "Guide Started")
        #expect(all[6].metadata["guide_id"] == "1")
        #expect(all[7].eventName == "Report Exported")
        #expect(all[7].browserLanguage == "de-DE")
    }

    @Test(arguments: [
        (#"{"type":"track","userId":"u"}"#, "event", EventError.Code.missingField),
        (#"{"type":"track","event":"A"}"#, "userId", .missingField),
        (#"{"type":"track","event":"A","userId":null,"anonymousId":null}"#, "userId", .missingField),
        (#"{"type":"group","userId":"u"}"#, "groupId", .missingField),
        (#"{"type":"alias","userId":"u"}"#, "previousId", .missingField),
        (#"{"type":"alias","previousId":"a"}"#, "userId", .missingField),
        (#"{"type":"explode","userId":"u"}"#, "type", .invalidField),
        (#"{"type":"track","event":"A","userId":"u","timestamp":"2015-2-02T00:00:00Z"}"#, "timestamp", .invalidField),
        (#"{"type":"track","event":"A","userId":"u","properties":[1]}"#, "properties", .invalidField),
        (#"{"type":"track","event":"A","userId":"u","context":{"screen":{"width":"wide"}}}"#, "context.screen.width", .invalidField),
    ])
    func refusesInvalidMessages(record: String, field: String, code: EventError.Code) throws {
        let error = try #require(failure(record))
        #expect(error.field == field)
        #expect(error.code == code)
    }

    @Test func numericIdsBecomeStringsAndLongMessageIdsAreRefused() throws {
        let numeric = try event(#"{"type":"track","event":"A","userId":42,"timestamp":"2024-05-01T00:00:00Z"}"#)
        #expect(numeric.userId == "42")
        let numericMessage = try event(#"{"type":"track","event":"A","userId":"u","messageId":7,"timestamp":"2024-05-01T00:00:00Z"}"#)
        #expect(numericMessage.messageId == "7")
        let sameAsText = try event(#"{"type":"track","event":"A","userId":"u","messageId":"7","timestamp":"2024-05-01T00:00:01Z"}"#)
        #expect(sameAsText.internalEventId == numericMessage.internalEventId)
        #expect(failure(#"{"type":"track","event":"A","userId":"u","messageId":7.5}"#)?.field == "messageId")
        let long = String(repeating: "m", count: 100)
        #expect(failure(#"{"type":"track","event":"A","userId":"u","messageId":""# + long + #""}"#)?.field == "messageId")
    }

    @Test func aBatchRefusesBadMessagesAndKeepsTheGoodOnes() {
        let batch = #"{"batch":[{"type":"track","event":"A","userId":"u"},{"type":"track","userId":"u"},7,{"type":"identify","userId":"u"}]}"#
        let outcome = EventNormalizer.normalize(recordBytes: Array(batch.utf8), format: .auto, context: testContext)
        #expect(outcome.events.count == 2)
        #expect(outcome.rejections.map(\.message) == [1, 2])
        #expect(outcome.rejections[0].error.field == "event")
        #expect(String(decoding: outcome.rejections[0].raw, as: UTF8.self).contains(#""type":"track""#))
    }
}

@Suite struct PageURLTests {
    @Test(arguments: [
        ("https://app.acme.io/dashboard?x=1#top", "app.acme.io", "/dashboard"),
        ("HTTP://User:pw@Host.IO:8080", "host.io", "/"),
        ("https://[::1]:8080/a/b", "[::1]:8080", "/a/b"),
        ("https://h#frag", "h", "/"),
        ("http://h?q=/x", "h", "/"),
        ("https://Bücher.example/straße", "bücher.example", "/straße"),
    ])
    func splitsAbsoluteURLs(url: String, host: String, path: String) throws {
        let parts = try #require(PageURL.split(url))
        #expect(parts.hostname == host && parts.pathname == path)
    }

    @Test(arguments: ["ftp://example.com/x", "/relative/path", "https:///no-host", "", "mailto:someone@example.com"])
    func refusesWhatIsNotAnAbsoluteHTTPURL(url: String) {
        #expect(PageURL.split(url) == nil)
    }
}
