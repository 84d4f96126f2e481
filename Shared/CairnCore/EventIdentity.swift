/// How an event's `internal_event_id` is derived: a duplicate is a redelivery of the same
/// event and nothing else, so what the id covers depends on what the sender gives.
///
/// The id is xxHash64 (seed 0) of UTF-8 bytes whose first field is the app token and whose
/// fields are separated by U+001F:
/// - **Userpilot records:** Userpilot's event schema's composite key,
///   `app_token ␟ event_type ␟ event_name ␟ user_id ␟ company_id ␟ inserted_at`
///   (absent ids empty, `inserted_at` as `YYYY-MM-DDTHH:MM:SS.ffffffZ`), so Cairn's ids
///   match Userpilot's. A record that carries its own `internal_event_id` keeps it.
/// - **Events with a sender's `messageId`:** `app_token ␟ messageId ␟ <the id>`. Two messages
///   with different ids are two events, whatever they hold; a retry is one.
/// - **Everything else** (UserGuiding, Userlike, User.com, Segment without `messageId`):
///   `app_token ␟ record ␟ <the canonical record>`, the record being every canonical field
///   but `source`, `origin`, `received_at` and the ids themselves, each tagged, in a fixed
///   order, the metadata as compact JSON with its object keys sorted. Records that differ
///   in any field are different events; a redelivery is one, whatever its key order.
///
/// The second field of the last two forms is never an event type, so no form can produce
/// another's key.
public enum EventIdentity {
    static let separator: UInt8 = 0x1F

    public static func derive(_ event: CanonicalEvent) -> UInt64 {
        if event.origin == .userpilot { return composite(event) }
        if let messageId = event.messageId { return messageIdentity(appToken: event.appToken, messageId: messageId) }
        return recordIdentity(event)
    }

    /// Userpilot's event schema's composite key.
    public static func composite(_ event: CanonicalEvent) -> UInt64 {
        var key = [UInt8]()
        key.reserveCapacity(96)
        for (index, field) in [
            event.appToken, event.eventType.rawValue, event.eventName, event.userId ?? "", event.companyId ?? "",
            event.insertedAt.description,
        ].enumerated() {
            if index > 0 { key.append(separator) }
            key.append(contentsOf: field.utf8)
        }
        return XXHash64.hash(key)
    }

    public static func messageIdentity(appToken: String, messageId: String) -> UInt64 {
        var key = Array(appToken.utf8)
        key.append(separator)
        key.append(contentsOf: "messageId".utf8)
        key.append(separator)
        key.append(contentsOf: messageId.utf8)
        return XXHash64.hash(key)
    }

    static func recordIdentity(_ event: CanonicalEvent) -> UInt64 {
        // Written straight into one buffer, each field tagged, in a fixed order, with object
        // keys sorted: this runs for every event of most formats.
        var writer = JSONWriter(reservingCapacity: 512)
        writer.writeRaw(bytes: event.appToken.utf8)
        writer.writeRaw(bytes: [separator])
        writer.writeRaw("record")
        writer.writeRaw(bytes: [separator])
        let fields: [(String, String?)] = [
            ("t", event.eventType.rawValue), ("n", event.eventName), ("u", event.userId), ("c", event.companyId),
            ("a", event.anonymousId), ("i", event.insertedAt.description), ("h", event.hostname), ("p", event.pathname),
            ("w", event.screenWidth.map(String.init)), ("v", event.screenHeight.map(String.init)), ("d", event.deviceType),
            ("g", event.userAgent), ("o", event.operatingSystem), ("b", event.browser), ("l", event.browserLanguage),
            ("s", event.session), ("y", event.countryCode),
        ]
        for (tag, value) in fields {
            guard let value else { continue }
            writer.writeRaw(tag)
            writer.writeString(value)
        }
        writer.writeRaw("m")
        writer.writeSortingKeys(.object(event.metadata))
        return XXHash64.hash(writer.bytes)
    }

    /// Reads an `internal_event_id` a sender supplied: 16 hex digits (the form Cairn shows,
    /// optionally `0x`-prefixed hex of any length up to 16), or a decimal 64-bit number,
    /// signed (PostgreSQL's `bigint`) or unsigned, as a string or a JSON integer.
    /// A string of exactly 16 decimal digits reads as hex, the form Cairn itself writes.
    /// - Returns: nil when `text` is not a 64-bit number.
    public static func parseSupplied(_ text: String) -> UInt64? {
        let lowered = text.lowercased()
        if lowered.hasPrefix("0x") {
            let digits = lowered.dropFirst(2)
            return digits.count <= 16 ? UInt64(digits, radix: 16) : nil
        }
        if lowered.utf8.count == 16, let value = UInt64(lowered, radix: 16) { return value }
        if let value = UInt64(lowered) { return value }
        if let value = Int64(lowered) { return UInt64(bitPattern: value) }
        if lowered.utf8.count < 16, lowered.contains(where: { ("a"..."f").contains($0) }), let value = UInt64(lowered, radix: 16) { return value }
        return nil
    }
}

extension JSONWriter {
    /// Writes `value` with every object's keys in byte order, for a serialisation that does
    /// not depend on the order a sender wrote them in.
    public mutating func writeSortingKeys(_ value: JSON) {
        switch value {
        case .object(let object):
            writeRaw("{")
            // Swift's order, with canonically equivalent spellings apart by their length: a total,
            // repeatable order (PostgreSQL's byte order is not needed, only one order).
            let order = object.pairs.indices.sorted { left, right in
                let a = object.pairs[left].key
                let b = object.pairs[right].key
                return a < b || (a == b && a.utf8.count < b.utf8.count)
            }
            for (offset, index) in order.enumerated() {
                if offset > 0 { writeRaw(",") }
                writeString(object.pairs[index].key)
                writeRaw(":")
                writeSortingKeys(object.pairs[index].value)
            }
            writeRaw("}")
        case .array(let array):
            writeRaw("[")
            for (offset, element) in array.enumerated() {
                if offset > 0 { writeRaw(",") }
                writeSortingKeys(element)
            }
            writeRaw("]")
        default:
            write(value)
        }
    }
}

extension CanonicalEvent {
    /// Reads the `internal_event_id` of a canonical object: absent means derive it.
    static func suppliedId(_ value: JSON?) throws(EventError) -> UInt64? {
        switch value {
        case nil, .null?: return nil
        case .string(let text)?:
            guard let id = EventIdentity.parseSupplied(text) else {
                throw EventError(.invalidField, field: "internal_event_id", "expected a 64-bit number (16 hex digits, or decimal), found '\(text)'")
            }
            return id
        case .int(let number)?: return UInt64(bitPattern: number)
        case .number(let digits)? where UInt64(digits) != nil: return UInt64(digits)
        case let other?:
            throw EventError(
                .invalidField,
                field: "internal_event_id",
                "expected a 64-bit number (16 hex digits, or decimal), found \(other.serializedString())"
            )
        }
    }
}
