import AsyncHTTPClient
import CairnCore
import CairnPostgres
import Foundation

/// A stored event's key, as `trigger_deliveries` holds it: enough to settle a row whose
/// event is gone.
struct TriggerEventKey: Sendable, Hashable {
    var internalEventId: Int64
    /// `inserted_at` as PostgreSQL wrote it (UTC).
    var insertedAt: String
}

/// A stored event a trigger acts on, with its person and company resolved (as
/// `events_resolved` resolves them) and their traits.
struct TriggerEvent: Sendable {
    let event: CanonicalEvent
    let xid: Int64
    /// `inserted_at` as PostgreSQL wrote it (UTC), for the checkpoint and the deliveries table.
    let insertedAtText: String
    let internalEventId: Int64
    let person: String
    let company: String?
    let userTraits: JSONObject?
    let companyTraits: JSONObject?

    var position: StreamPosition { .event(xid: xid, at: insertedAtText, id: internalEventId) }
    var key: TriggerEventKey { TriggerEventKey(internalEventId: internalEventId, insertedAt: insertedAtText) }

    /// The columns that ``init(row:)`` reads, from `events_resolved e` joined to `users u` and
    /// `companies c`.
    static let columns =
        "e.stored_xid, "
        + StoredEvents.columns.split(separator: ",").map { "e." + $0.trimmingCharacters(in: .whitespacesAndNewlines) }.joined(separator: ", ")
        + ", e.person, e.company, u.traits::text AS user_traits, c.traits::text AS company_traits"

    static let joins = """
        FROM events_resolved e
        LEFT JOIN users u ON u.app_token = e.app_token AND u.user_id = e.person
        LEFT JOIN companies c ON c.app_token = e.app_token AND c.company_id = e.company
        """

    init(row: PostgresRow) throws(EventError) {
        event = try StoredEvents.event(from: row)
        xid = row["stored_xid", as: Int64.self] ?? 0
        insertedAtText = row["inserted_at"] ?? ""
        internalEventId = row["internal_event_id", as: Int64.self] ?? 0
        person = row["person"] ?? ""
        company = row["company"]
        userTraits = row["user_traits", as: JSON.self]?.objectValue
        companyTraits = row["company_traits", as: JSON.self]?.objectValue
    }

    init(event: CanonicalEvent, person: String, company: String?, userTraits: JSONObject?, companyTraits: JSONObject?) {
        self.event = event
        xid = 0
        insertedAtText = event.insertedAt.description
        internalEventId = event.internalEventIdBigint
        self.person = person
        self.company = company
        self.userTraits = userTraits
        self.companyTraits = companyTraits
    }
}

/// What a trigger POSTs, and how it is signed (README, "Triggers").
enum TriggerWebhook {
    /// The JSON body: the event in its Segment form, the trigger, and the resolved user and
    /// company with their traits; an absence trigger also says what did not happen.
    static func body(for trigger: TriggerDefinition, _ item: TriggerEvent) -> [UInt8] {
        var user: JSON = .null
        if !item.person.hasPrefix("anonymous:") {
            user = ["user_id": .string(item.person), "traits": .object(item.userTraits ?? JSONObject())]
        }
        var company: JSON = .null
        if let id = item.company {
            company = ["company_id": .string(id), "traits": .object(item.companyTraits ?? JSONObject())]
        }
        var body: JSONObject = [
            "trigger": .string(trigger.name), "app": .string(trigger.appName),
            "delivery_id": .string(deliveryId(trigger, item)),
            "event": .object(SegmentMapper.message(for: item.event)),
            "user": user, "company": company,
        ]
        if let unless = trigger.unless, let within = trigger.withinSeconds {
            body["absence"] = [
                "unless": .string(unless), "within_s": .int(within),
                "deadline": .string(Timestamp(microseconds: item.event.insertedAt.microseconds + within * 1_000_000).description),
            ]
        }
        return JSON.object(body).serialized()
    }

    /// The same for every attempt and every redelivery of one event to one trigger, so that a
    /// receiver can drop repeats (delivery is at least once).
    static func deliveryId(_ trigger: TriggerDefinition, _ item: TriggerEvent) -> String {
        trigger.name + ":" + item.event.internalEventIdHex
    }

    /// The headers of one attempt. With a secret, `X-Cairn-Signature: t=<unix seconds>,v1=<hex>`
    /// where the hex is HMAC-SHA256(secret, "<t>.<body>"), as Stripe signs: a receiver
    /// recomputes it, compares in constant time, and refuses a `t` too far from its clock.
    static func headers(
        for trigger: TriggerDefinition,
        body: [UInt8],
        deliveryId: String,
        attempt: Int,
        now: Timestamp = .now()
    ) -> [(String, String)] {
        var headers = [
            ("Content-Type", "application/json"), ("User-Agent", "cairn/\(SegmentMapper.exporterVersion)"),
            ("X-Cairn-Trigger", trigger.name), ("X-Cairn-Delivery", deliveryId), ("X-Cairn-Attempt", String(attempt)),
        ]
        if let secret = trigger.secret {
            headers.append(("X-Cairn-Signature", signature(secret: secret, body: body, at: now.microseconds / 1_000_000)))
        }
        return headers
    }

    static func signature(secret: String, body: [UInt8], at seconds: Int64) -> String {
        let mac = SHA256.hmac(key: Array(secret.utf8), Array("\(seconds).".utf8) + body)
        return "t=\(seconds),v1=\(SHA256.hexString(mac))"
    }

    /// POSTs one delivery with the trigger's attempts and timeout, and the export retry rules.
    static func send(_ trigger: TriggerDefinition, _ item: TriggerEvent, using client: HTTPClient = .shared) async -> DeliveryOutcome {
        let body = body(for: trigger, item)
        let id = deliveryId(trigger, item)
        var retry = RetryPolicy()
        retry.maximumAttempts = trigger.maximumAttempts
        retry.attemptTimeout = trigger.timeout
        retry.maximumBackoff = .seconds(30)
        return await HTTPPoster.post(body, to: trigger.url ?? "", retry: retry, using: client) { attempt in
            headers(for: trigger, body: body, deliveryId: id, attempt: attempt)
        }
    }
}
