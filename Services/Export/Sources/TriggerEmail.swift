import CairnCore
import CairnMethods
import Foundation
import Mustache
import NIOSSL

/// An e-mail trigger's message (docs/triggers.md, "E-mail"): Mustache templates for the
/// recipient, the subject, a text body and an optional HTML body, filled in from the event,
/// its person and company, and, for an absence trigger, what did not happen.
public struct TriggerEmailTemplates: Sendable, Equatable {
    /// The recipient; by default the person's `email` trait.
    public var to: String
    public var subject: String
    public var text: String
    public var html: String?

    public static let defaultRecipient = "{{user.traits.email}}"
    /// A template may be this long (the body of a message, not an attachment).
    public static let maximumTemplateBytes = 100_000
    /// How deep its sections (`{{#…}}`) may nest.
    public static let maximumSectionDepth = 20
    /// The largest message composed: a template looping over an event's list cannot make more.
    public static let maximumMessageBytes = 10 << 20

    /// Parses every template now, so that a broken one is refused when the trigger is added.
    init(_ given: TriggerEmail) throws(ExportError) {
        to = given.to.flatMap { $0.trimmingCharacters(in: .whitespaces).isEmpty ? nil : $0 } ?? Self.defaultRecipient
        subject = given.subject
        text = given.text
        html = given.html.flatMap { $0.isEmpty ? nil : $0 }
        guard !subject.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw TriggerInput.invalid(
                "email.subject",
                "must be given: the subject line (a template, e.g. 'You left {{event.attributes.name}} in your cart')"
            )
        }
        guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw TriggerInput.invalid("email.text", "must be given: the text body (a template); an HTML body may come beside it")
        }
        if !to.contains("{{"), !EmailAddress.isAddress(to.trimmingCharacters(in: .whitespaces)) {
            throw TriggerInput.invalid("email.to", "'\(to)' is neither an address nor a template that gives one (e.g. {{user.traits.email}})")
        }
        for (field, template) in [("email.to", to), ("email.subject", subject), ("email.text", text)] + (html.map { [("email.html", $0)] } ?? []) {
            guard template.utf8.count <= Self.maximumTemplateBytes else {
                throw TriggerInput.invalid(field, "is \(template.utf8.count) bytes; a template may be \(Self.maximumTemplateBytes)")
            }
            guard !template.contains("\u{0}") else { throw TriggerInput.invalid(field, "holds a NUL character") }
            // Sections nest by recursion in the parser: a deep nest would overflow its stack.
            var depth = 0
            var deepest = 0
            var rest = Substring(template)
            while let open = rest.range(of: "{{") {
                rest = rest[open.upperBound...]
                if rest.hasPrefix("#") || rest.hasPrefix("^") {
                    depth += 1
                    deepest = max(deepest, depth)
                } else if rest.hasPrefix("/") {
                    depth -= 1
                }
            }
            guard deepest <= Self.maximumSectionDepth else {
                throw TriggerInput.invalid(field, "nests sections \(deepest) deep; a template may nest \(Self.maximumSectionDepth)")
            }
            do {
                _ = try MustacheTemplate(string: template)
            } catch {
                throw TriggerInput.invalid(field, "is not a Mustache template: \(error)")
            }
        }
    }

    init(to: String, subject: String, text: String, html: String?) {
        self.to = to
        self.subject = subject
        self.text = text
        self.html = html
    }
}

/// A message composed for one delivery, ready for SMTP.
struct ComposedEmail: Sendable {
    var recipient: String
    var subject: String
    var bytes: [UInt8]
}

