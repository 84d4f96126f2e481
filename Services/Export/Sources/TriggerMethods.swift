import CairnCore
import CairnMethods
import CairnPostgres
import CairnWire
import Foundation

/// The export service's trigger methods, which `cairn triggers` calls:
/// - `triggers.add {app, name, event, where?, trait?, unless?, within?, url | email, secret?, max_attempts?, timeout?}`
///   → `{trigger, warnings}`;
/// - `triggers.list {app?}`, `triggers.status {app?}`, `triggers.remove {app?, name}`;
/// - `triggers.test {app?, name, record, format?}`: a dry run of one input record;
/// - `triggers.retry {app?, name, event_ids?}`: re-sends parked deliveries, resumes a disabled trigger.
enum TriggerMethods {
    /// - Parameter smtp: the SMTP server; without one, e-mail triggers are refused.
    static func register(in router: inout RPCRouter, pool: PostgresPool, smtp: SMTPSettings?) {
        router.register(TriggersAdd.self) { params in
            let input = try TriggerInput.definition(from: params)
            if case .email = input.action, smtp == nil {
                throw ExportError(
                    .invalidTrigger,
                    field: "email",
                    "needs an SMTP server: set settings.smtp in the export service's stack file entry (or CAIRN_SMTP_HOST and CAIRN_SMTP_FROM) and restart"
                )
            }
            let app = params.app
            let (definition, warnings) = try await ExportService.guarded {
                try await pool.withConnection { connection -> (TriggerDefinition, [String]) in
                    guard let token = try connection.appToken(for: app) else { throw ExportError(.invalidApp, "no app is named '\(app)'") }
                    var trigger = input
                    trigger.appToken = token
                    trigger.appName = try connection.execute("SELECT name FROM apps WHERE token = $1", [token]).firstRow?["name"] ?? token
                    return (trigger, try TriggerStore.add(trigger, on: connection))
                }
            }
            return ["trigger": .object(listing(definition)), "warnings": .array(warnings.map(JSON.string))]
        }
        router.register(TriggersList.self) { params in
            let app = params.app
            let triggers = try await ExportService.guarded {
                try await pool.withConnection { connection -> [TriggerDefinition] in
                    try TriggerStore.all(appToken: try token(app, on: connection), on: connection)
                }
            }
            return ["triggers": .array(triggers.map { .object(listing($0)) })]
        }
        router.register(TriggersStatus.self) { params in
            let app = params.app
            let rows = try await ExportService.guarded {
                try await pool.withConnection { connection in try TriggerStore.status(appToken: try token(app, on: connection), on: connection) }
            }
            return ["triggers": .array(rows.map(JSON.object))]
        }
        router.register(TriggersRemove.self) { params in
            let (app, name) = (params.app, params.name)
            let removed = try await ExportService.guarded {
                try await pool.withConnection { connection -> TriggerDefinition in
                    let trigger = try TriggerStore.find(app: app, name: name, on: connection)
                    _ = try TriggerStore.remove(trigger, on: connection)
                    return trigger
                }
            }
            return ["removed": .string(removed.name), "app": .string(removed.appName)]
        }
        router.register(TriggersRetry.self) { params in
            let (app, name) = (params.app, params.name)
            let ids = try (params.event_ids ?? []).map { text throws(ExportError) -> Int64 in
                guard text.count == 16, let id = UInt64(text, radix: 16).map({ Int64(bitPattern: $0) }) else {
                    throw ExportError(.invalidParams, field: "event_ids", "must be event ids as `cairn triggers status` shows them (16 hex digits)")
                }
                return id
            }
            let (trigger, outcome) = try await ExportService.guarded {
                try await pool.withConnection { connection -> (TriggerDefinition, (queued: Int, resumed: Bool)) in
                    let trigger = try TriggerStore.find(app: app, name: name, on: connection)
                    return (trigger, try TriggerStore.retry(trigger, eventIds: ids, on: connection))
                }
            }
            return [
                "trigger": .string(trigger.name), "app": .string(trigger.appName), "queued": .int(Int64(outcome.queued)),
                "resumed": .bool(outcome.resumed),
            ]
        }
        router.register(TriggersParked.self) { params in
            let (app, name) = (params.app, params.name)
            let rows = try await ExportService.guarded {
                try await pool.withConnection { connection -> [PostgresRow] in
                    let trigger = try TriggerStore.find(app: app, name: name, on: connection)
                    try connection.execute("SET TimeZone = 'UTC'")
                    return try connection.execute(
                        """
                        SELECT internal_event_id, inserted_at::text AS inserted_at, person, state, attempts, last_error, updated_at::text AS updated_at
                        FROM trigger_deliveries
                        WHERE app_token = $1 AND trigger = $2 AND state IN ('failed', 'retry') ORDER BY inserted_at, internal_event_id LIMIT 1000
                        """,
                        [trigger.appToken, trigger.name]
                    ).namedRows
                }
            }
            return [
                "deliveries": .array(
                    rows.map { row in
                        [
                            "event_id": .optional(row["internal_event_id", as: Int64.self].map { CanonicalEvent.hex(UInt64(bitPattern: $0)) }),
                            "inserted_at": .optional(row["inserted_at"]), "person": .optional(row["person"]), "state": .optional(row["state"]),
                            "attempts": .int(row["attempts", as: Int64.self] ?? 0), "last_error": .optional(row["last_error"]),
                            "updated_at": .optional(row["updated_at"]),
                        ]
                    }
                )
            ]
        }
        router.register(TriggersTest.self) { params in
            let (app, name) = (params.app, params.name)
            let record = params.record
            let format = EventNormalizer.FormatChoice(rawValue: params.format ?? "auto") ?? .auto
            return try await ExportService.guarded {
                try await pool.withConnection { connection -> JSON in
                    let trigger = try TriggerStore.find(app: app, name: name, on: connection)
                    let outcome = EventNormalizer.normalize(
                        record: record,
                        format: format,
                        context: IngestContext(appToken: trigger.appToken, receivedAt: .now())
                    )
                    if let rejection = outcome.rejections.first {
                        throw ExportError(rejection.error.code, "the event file's record is refused: " + rejection.error.description)
                    }
                    guard
                        let event = outcome.events.first(where: { $0.eventType != .identifyUser && $0.eventType != .identifyCompany })
                            ?? outcome.events.first
                    else {
                        throw ExportError(.invalidEvent, "the event file's record gives no event")
                    }
                    return try dryRun(trigger, event: event, smtp: smtp, on: connection)
                }
            }
        }
    }

