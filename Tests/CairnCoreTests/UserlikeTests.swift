import CairnCore
import Testing

@Suite struct UserlikeTests {
    @Test func acceptsEveryDocumentedEvent() throws {
        let events = try fixtureLines("userlike.jsonl").map { try event($0) }
        #expect(events.count == UserlikeAdapter.eventNames.count)
        #expect(Set(events.map(\.eventName)) == Set(UserlikeAdapter.eventNames))
        for event in events {
            #expect(event.origin == .userlike)
            #expect(event.eventType == .track)
            #expect(event.anonymousId == "7f3c2a9e-5b1d-4c8e-9a2f-0d6b4e1c3a57")
            #expect(event.userId == nil)
            #expect(event.session == "sess-1")
            #expect(event.metadata["widget_id"] == .int(4711))
            #expect(event.metadata["operator_group_id"] == .int(12))
            #expect(event.metadata["widget_lang"] == "en")
        }
        let chat = try #require(events.first { $0.eventName == "chat_started" })
        #expect(chat.metadata["chat_id"] == "chat-88")
        #expect(chat.metadata["operator_id"] == .int(301))
        #expect(chat.metadata["custom_data"]?["plan"] == "pro")
    }

    @Test func personalDataIsHashedByDefaultAndCanBeKeptOrDropped() throws {
        let line = try fixtureLines("userlike.jsonl")[10]
        let hashed = try event(line)
        #expect(hashed.metadata["client_email"] == nil)
        // sha256("ada@example.com"): trimmed and lower-cased first, so it joins across sources.
        #expect(hashed.metadata["client_email_sha256"] == .string(SHA256.hex(Array("ada@example.com".utf8))))
        #expect(hashed.metadata["client_name_sha256"]?.stringValue?.count == 64)
        var keep = testContext
        keep.personalData = .keep
        #expect(try event(line, context: keep).metadata["client_email"] == "Ada@Example.com")
        var drop = testContext
        drop.personalData = .drop
        let dropped = try event(line, context: drop)
        #expect(dropped.metadata.keys.allSatisfy { !$0.hasPrefix("client_") })
    }

    @Test(arguments: [
        (#"{"event_name":"chat_exploded","global_ctx":{"client_uuid":"c","widget_id":1}}"#, "event_name", EventError.Code.invalidField),
        (#"{"event_name":"chat_started","global_ctx":{"widget_id":1}}"#, "global_ctx.client_uuid", .missingField),
        (#"{"event_name":"chat_started","global_ctx":{"client_uuid":"c","widget_id":"4711"}}"#, "global_ctx.widget_id", .invalidField),
        (
            #"{"event_name":"chat_started","global_ctx":{"client_uuid":"c","widget_id":1,"operator_group_id":1.5}}"#, "global_ctx.operator_group_id",
            .invalidField
        ),
        (
            #"{"event_name":"chat_started","global_ctx":{"client_uuid":"c","widget_id":1,"widget_lang":"english"}}"#, "global_ctx.widget_lang",
            .invalidField
        ),
        (
            #"{"event_name":"chat_started","global_ctx":{"client_uuid":"c","widget_id":1},"session_ctx":{"chat_id":88}}"#, "session_ctx.chat_id",
            .invalidField
        ),
        (
            #"{"event_name":"chat_started","global_ctx":{"client_uuid":"c","widget_id":1},"session_ctx":{"operator_id":"301"}}"#,
            "session_ctx.operator_id", .invalidField
        ),
        (
            #"{"event_name":"chat_started","global_ctx":{"client_uuid":"c","widget_id":1},"session_ctx":{"custom_data":"x"}}"#,
            "session_ctx.custom_data", .invalidField
        ),
        (
            #"{"event_name":"chat_started","global_ctx":{"client_uuid":"c","widget_id":1},"session_ctx":{"browser":"x"}}"#, "session_ctx.browser",
            .unknownField
        ),
    ])
    func refusesWhatTheSeedDoesNotAllow(record: String, field: String, code: EventError.Code) throws {
        let error = try #require(failure(record))
        #expect(error.field == field)
        #expect(error.code == code)
    }
}

@Suite struct UserlikeIdentificationTests {
    @Test func clientEmailIdentifiesTheContactWhenTheAppSaysSo() throws {
        let line = try fixtureLines("userlike.jsonl")[10]
        #expect(try event(line).userId == nil)
        var enabled = testContext
        enabled.identifyUserlikeByEmail = true
        let hashed = try event(line, context: enabled)
        #expect(hashed.userId == SHA256.hex(Array("ada@example.com".utf8)))
        #expect(hashed.anonymousId == "7f3c2a9e-5b1d-4c8e-9a2f-0d6b4e1c3a57")
        enabled.personalData = .keep
        #expect(try event(line, context: enabled).userId == "ada@example.com")
        // Without an email there is nobody to identify.
        #expect(try event(try fixtureLines("userlike.jsonl")[0], context: enabled).userId == nil)
    }
}
