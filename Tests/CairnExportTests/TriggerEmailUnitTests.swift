import CairnCore
import CairnMethods
import Testing

@testable import CairnExport

/// The pieces of an e-mail delivery that need no server: settings, addresses, headers, dates
/// and the SMTP data encoding.
@Suite struct TriggerEmailUnitTests {
    @Test func settingsComeFromTheStackFileAndTheEnvironment() throws {
        #expect(try SMTPSettings.parse(settings: [:], environment: [:]) == nil)
        let settings = try #require(
            try SMTPSettings.parse(
                settings: ["smtp": ["host": "mail.example.com", "from": "Shop <shop@example.com>"]],
                environment: ["CAIRN_SMTP_USERNAME": "u", "CAIRN_SMTP_PASSWORD": "p"]
            )
        )
        #expect(settings.port == 587 && settings.security == .starttls && settings.fromAddress == "shop@example.com")
        #expect(settings.username == "u" && settings.password == "p")
        let implicit = try #require(
            try SMTPSettings.parse(
                settings: [:],
                environment: ["CAIRN_SMTP_HOST": "h.example.com", "CAIRN_SMTP_PORT": "465", "CAIRN_SMTP_FROM": "a@b.co"]
            )
        )
        #expect(implicit.security == .tls)
        func refusal(_ settings: JSONObject, _ environment: [String: String] = [:]) -> String {
            do {
                _ = try SMTPSettings.parse(settings: settings, environment: environment)
                return "accepted"
            } catch {
                return error.message
            }
        }
        #expect(refusal(["smtp": ["host": "h"]]).contains("from"))
        #expect(refusal(["smtp": ["host": "h", "from": "a@b.co", "password": "x"]]).contains("CAIRN_SMTP_PASSWORD"))
        #expect(refusal(["smtp": ["host": "h", "from": "a@b.co", "security": "ssl"]]).contains("starttls, tls or none"))
        #expect(refusal(["smtp": ["host": "h", "from": "a@b.co", "port": 70000]]).contains("port"))
        #expect(refusal(["smtp": ["host": "h", "from": "not an address"]]).contains("one address"))
        #expect(
            refusal(
                ["smtp": ["host": "h.example.com", "from": "a@b.co", "security": "none"]],
                ["CAIRN_SMTP_USERNAME": "u", "CAIRN_SMTP_PASSWORD": "p"]
            ).contains("in clear")
        )
        #expect(refusal(["smtp": ["host": "h", "from": "a@b.co"]], ["CAIRN_SMTP_USERNAME": "u"]).contains("go together"))
    }

    @Test func addressesAreOneMailboxAndNothingElse() {
        #expect(EmailAddress.isAddress("ada@example.com"))
        #expect(EmailAddress.mailbox(in: "Ada <ada@example.com>") == "ada@example.com")
        for bad in [
            "", "ada", "ada@", "@example.com", "ada@example", "a b@example.com", "ada@example.com\r\nBcc: x@y.z", "a@b.com,c@d.com", "<a@b.com>",
        ] {
            #expect(!EmailAddress.isAddress(bad), "\(bad)")
        }
    }

    @Test func headersDatesAndDataAreEncodedForSMTP() {
        #expect(TriggerEmailComposer.encodedHeader("plain ASCII") == "plain ASCII")
        let encoded = TriggerEmailComposer.encodedHeader("Größe 39")
        #expect(encoded == "=?UTF-8?B?R3LDtsOfZSAzOQ==?=")
        // 2024-05-01 was a Wednesday.
        #expect(TriggerEmailComposer.rfc5322Date(Timestamp(parsing: "2024-05-01T08:05:09Z")!) == "Wed, 1 May 2024 08:05:09 +0000")
        #expect(TriggerEmailComposer.rfc5322Date(Timestamp(microseconds: 0)) == "Thu, 1 Jan 1970 00:00:00 +0000")
        let stuffed = String(decoding: SMTPSession.dotStuffed(Array("a\n.b\r\n..c\nend".utf8)), as: UTF8.self)
        #expect(stuffed == "a\r\n..b\r\n...c\r\nend\r\n")
        #expect(TriggerEmailComposer.base64Lines(String(repeating: "x", count: 100)).split(separator: "\r\n").map(\.count) == [76, 60])
    }

    @Test func templatesAreCheckedAndFilledIn() throws {
        #expect(throws: ExportError.self) { try TriggerEmailTemplates(TriggerEmail(subject: "{{#open}}", text: "t")) }
        #expect(throws: ExportError.self) { try TriggerEmailTemplates(TriggerEmail(subject: "s", text: "  ")) }
        let templates = try TriggerEmailTemplates(
            TriggerEmail(
                subject: "{{event.attributes.name}}",
                text: "{{event.attributes.name}} {{event.attributes.n}}",
                html: "<b>{{event.attributes.name}}</b>"
            )
        )
        #expect(templates.to == TriggerEmailTemplates.defaultRecipient)
        var trigger = try TriggerInput.definition(from: ["name": "t", "event": "E", "url": "http://h/x"])
        trigger.action = .email(templates)
        let event = CanonicalEvent(
            appToken: "shop",
            eventType: .track,
            eventName: "E",
            userId: "ada",
            companyId: nil,
            anonymousId: nil,
            source: "backend-segment",
            insertedAt: Timestamp(parsing: "2024-05-01T08:00:00Z")!,
            metadata: ["name": "<a & b>", "n": .double(3)],
            receivedAt: Timestamp(parsing: "2024-05-01T08:00:00Z")!,
            origin: .segment
        )
        let item = TriggerEvent(event: event, person: "ada", company: nil, userTraits: ["email": "ada@example.com"], companyTraits: nil)
        let message = try TriggerEmailComposer.compose(templates, trigger: trigger, item: item, from: "shop@example.com")
        #expect(message.recipient == "ada@example.com" && message.subject == "<a & b>")
        let text = String(decoding: message.bytes, as: UTF8.self)
        #expect(text.contains("multipart/alternative") && text.contains("Message-ID: <") && text.contains("X-Cairn-Delivery: t:"))
        let withoutEmail = TriggerEvent(event: event, person: "ada", company: nil, userTraits: [:], companyTraits: nil)
        #expect(throws: SMTPFailure.self) {
            try TriggerEmailComposer.compose(templates, trigger: trigger, item: withoutEmail, from: "shop@example.com")
        }
    }
}
