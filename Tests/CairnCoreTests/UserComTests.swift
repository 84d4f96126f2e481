import CairnCore
import Testing

@Suite struct UserComTests {
    var typed: IngestContext {
        var context = testContext
        context.attributes = AttributeRegistry(types: [
            "price": .number, "items": .number, "express_delivery": .boolean,
            "delivery_date": .date, "cart": .json, "sku": .string,
        ])
        return context
    }

    @Test func dropsTheEventPrefixAndKeepsUnregisteredAttributesAsStrings() throws {
        let lines = try fixtureLines("usercom.jsonl")
        let first = try event(lines[0])
        #expect(first.eventName == "name_your_event_here")
        #expect(first.origin == .usercom)
        #expect(first.userId == "u-1")
        #expect(first.metadata["price"] == "10")
        let created = try event(lines[1])
        #expect(created.eventName == "app_created")
        // Unregistered: stored as strings, as User.com does.
        #expect(created.metadata["sku"] == "7")
        #expect(created.metadata["price"] == "39")
    }

    @Test func coercesRegisteredAttributes() throws {
        let lines = try fixtureLines("usercom.jsonl")
        let purchase = try event(lines[2], context: typed)
        #expect(purchase.metadata["price"] == .double(159.9))
        #expect(purchase.metadata["items"] == .int(6))
        #expect(purchase.metadata["express_delivery"] == .bool(true))
        #expect(purchase.metadata["delivery_date"] == "2024-05-09T00:00:00.000000Z")
        #expect(purchase.metadata["cart"]?["skus"] == [7, 8])
        let created = try event(lines[1], context: typed)
        #expect(created.metadata["sku"] == "7")
        #expect(created.metadata["price"] == .int(39))
        // Integers beyond 64 bits keep every digit, as numbers or as numeric strings; an unregistered one becomes its digits.
        let big = try event(
            #"{"event":"buy","user_id":"u","attributes":{"price":12345678901234567890,"items":"-98765432109876543210","sku":18446744073709551616}}"#,
            context: typed
        )
        #expect(big.metadata["price"] == .number("12345678901234567890"))
        #expect(big.metadata["items"] == .number("-98765432109876543210"))
        #expect(big.metadata["sku"] == "18446744073709551616")
        #expect(failure(#"{"event":"buy","user_id":"u","attributes":{"price":"1e1000000"}}"#, context: typed)?.field == "attributes.price")
    }

    @Test(arguments: [
        (#"{"event":"buy","user_id":"u","attributes":{"price":"cheap"}}"#, "attributes.price"),
        (#"{"event":"buy","user_id":"u","attributes":{"express_delivery":"maybe"}}"#, "attributes.express_delivery"),
        (#"{"event":"buy","user_id":"u","attributes":{"delivery_date":"next week"}}"#, "attributes.delivery_date"),
        (#"{"event":"buy","user_id":"u","attributes":{"sku":[1]}}"#, "attributes.sku"),
        (#"{"event":"buy","attributes":{}}"#, "user_id"),
        (#"{"event":"event.","user_id":"u"}"#, "event"),
        (#"{"event":"buy","user_id":"u","attributes":[]}"#, "attributes"),
    ])
    func refusesValuesThatCannotBeCoerced(record: String, field: String) throws {
        let error = try #require(failure(record, context: typed))
        #expect(error.field == field)
    }
}

@Suite struct UserComUserDataTests {
    @Test func userDataUpsertsAUser() throws {
        let identify = try event(#"{"user_id":"u-1","timestamp":"2024-05-01T00:00:00Z","user_data":{"email":"a@b.c","plan":"pro"}}"#)
        #expect(identify.eventType == .identifyUser)
        #expect(identify.origin == .usercom)
        #expect(identify.userId == "u-1")
        #expect(identify.metadata["plan"] == "pro")
        #expect(failure(#"{"user_data":{"plan":"pro"}}"#)?.field == "user_id")
        #expect(failure(#"{"user_id":"u","user_data":{},"extra":1}"#)?.code == .unknownField)
    }
}
