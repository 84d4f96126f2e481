import CairnCore

/// Generates valid input records in every format from a seed, for property tests: arbitrary
/// strings (quotes, backslashes, control characters, accents, CJK, emoji, bidi marks),
/// nested properties, integers beyond 64 bits, and times drawn from a small pool so that
/// different records often share a second, a user and a name.
///
/// The same seed gives the same records; a failing test prints its seed.
public struct RecordGenerator {
    public let seed: UInt64
    private var random: SplitMix64
    /// The times records draw from: a handful of seconds, so that collisions are common.
    private let times: [String]

    public init(seed: UInt64) {
        self.seed = seed
        random = SplitMix64(seed: seed)
        times = (0..<6).map { "2024-05-0\($0 % 3 + 1)T10:00:0\($0)Z" }
    }

    /// A record in `format`; `index` makes the ids that must be unique (messageIds, Userpilot's key) unique.
    public mutating func record(_ format: InputFormat, index: Int) -> JSON {
        switch format {
        case .segment: return segment(index)
        case .userpilot: return userpilot(index)
        case .userguiding: return userGuiding()
        case .userlike: return userlike()
        case .usercom: return userCom()
        }
    }

    // MARK: values

    private mutating func chance(_ percent: Int) -> Bool { random.next(in: 1...100) <= percent }

    private mutating func pick<T>(_ values: [T]) -> T { values[random.next(in: 0...(values.count - 1))] }

    private static let alphabet: [String] = [
        "a", "b", "z", "A", "Q", "0", "7", " ", "-", "_", ".", "\"", "\\", "/", "\n", "\t", "\u{1}",
        "é", "e\u{301}", "ß", "ø", "名", "前", "😀", "\u{202E}", "'", ";", "%", "<", "&", "K", "\u{212A}",
    ]

    private mutating func text(maximum: Int = 12) -> String {
        (0..<random.next(in: 1...maximum)).map { _ in pick(Self.alphabet) }.joined()
    }

    /// An id: usually plain, sometimes any text.
    private mutating func id(_ prefix: String) -> String {
        chance(70) ? "\(prefix)-\(random.next(in: 1...5))" : text()
    }

    private mutating func scalar() -> JSON {
        switch random.next(in: 0...7) {
        case 0: return .int(Int64(random.next(in: -1000...1000)))
        case 1: return chance(70) ? .double(Double(random.next(in: -10_000...10_000)) / 8) : .double(pick([1e20, -1.5e17, 6.02e23, 1e-7]))
        case 2: return .bool(chance(50))
        case 3: return .number(pick(["12345678901234567890", "-99999999999999999999", "18446744073709551616", "12345678901234567890.5", "0.1e-400"]))
        case 4: return .null
        default: return .string(text())
        }
    }

    private mutating func value(depth: Int) -> JSON {
        guard depth < 3, chance(25) else { return scalar() }
        if chance(50) { return .array((0..<random.next(in: 0...3)).map { _ in value(depth: depth + 1) }) }
        return .object(object(depth: depth + 1))
    }

    private mutating func object(depth: Int = 0, maximumKeys: Int = 4) -> JSONObject {
        var object = JSONObject()
        for _ in 0..<random.next(in: 0...maximumKeys) {
            object[chance(60) ? pick(["price", "plan", "seats", "Größe", "unitPrice", "unit_price", "名前", "url"]) : text(maximum: 8)] = value(
                depth: depth
            )
        }
        return object
    }

    private mutating func time() -> JSON { .string(pick(times)) }

    private mutating func pageURL() -> String {
        "https://\(pick(["app.acme.io", "shop.example.com", "x.io"]))/\(pick(["", "pricing", "a/b"]))\(pick(["", "?q=1", "?utm_source=x&b=2#top"]))"
    }

    // MARK: formats

