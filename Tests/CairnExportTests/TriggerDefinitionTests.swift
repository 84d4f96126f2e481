import CairnCore
import CairnWire
import Testing

@testable import CairnExport

@Suite struct TriggerDefinitionTests {
    func refusal(_ url: String) -> String? {
        do {
            try TriggerInput.checkURL(url)
            return nil
        } catch {
            #expect(error.field == "url")
            return error.reason
        }
    }

    @Test func urlsAreCheckedWithThePositionAndTheReason() {
        #expect(refusal("https://hooks.example.com/cart?x=1") == nil)
        #expect(refusal("http://127.0.0.1:8080/hook") == nil)
        #expect(refusal("http://[::1]:9000/hook") == nil)
        #expect(refusal("hooks.example.com")?.contains("at character 1: expected the scheme") == true)
        #expect(refusal("ftp://example.com")?.contains("at character 1: the scheme 'ftp' is not http or https") == true)
        #expect(refusal("http:///path")?.contains("at character 8: expected a host name") == true)
        #expect(refusal("http://example.com:0/")?.contains("at character 20: the port '0'") == true)
        #expect(refusal("http://example.com/ä")?.contains("at character 20") == true)
        #expect(refusal("http://[::1/hook")?.contains("closing ']'") == true)
    }

    @Test func durations() throws {
        #expect(try TriggerInput.seconds("90s", field: "within") == 90)
        #expect(try TriggerInput.seconds("30m", field: "within") == 1800)
        #expect(try TriggerInput.seconds("1h", field: "within") == 3600)
        #expect(try TriggerInput.seconds("7d", field: "within") == 604_800)
        #expect(try TriggerInput.seconds("45", field: "within") == 45)
        #expect(try TriggerInput.milliseconds("500ms", field: "timeout") == 500)
        #expect(throws: ExportError.self) { try TriggerInput.seconds("soon", field: "within") }
        #expect(throws: ExportError.self) { try TriggerInput.seconds("500ms", field: "within") }
        #expect(throws: ExportError.self) { try TriggerInput.seconds("-1h", field: "within") }
    }

    @Test func definitionsAreValidated() throws {
        let good: JSON = [
            "name": "cart-left", "event": "Added to cart", "where": "price > 100", "unless": "Purchase", "within": "1h",
            "url": "https://hooks.example.com/cart", "secret": "s", "max_attempts": 3, "timeout": "2s",
        ]
        let trigger = try TriggerInput.definition(from: good)
        #expect(trigger.withinSeconds == 3600 && trigger.maximumAttempts == 3 && trigger.timeout == .seconds(2) && trigger.isAbsence)
        /// The refusal's code and the parameter it names.
        func code(_ change: (inout JSONObject) -> Void) -> String? {
            guard case .object(var object) = good else { return nil }
            change(&object)
            do {
                _ = try TriggerInput.definition(from: .object(object))
                return nil
            } catch {
                return (error as? ExportError).map { $0.applicationCode.rawValue + ($0.field.map { " " + $0 } ?? "") }
            }
        }
        #expect(code { $0["where"] = "price >" } == "invalid_condition where")
        #expect(code { $0["trait"] = "plan = " } == "invalid_condition trait")
        #expect(code { $0["url"] = "mailto:a@b" } == "invalid_url url")
        #expect(code { $0["within"] = nil } == "invalid_trigger within")
        #expect(code { $0["name"] = "no spaces" } == "invalid_trigger name")
        #expect(code { $0["max_attempts"] = 0 } == "invalid_trigger max_attempts")
        #expect(code { $0["timeout"] = "1ms" } == "invalid_trigger timeout")
    }

    /// `*` is the only wildcard: SQL's own `%`, `_` and `\` in a name match themselves.
    @Test func eventPatternsEscapeLikeCharacters() throws {
        var trigger = try TriggerInput.definition(from: ["name": "t", "event": "Guide *", "url": "http://h/x"])
        var parameters: [String?] = []
        #expect(trigger.eventNameSQL(on: "e.event_name", parameters: &parameters) == "e.event_name LIKE $1")
        #expect(parameters == ["Guide %"])
        trigger.event = "50%_off\\*"
        parameters = []
        _ = trigger.eventNameSQL(on: "x", parameters: &parameters)
        #expect(parameters == ["50\\%\\_off\\\\%"])
        trigger.event = "Signed up"
        parameters = []
        #expect(trigger.eventNameSQL(on: "x", parameters: &parameters) == "x = $1")
    }

    /// The documented recipe: HMAC-SHA256 over "<t>.<body>" with the secret.
    @Test func signaturesFollowTheDocumentedRecipe() {
        let body = Array(#"{"trigger":"t"}"#.utf8)
        let signature = TriggerWebhook.signature(secret: "whsec", body: body, at: 1_700_000_000)
        #expect(signature == "t=1700000000,v1=" + SHA256.hexString(SHA256.hmac(key: Array("whsec".utf8), Array("1700000000.".utf8) + body)))
    }
}
