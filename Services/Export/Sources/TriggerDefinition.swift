import CairnCondition
import CairnCore
import CairnMethods
import CairnWire
import Foundation

/// A trigger (docs/triggers.md): it watches one app's newly stored events and POSTs a webhook
/// or sends an e-mail for each one that matches, or, as an absence trigger, for each one that
/// no follow-up event answers within a window.
public struct TriggerDefinition: Sendable, Equatable {
    public var appToken: String
    /// The app's name, for bodies and listings (the token when the app has none to show).
    public var appName: String
    public var name: String
    /// An event name, or a pattern in which `*` stands for any run of characters.
    public var event: String
    /// On the event's attributes, in the condition language of `report users --where`.
    public var condition: String?
    /// On the user's traits.
    public var traitCondition: String?
    /// An absence trigger's follow-up event, and the window it has, in event time.
    public var unless: String?
    public var withinSeconds: Int64?
    /// The attribute a follow-up must share with the event to answer it (`sku`), or nil: any follow-up does.
    public var unlessSame: String? = nil
    public var action: TriggerAction
    public var maximumAttempts: Int
    public var timeout: Duration
    public var state: TriggerState
    /// When this trigger was added (its row's `created_at`): a trigger removed and added again
    /// under the same name is another trigger, whose checkpoint the old one's lane never moves.
    public var generation: String? = nil

    public var isAbsence: Bool { unless != nil }

    /// The webhook's URL, or nil for an e-mail trigger.
    public var url: String? {
        if case .webhook(let url, _) = action { return url }
        return nil
    }

    /// The webhook's signing secret.
    public var secret: String? {
        if case .webhook(_, let secret) = action { return secret }
        return nil
    }

    /// Where deliveries go, for listings and logs: the URL, or `email` and the recipient template.
    public var target: String {
        switch action {
        case .webhook(let url, _): url
        case .email(let templates): "email to \(templates.to)"
        }
    }

    /// Whether `event` is a pattern rather than one name.
    public var isPattern: Bool { event.contains("*") }

    /// The trigger's event name test as SQL on `column`.
    func eventNameSQL(on column: String, parameters: inout [String?]) -> String {
        Self.eventNameSQL(event, on: column, parameters: &parameters)
    }

    /// A name test as SQL on `column`: equality, or `LIKE` when `event` is a pattern, with `%`,
    /// `_` and `\` of the name itself escaped. Also tests `--unless` names.
    static func eventNameSQL(_ event: String, on column: String, parameters: inout [String?]) -> String {
        guard event.contains("*") else {
            parameters.append(event)
            return "\(column) = $\(parameters.count)"
        }
        var like = ""
        for character in event {
            switch character {
            case "*": like += "%"
            case "%", "_", "\\": like += "\\" + String(character)
            default: like.append(character)
            }
        }
        parameters.append(like)
        return "\(column) LIKE $\(parameters.count)"
    }

    /// The whole match as SQL: the event (alias `e`, with `event_name` and `metadata`) and its
    /// user's traits (alias `u`). The follower and `triggers test` share it, so a dry run
    /// answers exactly as the trigger will.
    func matchSQL(
        event e: String,
        user u: String,
        parameters: inout [String?]
    ) throws(ConditionError) -> (name: String, attributes: String, traits: String) {
        let name = eventNameSQL(on: "\(e).event_name", parameters: &parameters)
        var attributes = "TRUE"
        if let condition {
            attributes = "COALESCE(" + (try Condition.parse(condition)).sql(on: "\(e).metadata", parameters: &parameters) + ", FALSE)"
        }
        var traits = "TRUE"
        if let traitCondition {
            traits = "COALESCE(" + (try Condition.parse(traitCondition)).sql(on: "\(u).traits", parameters: &parameters) + ", FALSE)"
        }
        return (name, attributes, traits)
    }
}