    private mutating func segment(_ index: Int) -> JSON {
        var message = JSONObject()
        let type = pick(["track", "track", "identify", "group", "page", "screen", "alias"])
        message["type"] = .string(type)
        var user: String? = chance(70) ? id("user") : nil
        let anonymous: String? = chance(50) || user == nil ? id("anon") : nil
        switch type {
        case "track":
            message["event"] = .string(chance(70) ? pick(["Signed Up", "Purchased", "Clicked"]) : "E " + text())
            message["properties"] = .object(object())
        case "identify":
            message["traits"] = .object(object())
        case "group":
            message["groupId"] = .string(id("company"))
            message["traits"] = .object(object())
        case "page", "screen":
            if chance(50) { message["name"] = .string(text()) }
            if chance(30) { message["category"] = .string(text()) }
            var properties = object()
            if chance(50) { properties["url"] = .string(pageURL()) }
            if chance(40) { properties["title"] = .string(text()) }
            message["properties"] = .object(properties)
        default:
            user = id("user")
            message["previousId"] = .string(id("anon"))
        }
        if let user { message["userId"] = .string(user) }
        if let anonymous, type != "alias" { message["anonymousId"] = .string(anonymous) }
        if chance(50) { message["messageId"] = .string("m-\(seed)-\(index)") }
        if chance(85) { message["timestamp"] = time() }
        var context = JSONObject()
        if chance(40) {
            context["page"] = ["url": .string(pageURL()), "path": .string("/" + pick(["", "pricing", "a/b"])), "title": .string(text())]
        }
        if chance(40) { context["userAgent"] = .string("Mozilla/5.0 " + text()) }
        if chance(40) { context["locale"] = .string(pick(["de-DE", "en-US", "fr"])) }
        if chance(30) { context["screen"] = ["width": .int(Int64(random.next(in: 0...4000))), "height": .int(Int64(random.next(in: 0...4000)))] }
        if chance(30) { context["os"] = ["name": .string(pick(["iOS", "Mac OS X", "Windows"]))] }
        if chance(30) { context["device"] = ["type": .string(pick(["mobile", "desktop"]))] }
        if chance(30) { context["location"] = ["country": .string(pick(["DE", "US", "FR"]))] }
        if chance(30) { context["sessionId"] = .string(id("session")) }
        if chance(20), type != "group" { context["groupId"] = .string(id("company")) }
        if !context.isEmpty { message["context"] = .object(context) }
        return .object(message)
    }

    private mutating func userpilot(_ index: Int) -> JSON {
        var record = JSONObject()
        let type = pick(EventType.allCases)
        record["event_type"] = .string(type.rawValue)
        switch type {
        case .track: record["event_name"] = .string(chance(50) ? "Added to cart" : text())
        case .trackFeature: record["event_name"] = .string("tag-\(random.next(in: 1...9))")
        case .interaction:
            if chance(50) {
                record["event_name"] = .string("checklist:\(random.next(in: 1...9)):SEEN")
                record["attributes"] = ["status": "SEEN", "parent_id": .string(text())]
            } else {
                // An entity type beyond the seed's common list.
                let id = random.next(in: 1...9)
                record["event_name"] = .string("survey:\(id):COMPLETED")
                record["attributes"] = ["interaction_id": .string("survey_\(id)"), "answers": .string(text())]
            }
        default: break
        }
        if type == .track || type == .identifyUser || type == .identifyCompany { record["metadata"] = .object(object()) }
        if type == .identifyUser || chance(70) { record["user_id"] = .string(id("user")) }
        if type == .identifyCompany || chance(30) { record["company_id"] = .string(id("company")) }
        // Userpilot's event schema's key leaves the payload out: a unique time keeps generated records apart.
        record["inserted_at"] = .string(Timestamp(microseconds: 1_714_557_600_000_000 + Int64(index) * 1_000_003).description)
        record["source"] = .string(pick(UserpilotAdapter.sources))
        if chance(50) { record["hostname"] = .string(pick(["app.acme.io", "x.io"])) }
        if chance(50) { record["pathname"] = .string("/" + pick(["", "settings", "a/b"])) }
        if chance(30) { record["screen_width"] = .int(Int64(random.next(in: 0...4000))) }
        if chance(30) { record["screen_height"] = .int(Int64(random.next(in: 0...4000))) }
        if chance(30) { record["device_type"] = .string(pick(["desktop", "mobile"])) }
        if chance(30) { record["user_agent"] = .string("Mozilla/5.0 " + text()) }
        if chance(30) { record["operating_system"] = .string(pick(["macOS", "Linux"])) }
        if chance(30) { record["browser"] = .string(pick(["Chrome", "Firefox"])) }
        if chance(30) { record["browser_language"] = .string(pick(["en", "de"])) }
        if chance(30) { record["session"] = .string(id("session")) }
        if chance(30) { record["country_code"] = .string(pick(["DE", "US"])) }
        return .object(record)
    }