    /// Whether `event` matches, part by part, and the body and headers it would get. The
    /// matching is the trigger's own SQL (``TriggerDefinition/matchSQL(event:user:parameters:)``),
    /// run on the event and on the stored traits of its user.
    static func dryRun(
        _ trigger: TriggerDefinition,
        event: CanonicalEvent,
        smtp: SMTPSettings?,
        on connection: PostgresConnection
    ) throws -> JSON {
        let person = event.userId ?? event.anonymousId.map { "anonymous:" + $0 } ?? ""
        var parameters: [String?] = [trigger.appToken, event.eventName, event.json["metadata"]?.serializedString() ?? "{}", person, event.companyId]
        let match = try trigger.matchSQL(event: "e", user: "u", parameters: &parameters)
        let row = try connection.execute(
            """
            SELECT \(match.name) AS name_matches, \(match.attributes) AS attributes_match, \(match.traits) AS traits_match,
                   u.traits::text AS user_traits, COALESCE(e.company, u.company_id) AS company, c.traits::text AS company_traits
            FROM (SELECT $1::text AS app_token, $2::text AS event_name, $3::jsonb AS metadata, $4::text AS person, $5::text AS company) e
            LEFT JOIN users u ON u.app_token = e.app_token AND u.user_id = e.person
            LEFT JOIN companies c ON c.app_token = e.app_token AND c.company_id = COALESCE(e.company, u.company_id)
            """,
            parameters
        ).firstRow
        func flag(_ column: String) -> Bool { row?[column, as: Bool.self] == true }
        func object(_ column: String) -> JSONObject? { row?[column, as: JSON.self]?.objectValue }
        var reasons: [JSON] = []
        if !flag("name_matches") {
            reasons.append(.string("the event name '\(event.eventName)' is not \(trigger.isPattern ? "matched by" : "") '\(trigger.event)'"))
        }
        if !flag("attributes_match"), let condition = trigger.condition {
            reasons.append(.string("--where '\(condition)' does not hold for the event's attributes"))
        }
        if !flag("traits_match"), let condition = trigger.traitCondition {
            reasons.append(.string("--trait '\(condition)' does not hold for the traits stored for '\(person)'"))
        }
        let item = TriggerEvent(
            event: event,
            person: person,
            company: row?["company"],
            userTraits: object("user_traits"),
            companyTraits: object("company_traits")
        )
        var answer: JSONObject = [
            "trigger": .string(trigger.name), "app": .string(trigger.appName), "matches": .bool(reasons.isEmpty),
            "reasons": .array(reasons),
            "absence": .optional(
                trigger.unless.map {
                    "fires only if no '\($0)'\(trigger.unlessSame.map { " with the same \($0)" } ?? "") follows within \(trigger.withinSeconds ?? 0)s"
                }
            ),
        ]
        switch trigger.action {
        case .webhook(let url, _):
            let body = TriggerWebhook.body(for: trigger, item)
            let headers = TriggerWebhook.headers(for: trigger, body: body, deliveryId: TriggerWebhook.deliveryId(trigger, item), attempt: 1)
            var headerObject = JSONObject()
            for (name, value) in headers { headerObject.append(name, .string(value)) }
            answer["url"] = .string(url)
            answer["headers"] = .object(headerObject)
            answer["body"] = (try? JSONParser.parse(body)) ?? .null
        case .email(let templates):
            do throws(SMTPFailure) {
                let message = try TriggerEmailComposer.compose(templates, trigger: trigger, item: item, from: smtp?.from ?? "cairn@localhost")
                answer["email"] = [
                    "to": .string(message.recipient), "subject": .string(message.subject),
                    "message": .string(String(decoding: message.bytes, as: UTF8.self)),
                ]
            } catch {
                answer["email"] = ["error": .string(error.message)]
            }
            answer["context"] = TriggerEmailComposer.context(for: trigger, item)
        }
        return .object(answer)
    }

