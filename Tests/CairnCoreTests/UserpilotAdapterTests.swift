import CairnCore
import Testing

@Suite struct UserpilotAdapterTests {
    let now = Timestamp(parsing: "2024-05-01T10:00:00Z")!

    func normalize(_ text: String, app: String = "acme") throws(EventError) -> CanonicalEvent {
        let events = try EventNormalizer.normalize(recordBytes: Array(text.utf8), format: .auto, app: app, receivedAt: now)
        return events[0]
    }

    func error(_ text: String) -> EventError? {
        do {
            _ = try normalize(text)
            return nil
        } catch {
            return error
        }
    }

    @Test func acceptsTheSeedExamples() throws {
        let survey = try normalize(#"{"event_type":"interaction","event_name":"survey_module:49:COMPLETED","user_id":"u","inserted_at":"2024-05-01T09:00:00.123456Z","attributes":{"feedback":"318b72c9","interaction_id":"survey_module_49","is_dismissed":"0","parent_id":"survey_13","status":"COMPLETED","survey_question":"","variant":"multiple_choice"}}"#)
        #expect(survey.eventType == .interaction)
        #expect(survey.metadata["variant"] == "multiple_choice")
        #expect(survey.insertedAt.description == "2024-05-01T09:00:00.123456Z")
        #expect(survey.source == "web-client")
        #expect(survey.origin == .userpilot)

        let identify = try normalize(#"{"app_token":"acme","event_type":"identify_user","user_id":"u","company_id":"c","source":"backend-segment","inserted_at":"2024-05-01T09:00:00Z","metadata":{"email":"a@b.c"},"screen_width":1440,"country_code":"de"}"#)
        #expect(identify.eventName == "")
        #expect(identify.screenWidth == 1440)
        #expect(identify.countryCode == "DE")
        #expect(identify.source == "backend-segment")
    }

    @Test func missingInsertedAtMeansReceipt() throws {
        let event = try normalize(#"{"event_type":"page_view","user_id":"u"}"#)
        #expect(event.insertedAt == now)
    }

    @Test(arguments: [
        (#"{"event_type":"clicked","user_id":"u"}"#, "event_type", EventError.Code.invalidField),
        (#"{"user_id":"u","event_type":null}"#, "event_type", .missingField),
        (#"{"event_type":"page_view","event_name":"Home"}"#, "event_name", .invalidField),
        (#"{"event_type":"track","user_id":"u"}"#, "event_name", .missingField),
        (#"{"event_type":"track_feature"}"#, "event_name", .missingField),
        (#"{"event_type":"interaction","event_name":"checklist:10"}"#, "event_name", .invalidField),
        (#"{"event_type":"interaction","event_name":"checklist:10:seen"}"#, "event_name", .invalidField),
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
        let failure = try #require(error(record))
        #expect(failure.field == field)
        #expect(failure.code == code)
        #expect(!failure.message.isEmpty)
    }

    @Test func refusesRecordsThatAreNotEvents() {
        #expect(error("[1,2]")?.code == .invalidEvent)
        #expect(error(#"{"hello":"world"}"#)?.code == .invalidEvent)
        #expect(error("{not json")?.code == .invalidJSON)
    }

    @Test func appNamesAreChecked() {
        #expect(throws: Never.self) { try AppName.validate("acme-prod.v2") }
        #expect(throws: EventError.self) { try AppName.validate("") }
        #expect(throws: EventError.self) { try AppName.validate("-acme") }
        #expect(throws: EventError.self) { try AppName.validate("a/b") }
        #expect(throws: EventError.self) { try AppName.validate(String(repeating: "a", count: 65)) }
    }
}