    private mutating func userGuiding() -> JSON {
        let kind = pick(UserGuidingCatalog.kinds)
        var payload = JSONObject()
        for field in kind.fields where field.required || chance(50) {
            switch field.type {
            case .string: payload[field.name] = .string(field.name == "pageUrl" ? pageURL() : text())
            case .identifier: payload[field.name] = chance(50) ? .string("\(random.next(in: 1...99))") : .int(Int64(random.next(in: 1...99)))
            case .integer: break
            case .oneOf(let allowed): payload[field.name] = .string(pick(allowed))
            }
        }
        // The rules between fields: the simplest answer to each.
        switch kind.name {
        case "survey question answer":
            payload["questionType"] = "Written Feedback"
            payload["feedback"] = .string(text())
            for key in ["score", "emojiScore", "choices"] { payload[key] = nil }
        case "product updates feedback": payload["emojiScore"] = .string(pick(UserGuidingCatalog.feedbackEmojiScores))
        case "ai assistant fallback action click":
            payload["type"] = "javascript"
            payload["url"] = nil
        default: break
        }
        var record: JSONObject = ["event": .string(kind.name), "payload": .object(payload)]
        if chance(80) { record["user_id"] = .string(id("user")) }
        if chance(85) { record["timestamp"] = time() }
        return .object(record)
    }

    private mutating func userlike() -> JSON {
        var global: JSONObject = ["client_uuid": .string(id("visitor")), "widget_id": .int(Int64(random.next(in: 1...5)))]
        if chance(40) { global["operator_group_id"] = .int(Int64(random.next(in: 1...5))) }
        if chance(40) { global["widget_lang"] = .string(pick(["en", "DE"])) }
        var record: JSONObject = [
            "event_name": .string(pick(["chat_started", "chat_connected", "feedback_submit", "rating_submit"])), "global_ctx": .object(global),
        ]
        if chance(70) {
            var session = JSONObject()
            if chance(60) { session["session_id"] = .string(id("session")) }
            if chance(50) { session["chat_id"] = .string(id("chat")) }
            if chance(40) { session["operator_id"] = .int(Int64(random.next(in: 1...9))) }
            if chance(40) { session["operator_name"] = .string(text()) }
            if chance(40) { session["client_email"] = .string(pick(["ada@example.com", " Ada@Example.com "])) }
            if chance(30) { session["client_name"] = .string(text()) }
            if chance(40) { session["custom_data"] = .object(object()) }
            record["session_ctx"] = .object(session)
        }
        if chance(85) { record["timestamp"] = time() }
        return .object(record)
    }

    private mutating func userCom() -> JSON {
        if chance(20) {
            return ["user_id": .string(id("user")), "timestamp": time(), "user_data": .object(object())]
        }
        var record: JSONObject = [
            "event": .string((chance(30) ? "event." : "") + pick(["app_created", "payment", "E " + text()])), "user_id": .string(id("user")),
        ]
        if chance(85) { record["timestamp"] = time() }
        if chance(80) { record["attributes"] = .object(object()) }
        return .object(record)
    }
}