    /// A trigger as listed: everything but the secret, which is only said to be set.
    static func listing(_ trigger: TriggerDefinition) -> JSONObject {
        [
            "app": .string(trigger.appName), "name": .string(trigger.name), "event": .string(trigger.event),
            "where": .optional(trigger.condition), "trait": .optional(trigger.traitCondition),
            "unless": .optional(trigger.unless), "unless_same": .optional(trigger.unlessSame),
            "within_s": trigger.withinSeconds.map { .int($0) } ?? .null,
            "url": .optional(trigger.url), "secret": .string(trigger.url == nil ? "none" : trigger.secret == nil ? "none" : "set"),
            "email": emailListing(trigger),
            "max_attempts": .int(Int64(trigger.maximumAttempts)), "timeout_ms": .int(TriggerStore.milliseconds(trigger.timeout)),
            "state": .string(trigger.state.name), "state_reason": .optional(trigger.state.reason),
        ]
    }

    private static func emailListing(_ trigger: TriggerDefinition) -> JSON {
        guard case .email(let templates) = trigger.action else { return .null }
        return [
            "to": .string(templates.to), "subject": .string(templates.subject), "text": .string(templates.text), "html": .optional(templates.html),
        ]
    }

    private static func token(_ app: String?, on connection: PostgresConnection) throws -> String? {
        guard let app else { return nil }
        guard let token = try connection.appToken(for: app) else { throw ExportError(.invalidApp, "no app is named '\(app)'") }
        return token
    }

}
