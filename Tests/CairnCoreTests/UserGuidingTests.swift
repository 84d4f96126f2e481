import CairnCore
import Testing

@Suite struct UserGuidingTests {
    @Test func everyDocumentedKindIsInTheCatalogueAndTheFixture() throws {
        #expect(UserGuidingCatalog.kinds.count == 25)
        let events = try fixtureLines("userguiding.jsonl").map { try event($0, format: .userguiding) }
        #expect(Set(events.map(\.eventName)) == Set(UserGuidingCatalog.kinds.map(\.title)))
        for event in events {
            #expect(event.eventType == .track)
            #expect(event.origin == .userguiding)
            #expect(event.hostname == "panel.userguiding.com")
            #expect(event.pathname == "/dashboard")
            #expect(event.metadata["page_url"] == "https://panel.userguiding.com/dashboard")
        }
    }

    @Test func mapsPayloadFieldsToSnakeCaseProperties() throws {
        let click = try event(
            #"{"event":"guide button click","payload":{"guideId":"1","guideName":"Guide Name","step":"1","buttonId":"b","type":"custom","action":"dismiss-guide","ctaText":"Go","pageUrl":"https://x.io/a"},"user_id":"u","timestamp":"2024-05-01T10:00:00Z"}"#
        )
        #expect(click.eventName == "Guide Button Click")
        #expect(click.metadata.keys == ["guide_id", "guide_name", "page_url", "step", "button_id", "type", "action", "cta_text"])
        #expect(click.metadata["guide_id"] == "1")
        #expect(click.userId == "u")
        #expect(click.insertedAt.description == "2024-05-01T10:00:00.000000Z")
        let labelled = try event(#"{"event":"guide started (userguiding)","payload":{"guideId":"1","guideName":"G","pageUrl":"https://x.io/"}}"#)
        #expect(labelled.eventName == "Guide Started")
        #expect(labelled.userId == nil)
        #expect(labelled.insertedAt == testContext.receivedAt)
    }

    @Test func theSegmentSourceFormGivesTheSameCanonicalEvents() throws {
        let native = try fixtureLines("userguiding.jsonl").map { try event($0) }
        let segment = try fixtureLines("userguiding-segment.jsonl").map { try event($0) }
        #expect(segment.count == 14)
        for event in segment {
            let twin = try #require(native.first { $0.eventName == event.eventName && $0.insertedAt == event.insertedAt })
            #expect(event.internalEventId == twin.internalEventId, "\(event.eventName)")
            #expect(event.metadata == twin.metadata, "\(event.eventName)")
            #expect(event.userId == twin.userId)
            #expect(event.origin == .segment)
            #expect(event.messageId == nil)
        }
        // With its own messageId, the message is its own delivery: the id is the message's.
        let line = try fixtureLines("userguiding-segment.jsonl")[0]
        let withId = try event(String(line.dropLast()) + #", "messageId": "m-1"}"#)
        #expect(withId.internalEventId == EventIdentity.messageIdentity(appToken: "acme", messageId: "m-1"))
        #expect(withId.internalEventId != segment[0].internalEventId)
    }

    @Test func coercesWhereTheTwoSeedsDiffer() throws {
        // UserGuiding's webhook guide types ids as strings, UserGuiding's Segment guide as ints; either is the same string id, in either form.
        #expect(try event(#"{"event":"guide started","payload":{"guideId":1,"guideName":"G","pageUrl":"u"}}"#).metadata["guide_id"] == "1")
        // A whole number written as a string is the same score.
        let answer = try event(
            #"{"event":"survey question answer","payload":{"surveyId":"1","surveyName":"S","questionId":"q","surveyQuestion":"?","pageUrl":"u","questionType":"NPS Rating","score":"4"}}"#
        )
        #expect(answer.metadata["score"] == .int(4))
        #expect(
            failure(
                #"{"event":"survey question answer","payload":{"surveyId":"1","surveyName":"S","questionId":"q","surveyQuestion":"?","pageUrl":"u","questionType":"NPS Rating","score":"04"}}"#
            )?.field == "payload.score"
        )
        // The seed does not narrow the five labels per question type.
        let thumbs = try event(
            #"{"event":"survey question answer","payload":{"surveyId":"1","surveyName":"S","questionId":"q","surveyQuestion":"?","pageUrl":"u","questionType":"Thumbs Up/Down","emojiScore":"Neutral"}}"#
        )
        #expect(thumbs.metadata["emoji_score"] == "Neutral")
        // UserGuiding's Segment guide's Survey Question Answer carries no question_type.
        let segment = try event(
            #"{"type":"track","event":"Survey Question Answer","userId":"u","properties":{"survey_id":1,"survey_name":"S","question_id":"q","survey_question":"?","page_url":"u","score":9}}"#
        )
        #expect(segment.metadata["question_type"] == nil)
        #expect(segment.metadata["score"] == .int(9))
        // UserGuiding's Segment guide: the user id in the payload.
        #expect(try event(#"{"event":"guide started","payload":{"guideId":"1","guideName":"G","pageUrl":"u","user_id":"u-9"}}"#).userId == "u-9")
        #expect(
            failure(#"{"event":"guide started","user_id":"u-1","payload":{"guideId":"1","guideName":"G","pageUrl":"u","user_id":"u-9"}}"#)?.field
                == "payload.user_id"
        )
        // Engagement rollups key by the id: it obeys the 1,024-byte limit on ids.
        let long = String(repeating: "g", count: 1025)
        let tooLong = failure(#"{"event":"guide started","payload":{"guideId":"\#(long)","guideName":"G","pageUrl":"u"}}"#)
        #expect(tooLong?.code == .fieldTooLong && tooLong?.field == "payload.guideId")
    }

    @Test(arguments: [
        (#"{"questionType":"NPS Rating","score":11}"#, "payload.score", EventError.Code.invalidField),
        (#"{"questionType":"Star Rating","score":6}"#, "payload.score", .invalidField),
        (#"{"questionType":"NPS Rating"}"#, "payload.score", .missingField),
        (#"{"questionType":"Multiple Choice","choices":"A","score":3}"#, "payload.score", .invalidField),
        (#"{"questionType":"Emoji Rating (5)","emojiScore":"Ecstatic"}"#, "payload.emojiScore", .invalidField),
        (#"{"questionType":"Written Feedback","feedback":"x","emojiScore":"Positive"}"#, "payload.emojiScore", .invalidField),
        (#"{"questionType":"Multiple Choice"}"#, "payload.choices", .missingField),
        (#"{"questionType":"Written Feedback","choices":"A"}"#, "payload.choices", .invalidField),
        (#"{"questionType":"Written Feedback"}"#, "payload.feedback", .missingField),
        (#"{"questionType":"Star Rating","score":4,"feedback":"x"}"#, "payload.feedback", .invalidField),
        (#"{"questionType":"Slider","score":4}"#, "payload.questionType", .invalidField),
    ])
    func surveyAnswerRules(_ answer: String, field: String, code: EventError.Code) throws {
        let base = #"{"surveyId":"1","surveyName":"S","questionId":"q","surveyQuestion":"?","pageUrl":"https://x.io/","#
        let record = #"{"event":"survey question answer","payload":"# + base + answer.dropFirst() + "}"
        let error = try #require(failure(record))
        #expect(error.field == field)
        #expect(error.code == code)
    }

    @Test func validSurveyAnswersPass() throws {
        for (type, extra) in [
            ("Star Rating", #""score":5"#), ("Number Rating (5)", #""score":0"#), ("Number Rating (10)", #""score":10"#),
            ("Emoji Rating (3)", #""emojiScore":"Neutral""#), ("Emoji Rating (5)", #""emojiScore":"Slightly Negative""#),
        ] {
            let record =
                #"{"event":"survey question answer","payload":{"surveyId":"1","surveyName":"S","questionId":"q","surveyQuestion":"?","pageUrl":"https://x.io/","questionType":""#
                + type + #"","# + extra + "}}"
            #expect(throws: Never.self) { _ = try event(record) }
        }
    }

    @Test(arguments: [
        (#"{"event":"guide exploded","payload":{}}"#, "event", EventError.Code.invalidField),
        (#"{"event":"guide started","payload":{"guideId":"1","guideName":"G"}}"#, "payload.pageUrl", .missingField),
        (#"{"event":"guide started","payload":{"guideId":1.5,"guideName":"G","pageUrl":"u"}}"#, "payload.guideId", .invalidField),
        (#"{"event":"guide started","payload":{"guideId":"1","guideName":"G","pageUrl":"u","extra":1}}"#, "payload.extra", .unknownField),
        (#"{"event":"guide started","payload":{"guideId":"1","guideName":"G","pageUrl":"u"},"userId":"x"}"#, "userId", .unknownField),
        (
            #"{"event":"guide button click","payload":{"guideId":"1","guideName":"G","step":"1","buttonId":"b","type":"c","action":"explode","ctaText":"t","pageUrl":"u"}}"#,
            "payload.action", .invalidField
        ),
        (
            #"{"event":"ai assistant message receive","payload":{"threadId":"t","role":"user","message":"m","pageUrl":"u"}}"#, "payload.role",
            .invalidField
        ),
        (#"{"event":"ai assistant fallback action click","payload":{"threadId":"t","type":"url","pageUrl":"u"}}"#, "payload.url", .missingField),
        (
            #"{"event":"ai assistant fallback action click","payload":{"threadId":"t","type":"javascript","url":"x","pageUrl":"u"}}"#, "payload.url",
            .invalidField
        ),
        (#"{"event":"ai assistant fallback action click","payload":{"threadId":"t","type":"python","pageUrl":"u"}}"#, "payload.type", .invalidField),
        (#"{"event":"product updates feedback","payload":{"postId":"1","postName":"P","pageUrl":"u"}}"#, "payload.emojiScore", .missingField),
        (
            #"{"event":"product updates feedback","payload":{"postId":"1","postName":"P","emojiScore":"Slightly Positive","pageUrl":"u"}}"#,
            "payload.emojiScore", .invalidField
        ),
        (#"{"event":"knowledge base feedback","payload":{"articleId":"1","articleName":"A","pageUrl":"u"}}"#, "payload.emojiScore", .missingField),
        (#"{"event":"guide started","payload":{"guideId":"1","guideName":"G","pageUrl":"u"},"timestamp":"yesterday"}"#, "timestamp", .invalidField),
    ])
    func refusesWhatTheSeedDoesNotAllow(record: String, field: String, code: EventError.Code) throws {
        let error = try #require(failure(record))
        #expect(error.field == field)
        #expect(error.code == code)
    }

    @Test func segmentFormIsCheckedToo() throws {
        let wrongType = failure(
            #"{"type":"track","event":"Guide Started","userId":"u","properties":{"guide_id":1.5,"guide_name":"G","page_url":"u"}}"#
        )
        #expect(wrongType?.field == "properties.guide_id")
        let unknown = failure(
            #"{"type":"track","event":"Survey Shown","userId":"u","properties":{"survey_id":1,"survey_name":"S","page_url":"u","colour":"red"}}"#
        )
        #expect(unknown?.code == .unknownField)
        let fromProperty = try event(
            #"{"type":"track","event":"Survey Shown","properties":{"survey_id":7,"survey_name":"S","page_url":"https://a.b/c","user_id":"u-7"}}"#
        )
        #expect(fromProperty.userId == "u-7")
        #expect(fromProperty.metadata["survey_id"] == "7")
        #expect(fromProperty.metadata["user_id"] == nil)
    }
}