enum TriggerEmailComposer {
    /// What the templates can use: `event` (`name`, `type`, `timestamp`, `attributes`,
    /// `user_id`, `anonymous_id`), `user` (`user_id`, `traits`; absent for an anonymous person),
    /// `company` (`company_id`, `traits`), `trigger`, `app`, `delivery_id`, and `absence`
    /// (`unless`, `within_s`, `deadline`) for an absence trigger.
    static func context(for trigger: TriggerDefinition, _ item: TriggerEvent) -> JSON {
        let event = item.event
        var object: JSONObject = [
            "trigger": .string(trigger.name), "app": .string(trigger.appName), "delivery_id": .string(TriggerWebhook.deliveryId(trigger, item)),
            "event": [
                "name": .string(event.eventName), "type": .string(event.eventType.rawValue), "timestamp": .string(event.insertedAt.description),
                "attributes": .object(event.metadata), "user_id": .optional(event.userId), "anonymous_id": .optional(event.anonymousId),
            ],
        ]
        if !item.person.hasPrefix("anonymous:") {
            object["user"] = ["user_id": .string(item.person), "traits": .object(item.userTraits ?? JSONObject())]
        }
        if let company = item.company {
            object["company"] = ["company_id": .string(company), "traits": .object(item.companyTraits ?? JSONObject())]
        }
        if let unless = trigger.unless, let within = trigger.withinSeconds {
            object["absence"] = [
                "unless": .string(unless), "within_s": .int(within),
                "deadline": .string(Timestamp(microseconds: event.insertedAt.microseconds + within * 1_000_000).description),
            ]
        }
        return .object(object)
    }

    /// The message for one delivery, or a permanent failure when its recipient is not one address.
    static func compose(
        _ templates: TriggerEmailTemplates,
        trigger: TriggerDefinition,
        item: TriggerEvent,
        from: String,
        now: Timestamp = .now()
    ) throws(SMTPFailure) -> ComposedEmail {
        let values = mustacheValue(context(for: trigger, item))
        func render(_ template: String, html: Bool) -> String {
            // Text parts are not HTML: nothing in them is escaped.
            let source = html ? template : "{{% CONTENT_TYPE: TEXT}}" + template
            return (try? MustacheTemplate(string: source))?.render(values) ?? ""
        }
        let recipient = render(templates.to, html: false).trimmingCharacters(in: .whitespacesAndNewlines)
        guard EmailAddress.isAddress(recipient) else {
            throw SMTPFailure(
                code: nil,
                message: recipient.isEmpty
                    ? "no recipient: '\(templates.to)' is empty for \(item.person) (the person has no such trait)"
                    : "the recipient '\(recipient.prefix(200))' (from '\(templates.to)') is not one e-mail address",
                permanent: true
            )
        }
        // A subject is one header line: line breaks would start new headers.
        let subject = String(render(templates.subject, html: false).map { $0.isNewline ? " " : $0 }.prefix(500))
        let text = render(templates.text, html: false)
        let html = templates.html.map { render($0, html: true) }
        let deliveryId = TriggerWebhook.deliveryId(trigger, item)
        let address = EmailAddress.mailbox(in: from) ?? from
        let domain = address.split(separator: "@").last.map(String.init) ?? "cairn.invalid"
        // Only a display name is encoded: the address stays as it is, or no one can read it.
        var fromHeader = address
        if let open = from.lastIndex(of: "<") {
            let name = from[..<open].trimmingCharacters(in: .whitespaces)
            if !name.isEmpty { fromHeader = encodedHeader(name) + " <\(address)>" }
        }
        var headers = [
            ("From", fromHeader), ("To", recipient), ("Subject", encodedHeader(subject)), ("Date", rfc5322Date(now)),
            // The same for every attempt of one delivery: a receiving system can drop a repeat.
            ("Message-ID", "<\(SHA256.hex(Array((trigger.appToken + "\u{1F}" + deliveryId).utf8)).prefix(32))@\(domain)>"),
            ("MIME-Version", "1.0"), ("X-Cairn-Trigger", encodedHeader(trigger.name)), ("X-Cairn-Delivery", encodedHeader(deliveryId)),
        ]
        var body: [String] = []
        if let html {
            let boundary = "cairn-" + String(SHA256.hex(Array((text + html).utf8)).prefix(24))
            headers.append(("Content-Type", "multipart/alternative; boundary=\"\(boundary)\""))
            body = [
                "--\(boundary)", "Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: base64", "", base64Lines(text),
                "--\(boundary)", "Content-Type: text/html; charset=utf-8", "Content-Transfer-Encoding: base64", "", base64Lines(html),
                "--\(boundary)--",
            ]
        } else {
            headers += [("Content-Type", "text/plain; charset=utf-8"), ("Content-Transfer-Encoding", "base64")]
            body = [base64Lines(text)]
        }
        let message = headers.map { "\($0.0): \($0.1)" }.joined(separator: "\r\n") + "\r\n\r\n" + body.joined(separator: "\r\n") + "\r\n"
        let bytes = Array(message.utf8)
        guard bytes.count <= TriggerEmailTemplates.maximumMessageBytes else {
            throw SMTPFailure(
                code: nil,
                message: "the message is \(bytes.count) bytes; a trigger's message may be \(TriggerEmailTemplates.maximumMessageBytes >> 20) MB",
                permanent: true
            )
        }
        return ComposedEmail(recipient: recipient, subject: subject, bytes: bytes)
    }

