import CairnCore
import Testing

@Suite struct UserpilotAdapterTests {
    @Test func acceptsTheSeedExamplesOfEveryEntityType() throws {
        let events = try fixtureLines("userpilot-interactions.jsonl").map { try event($0) }
        #expect(Set(events.map { String($0.eventName.split(separator: ":")[0]) }) == Set(UserpilotAdapter.interactionAttributes.keys))
        let sample = try fixtureLines("userpilot-sample.jsonl").map { try event($0) }
        #expect(Set(sample.map(\.eventType)) == Set(EventType.allCases))
        let identify = sample[0]
        #expect(identify.screenWidth == 1440)
        #expect(identify.countryCode == "DE")
        #expect(identify.metadata["plan_type"] == "pro")
        #expect(identify.origin == .userpilot)
    }

    @Test func missingInsertedAtMeansReceipt() throws {
        #expect(try event(#"{"event_type":"page_view","user_id":"u"}"#).insertedAt == testContext.receivedAt)
    }

    @Test func aSuppliedInternalEventIdIsKeptInHexOrDecimal() throws {
        let base =
            #"{"app_token":"acme","event_type":"track","event_name":"Added to cart","user_id":"u-1","company_id":"c-1","inserted_at":"2024-05-01T09:05:00.000000Z""#
        // The composite key, when the record carries no id.
        #expect(try event(base + "}").internalEventIdHex == "524219257021a6e6")
        // A different id is not evidence of corruption: the seed never says how the key is serialised.
        #expect(try event(base + #","internal_event_id":"0000000000000001"}"#).internalEventId == 1)
        #expect(try event(base + #","internal_event_id":"18446744073709551615"}"#).internalEventId == UInt64.max)
        #expect(try event(base + #","internal_event_id":"-2"}"#).internalEventIdBigint == -2)
        #expect(try event(base + #","internal_event_id":12345}"#).internalEventId == 12345)
        #expect(try event(base + #","internal_event_id":"0xFF"}"#).internalEventId == 255)
        for bad in [#""not-a-number""#, #""184467440737095516150""#, #""0x1ffffffffffffffff""#, "1.5"] {
            let error = try #require(failure(base + #","internal_event_id":"# + bad + "}"), "\(bad)")
            #expect(error.field == "internal_event_id")
            #expect(error.code == .invalidField)
        }
    }

    @Test func seedExampleObjectsWithoutATypeAreInteractions() throws {
        let example = try event(#"{"event_name":"checklist:10:SEEN","attributes":{"interaction_id":"checklist_10","parent_id":"","status":"SEEN"}}"#)
        #expect(example.eventType == .interaction)
        #expect(EventNormalizer.detect(["event_name": "checklist:10:SEEN", "attributes": .object([:])]) == .userpilot)
        let missing = try #require(failure(#"{"event_name":"Added to cart","attributes":{}}"#))
        #expect(missing.field == "event_type")
        // Entity types beyond the seed's common list are interactions, with their attributes kept.
        let survey = try event(
            #"{"event_type":"interaction","event_name":"survey:13:COMPLETED","attributes":{"interaction_id":"survey_13","answers":"3"}}"#
        )
        #expect(survey.metadata["answers"] == "3")
    }

    @Test(arguments: [
        (#"{"event_type":"clicked","user_id":"u"}"#, "event_type", EventError.Code.invalidField),
        (#"{"user_id":"u","event_type":null}"#, "event_type", .missingField),
        (#"{"event_type":"page_view","event_name":"Home"}"#, "event_name", .invalidField),
        (#"{"event_type":"track","user_id":"u"}"#, "event_name", .missingField),
        (#"{"event_type":"track_feature"}"#, "event_name", .missingField),
        (#"{"event_type":"interaction","event_name":"checklist:10"}"#, "event_name", .invalidField),
        (#"{"event_type":"interaction","event_name":"checklist:10:seen"}"#, "event_name", .invalidField),
        (#"{"event_type":"interaction","event_name":"Tooltip:1:SEEN"}"#, "event_name", .invalidField),
        (#"{"event_type":"interaction","event_name":"checklist:10:SEEN","attributes":{"variant":"A"}}"#, "attributes.variant", .unknownField),
        (#"{"event_type":"interaction","event_name":"checklist:10:SEEN","attributes":{"status":7}}"#, "attributes.status", .invalidField),
        (
            #"{"event_type":"interaction","event_name":"checklist:10:SEEN","attributes":{"interaction_id":"checklist_11"}}"#,
            "attributes.interaction_id", .invalidField
        ),
        (#"{"event_type":"interaction","event_name":"experiment:9:SEEN","attributes":{"variant":"D"}}"#, "attributes.variant", .invalidField),
        (
            #"{"event_type":"interaction","event_name":"experience:9:SEEN","attributes":{"is_dismissed":"yes"}}"#, "attributes.is_dismissed",
            .invalidField
        ),
        (#"{"event_type":"interaction","event_name":"nps:1:SUBMITTED_SCORE","attributes":{"score":"11"}}"#, "attributes.score", .invalidField),
        (#"{"event_type":"identify_user"}"#, "user_id", .missingField),
        (#"{"event_type":"identify_company","user_id":"u"}"#, "company_id", .missingField),
        (#"{"event_type":"track","event_name":"A","source":"mobile"}"#, "source", .invalidField),
        (#"{"event_type":"track","event_name":"A","inserted_at":"May 1st"}"#, "inserted_at", .invalidField),
        (#"{"event_type":"track","event_name":"A","screen_width":-5}"#, "screen_width", .invalidField),
        (#"{"event_type":"track","event_name":"A","screen_width":"wide"}"#, "screen_width", .invalidField),
        (#"{"event_type":"track","event_name":"A","user_id":7}"#, "user_id", .invalidField),
        (#"{"event_type":"track","event_name":"A","metadata":[1]}"#, "metadata", .invalidField),
        (#"{"event_type":"page_view","metadata":{"x":1}}"#, "metadata", .invalidField),
        (#"{"event_type":"track","event_name":"A","country_code":"Germany"}"#, "country_code", .invalidField),
        (#"{"event_type":"track","event_name":"A","colour":"teal"}"#, "colour", .unknownField),
        (#"{"event_type":"track","event_name":"A","app_token":"other"}"#, "app_token", .appMismatch),
        (#"{"event_type":"track","event_name":"A","metadata":{},"attributes":{}}"#, "attributes", .invalidField),
    ])
    func refusesWithTheFieldAndReason(record: String, field: String, code: EventError.Code) throws {
        let error = try #require(failure(record))
        #expect(error.field == field)
        #expect(error.code == code)
        #expect(!error.message.isEmpty)
    }

    @Test func appNamesAreChecked() {
        #expect(throws: Never.self) { try AppName.validate("acme-prod.v2") }
        #expect(throws: EventError.self) { try AppName.validate("") }
        #expect(throws: EventError.self) { try AppName.validate("-acme") }
        #expect(throws: EventError.self) { try AppName.validate("a/b") }
        #expect(throws: EventError.self) { try AppName.validate(String(repeating: "a", count: 65)) }
    }
}