/// Checks what `cairn triggers add` sends, saying where and why anything is wrong.
enum TriggerInput {
    /// A trigger from `triggers.add`'s params; `appToken` and `appName` are filled in by the caller.
    static func definition(from params: TriggersAdd.Params) throws(ExportError) -> TriggerDefinition {
        let name = params.name
        guard !name.isEmpty, name.count <= 64,
            name.unicodeScalars.allSatisfy({ CharacterSet.alphanumerics.contains($0) || "-_.".unicodeScalars.contains($0) })
        else {
            throw invalid("name", "must be 1 to 64 letters, digits, '-', '_' or '.'")
        }
        let event = params.event
        guard !event.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw invalid("event", "must name the event (or a pattern such as 'Guide *')")
        }
        let condition = nonEmpty(params.where)
        let traitCondition = nonEmpty(params.trait)
        // Parsed here so that a malformed condition is refused now, with its position.
        if let condition { _ = try parseCondition(condition, field: "where") }
        if let traitCondition { _ = try parseCondition(traitCondition, field: "trait") }
        let unless = nonEmpty(params.unless)
        let within = nonEmpty(params.within)
        guard (unless == nil) == (within == nil) else {
            let (missing, given) = unless == nil ? ("unless", "within") : ("within", "unless")
            throw invalid(missing, "goes with \(given): an absence trigger needs the follow-up event and how long it has")
        }
        var withinSeconds: Int64?
        if let within { withinSeconds = try seconds(within, field: "within") }
        let unlessSame = nonEmpty(params.unless_same)
        if let unlessSame {
            guard unless != nil else { throw invalid("unless_same", "goes with unless: the follow-up must share this attribute with the event") }
            guard unlessSame.count <= 200, !unlessSame.contains("\u{0}") else { throw invalid("unless_same", "must be an attribute name") }
        }
        let action: TriggerAction
        switch (nonEmpty(params.url), params.email) {
        case (let url?, nil):
            try checkURL(url)
            action = .webhook(url: url, secret: nonEmpty(params.secret))
        case (nil, let email?):
            guard params.secret == nil else { throw invalid("secret", "signs webhooks; an e-mail trigger has none") }
            action = .email(try TriggerEmailTemplates(email))
        case (nil, nil):
            throw invalid("url", "or email is needed: a webhook's URL, or an e-mail's subject and body")
        case (_?, _?):
            throw invalid("email", "goes instead of url: a trigger either POSTs a webhook or sends an e-mail")
        }
        var attempts = 10
        if let count = params.max_attempts {
            guard (1...100).contains(count) else { throw invalid("max_attempts", "must be a whole number from 1 to 100") }
            attempts = count
        }
        var timeout = Duration.seconds(10)
        if let text = nonEmpty(params.timeout) {
            let milliseconds = try self.milliseconds(text, field: "timeout")
            guard milliseconds >= 10, milliseconds <= 600_000 else { throw invalid("timeout", "must be between 10ms and 10m") }
            timeout = .milliseconds(milliseconds)
        }
        return TriggerDefinition(
            appToken: "",
            appName: "",
            name: name,
            event: event,
            condition: condition,
            traitCondition: traitCondition,
            unless: unless,
            withinSeconds: withinSeconds,
            unlessSame: unlessSame,
            action: action,
            maximumAttempts: attempts,
            timeout: timeout,
            state: .active
        )
    }

    static func parseCondition(_ text: String, field: String) throws(ExportError) -> Condition {
        do {
            return try Condition.parse(text)
        } catch {
            throw ExportError(.invalidCondition, field: field, "'\(text)': \(error.reason)")
        }
    }

    /// An http(s) URL with a host, or an error naming the character where it goes wrong.
    static func checkURL(_ text: String) throws(ExportError) {
        func refuse(_ position: Int, _ reason: String) -> ExportError {
            ExportError(.invalidUrl, field: "url", "'\(text)' at character \(position): \(reason)")
        }
        let characters = Array(text)
        if let bad = characters.firstIndex(where: { $0.isWhitespace || !$0.isASCII || $0 == "\"" || $0 == "<" || $0 == ">" || $0 == "\\" }) {
            throw refuse(bad + 1, "'\(characters[bad])' cannot appear in a URL (percent-encode it)")
        }
        guard let separator = text.range(of: "://") else { throw refuse(1, "expected the scheme, http:// or https://") }
        let scheme = text[..<separator.lowerBound].lowercased()
        guard scheme == "http" || scheme == "https" else { throw refuse(1, "the scheme '\(scheme)' is not http or https") }
        let authorityStart = text.distance(from: text.startIndex, to: separator.upperBound)
        let rest = text[separator.upperBound...]
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        let hostPart = authority.split(separator: "@", omittingEmptySubsequences: false).last.map(String.init) ?? ""
        let host: Substring
        var port: Substring?
        if hostPart.hasPrefix("[") {
            guard let close = hostPart.firstIndex(of: "]") else { throw refuse(authorityStart + 1, "an IPv6 host needs its closing ']'") }
            host = hostPart[...close]
            let after = hostPart[hostPart.index(after: close)...]
            if after.hasPrefix(":") { port = after.dropFirst() }
        } else if let colon = hostPart.lastIndex(of: ":") {
            host = hostPart[..<colon]
            port = hostPart[hostPart.index(after: colon)...]
        } else {
            host = Substring(hostPart)
        }
        guard !host.isEmpty else { throw refuse(authorityStart + 1, "expected a host name after '\(scheme)://'") }
        if let port {
            guard let number = Int(port), (1...65535).contains(number) else {
                throw refuse(authorityStart + authority.count - port.count + 1, "the port '\(port)' is not a number from 1 to 65535")
            }
        }
        guard URL(string: text) != nil else { throw refuse(authorityStart + 1, "not a valid URL") }
    }

    /// `90s`, `30m`, `1h`, `2d` (or plain seconds) as seconds.
    static func seconds(_ text: String, field: String) throws(ExportError) -> Int64 {
        let milliseconds = try milliseconds(text, field: field)
        guard milliseconds >= 1000, milliseconds % 1000 == 0 else {
            throw invalid(field, "must be a whole number of seconds or more, such as 90s, 30m, 1h or 7d")
        }
        return milliseconds / 1000
    }

    static func milliseconds(_ text: String, field: String) throws(ExportError) -> Int64 {
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        for (suffix, scale) in units where trimmed.hasSuffix(suffix) {
            if let number = Int64(trimmed.dropLast(suffix.count)), number > 0, number <= Int64.max / scale { return number * scale }
        }
        if let number = Int64(trimmed), number > 0, number <= Int64.max / 1000 { return number * 1000 }
        throw invalid(field, "'\(text)' is not a duration such as 500ms, 90s, 30m, 1h or 7d")
    }

    private static func nonEmpty(_ text: String?) -> String? {
        guard let text, !text.trimmingCharacters(in: .whitespaces).isEmpty else { return nil }
        return text
    }

    static func invalid(_ field: String, _ reason: String) -> ExportError {
        ExportError(.invalidTrigger, field: field, reason)
    }
}

/// What a trigger does with each match.
public enum TriggerAction: Sendable, Equatable {
    /// POSTs the event to `url`, signed with `secret` (never listed or logged) when set.
    case webhook(url: String, secret: String?)
    /// Sends an e-mail over the export service's SMTP server.
    case email(TriggerEmailTemplates)
}

/// Whether a trigger delivers. Stored as the `state` and `state_reason` columns of `triggers`.
public enum TriggerState: Sendable, Equatable {
    case active
    /// The receiver answered 410 Gone; `reason` records that answer. `cairn triggers retry`
    /// makes the trigger active again.
    case disabled(reason: String?)

    /// The state in a stored row; anything but `disabled` is active.
    init(stored: String?, reason: String?) {
        self = stored == "disabled" ? .disabled(reason: reason) : .active
    }

    /// The stored and listed name.
    public var name: String {
        switch self {
        case .active: "active"
        case .disabled: "disabled"
        }
    }

    public var reason: String? {
        switch self {
        case .active: nil
        case .disabled(let reason): reason
        }
    }
}