    /// A header value as is when it is printable ASCII; otherwise RFC 2047 encoded words.
    static func encodedHeader(_ value: String) -> String {
        if value.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value < 0x7F }) { return value }
        // Encoded words of at most 45 bytes of UTF-8 each, never splitting a character.
        var words: [String] = []
        var chunk: [UInt8] = []
        for character in value {
            let bytes = Array(String(character).utf8)
            if chunk.count + bytes.count > 45 {
                words.append("=?UTF-8?B?" + Data(chunk).base64EncodedString() + "?=")
                chunk = []
            }
            chunk += bytes
        }
        if !chunk.isEmpty { words.append("=?UTF-8?B?" + Data(chunk).base64EncodedString() + "?=") }
        return words.joined(separator: "\r\n ")
    }

    static func base64Lines(_ text: String) -> String {
        let encoded = Array(Data(text.utf8).base64EncodedString().utf8)
        return stride(from: 0, to: encoded.count, by: 76).map { String(decoding: encoded[$0..<min($0 + 76, encoded.count)], as: UTF8.self) }
            .joined(separator: "\r\n")
    }

    static func rfc5322Date(_ time: Timestamp) -> String {
        let c = time.utcComponents
        let days = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]  // 1970-01-01 was a Thursday
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        let dayNumber = Int((time.microseconds / 86_400_000_000 % 7 + 7) % 7)
        func two(_ value: Int64) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(days[dayNumber]), \(c.day) \(months[Int(c.month) - 1]) \(c.year) \(two(c.hour)):\(two(c.minute)):\(two(c.second)) +0000"
    }

    /// JSON as Mustache reads it: objects as dictionaries, arrays as arrays, whole numbers without `.0`.
    static func mustacheValue(_ value: JSON) -> Any {
        switch value {
        case .null: return ""
        case .bool(let flag): return flag
        case .int(let number): return number
        case .double(let number):
            if number.rounded() == number, abs(number) < 1e15 { return Int64(number) }
            return number
        case .number(let text): return text
        case .string(let text): return text
        case .array(let items): return items.map(mustacheValue)
        case .object(let object):
            var dictionary: [String: Any] = [:]
            for (key, item) in object { dictionary[key] = mustacheValue(item) }
            return dictionary
        }
    }
}

/// The SMTP server e-mail triggers send through, with its TLS context, made once at start.
struct TriggerMail: Sendable {
    let settings: SMTPSettings
    let tls: NIOSSLContext?

    init(settings: SMTPSettings) throws(ExportError) {
        self.settings = settings
        do {
            tls = try settings.tlsContext()
        } catch {
            throw ExportError(.configuration, "SMTP TLS cannot be set up (ca_file \(settings.caFile ?? "none")): \(error)")
        }
    }
}
