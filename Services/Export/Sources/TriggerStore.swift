import CairnCore
import CairnPostgres
import CairnRollups
import CairnWire
import Foundation

/// Triggers, their checkpoints and their unfinished deliveries, in PostgreSQL (tables
/// `triggers` and `trigger_deliveries`, migration 11).
enum TriggerStore {
    static let definitionColumns = """
        t.app_token, COALESCE(a.name, t.app_token) AS app_name, t.name, t.event, t.condition, t.trait_condition, t.unless_event, t.within_s, t.unless_same,
        t.url, t.secret, t.email_to, t.email_subject, t.email_text, t.email_html, t.max_attempts, t.timeout_ms, t.state, t.state_reason,
        t.created_at::text AS generation
        """

    /// The trigger in a row that selects ``definitionColumns``.
    static func definition(from row: PostgresRow) -> TriggerDefinition? {
        guard let token = row["app_token"], let name = row["name"], let event = row["event"] else { return nil }
        let action: TriggerAction
        if let url = row["url"] {
            action = .webhook(url: url, secret: row["secret"])
        } else if let subject = row["email_subject"], let text = row["email_text"] {
            action = .email(
                TriggerEmailTemplates(
                    to: row["email_to"] ?? TriggerEmailTemplates.defaultRecipient,
                    subject: subject,
                    text: text,
                    html: row["email_html"]
                )
            )
        } else {
            return nil
        }
        return TriggerDefinition(
            appToken: token,
            appName: row["app_name"] ?? token,
            name: name,
            event: event,
            condition: row["condition"],
            traitCondition: row["trait_condition"],
            unless: row["unless_event"],
            withinSeconds: row["within_s", as: Int64.self],
            unlessSame: row["unless_same"],
            action: action,
            maximumAttempts: row["max_attempts", as: Int.self] ?? 10,
            timeout: .milliseconds(row["timeout_ms", as: Int64.self] ?? 10_000),
            state: TriggerState(stored: row["state"], reason: row["state_reason"]),
            generation: row["generation"]
        )
    }

    /// Every trigger, or one app's.
    static func all(appToken: String? = nil, on connection: PostgresConnection) throws(PostgresError) -> [TriggerDefinition] {
        try connection.execute(
            """
            SELECT \(definitionColumns) FROM triggers t LEFT JOIN apps a ON a.token = t.app_token
            WHERE $1::text IS NULL OR t.app_token = $1 ORDER BY 2, 3
            """,
            [appToken]
        ).namedRows.compactMap(definition(from:))
    }

    /// The trigger `name` of `app` (a name or token); with no app, the one trigger of that
    /// name, if only one app has it.
    static func find(app: String?, name: String, on connection: PostgresConnection) throws -> TriggerDefinition {
        var token: String?
        if let app {
            guard let found = try connection.appToken(for: app) else { throw ExportError(.invalidApp, "no app is named '\(app)'") }
            token = found
        }
        let rows = try connection.execute(
            """
            SELECT \(definitionColumns) FROM triggers t LEFT JOIN apps a ON a.token = t.app_token
            WHERE t.name = $1 AND ($2::text IS NULL OR t.app_token = $2)
            """,
            [name, token]
        ).namedRows.compactMap(definition(from:))
        guard let first = rows.first else {
            throw ExportError(.unknownTrigger, "no trigger is named '\(name)'\(app.map { " for app '\($0)'" } ?? "")")
        }
        guard rows.count == 1 else {
            throw ExportError(
                .ambiguousTrigger,
                field: "app",
                "is needed: \(rows.count) apps have a trigger named '\(name)' (\(rows.map(\.appName).joined(separator: ", ")))"
            )
        }
        return first
    }

    /// Stores a new trigger, its checkpoint just before the oldest transaction still running:
    /// it sees every event committed from now on, and none from before. Returns warnings.
    static func add(_ trigger: TriggerDefinition, on connection: PostgresConnection) throws -> [String] {
        var email: TriggerEmailTemplates?
        if case .email(let templates) = trigger.action { email = templates }
        let inserted = try connection.execute(
            """
            INSERT INTO triggers (app_token, name, event, condition, trait_condition, unless_event, within_s, url, secret,
                                  max_attempts, timeout_ms, email_to, email_subject, email_text, email_html, unless_same, after_xid)
            SELECT $1, $2, $3, $4, $5, $6, $7::bigint, $8, $9, $10::integer, $11::integer, $12, $13, $14, $15, $16, (\(LogHorizon.sql))::bigint - 1
            ON CONFLICT (app_token, name) DO NOTHING
            """,
            [
                trigger.appToken, trigger.name, trigger.event, trigger.condition, trigger.traitCondition, trigger.unless,
                trigger.withinSeconds.map(String.init), trigger.url, trigger.secret, String(trigger.maximumAttempts),
                String(milliseconds(trigger.timeout)), email?.to, email?.subject, email?.text, email?.html, trigger.unlessSame,
            ]
        ).affectedRows
        guard inserted == 1 else {
            throw ExportError(
                .triggerExists,
                "app '\(trigger.appName)' already has a trigger named '\(trigger.name)'; remove it first, or choose another name"
            )
        }
        try LogNotification.announce(LogNotification.triggers, app: trigger.appToken, on: connection)
        var warnings: [String] = []
        // The event may simply not have happened yet: a warning, not a refusal.
        for (option, event) in [("--event", trigger.event)] + (trigger.unless.map { [("--unless", $0)] } ?? []) {
            var parameters: [String?] = [trigger.appToken]
            let test = TriggerDefinition.eventNameSQL(event, on: "event_name", parameters: &parameters)
            let seen =
                try connection.execute(
                    """
                    SELECT EXISTS (SELECT 1 FROM rollup_event_counts WHERE app_token = $1 AND \(test))
                        OR EXISTS (SELECT 1 FROM events WHERE app_token = $1 AND stored_xid > \(FollowerCheckpoint.scalar(appParameter: "$1")) AND \(test)) AS seen
                    """,
                    parameters
                )
                .firstRow?["seen", as: Bool.self] == true
            if !seen {
                warnings.append(
                    "\(option) '\(event)': app '\(trigger.appName)' has stored no such event yet; the trigger will match it once one arrives"
                )
            }
        }
        return warnings
    }

    static func remove(_ trigger: TriggerDefinition, on connection: PostgresConnection) throws(PostgresError) -> Int {
        // No foreign key cascades (the tables distribute by app): the deliveries go first, in one transaction.
        try connection.transaction { () throws(PostgresError) -> Int in
            try connection.execute("DELETE FROM trigger_deliveries WHERE app_token = $1 AND trigger = $2", [trigger.appToken, trigger.name])
            try LogNotification.announce(LogNotification.triggers, app: trigger.appToken, on: connection)
            return try connection.execute("DELETE FROM triggers WHERE app_token = $1 AND name = $2", [trigger.appToken, trigger.name]).affectedRows
        }
    }

    /// Where the trigger's stream stands.
    static func position(_ trigger: TriggerDefinition, on connection: PostgresConnection) throws(PostgresError) -> StreamPosition? {
        guard
            let row = try connection.execute(
                "SELECT after_xid, after_at::text AS after_at, after_event_id FROM triggers WHERE app_token = $1 AND name = $2",
                [trigger.appToken, trigger.name]
            ).firstRow,
            let xid = row["after_xid", as: Int64.self], let at = row["after_at"], let id = row["after_event_id", as: Int64.self]
        else { return nil }
        return .event(xid: xid, at: at, id: id)
    }

    /// What one step of a trigger did, recorded with its new position in one statement.
    struct Progress: Sendable {
        var matched = 0
        var delivered = 0
        var failed = 0
        var cancelled = 0
        var lastError: String?
    }

    static func advance(
        _ trigger: TriggerDefinition,
        to position: StreamPosition?,
        _ progress: Progress,
        on connection: PostgresConnection
    ) throws(PostgresError) {
        let updated = try connection.execute(
            """
            UPDATE triggers SET
                after_xid = COALESCE($3::bigint, after_xid), after_at = COALESCE($4::timestamptz, after_at),
                after_event_id = COALESCE($5::bigint, after_event_id),
                matched = matched + $6, delivered = delivered + $7, failed = failed + $8, cancelled = cancelled + $9,
                last_delivered_at = CASE WHEN $7::bigint > 0 THEN now() ELSE last_delivered_at END,
                last_error = COALESCE($10, last_error), last_error_at = CASE WHEN $10::text IS NULL THEN last_error_at ELSE now() END,
                updated_at = now()
            WHERE app_token = $1 AND name = $2 AND ($11::timestamptz IS NULL OR created_at = $11::timestamptz)
            """,
            [
                trigger.appToken, trigger.name, position.map { String($0.xid) }, position?.at, position.map { String($0.eventId) },
                String(progress.matched), String(progress.delivered), String(progress.failed), String(progress.cancelled), progress.lastError,
                trigger.generation,
            ]
        ).affectedRows
        // A lane of a trigger since removed, or removed and added again under its name, must
        // not move the new one's checkpoint: its whole transaction is undone.
        if updated == 0, trigger.generation != nil {
            throw PostgresError(.queryFailed, "trigger '\(trigger.name)' was removed or replaced while it ran")
        }
    }

    /// A receiver answered 410 Gone: the trigger stops until `cairn triggers retry` resumes it.
    static func disable(_ trigger: TriggerDefinition, reason: String, on connection: PostgresConnection) throws(PostgresError) {
        try connection.execute(
            "UPDATE triggers SET state = 'disabled', state_reason = $3, updated_at = now() WHERE app_token = $1 AND name = $2",
            [trigger.appToken, trigger.name, reason]
        )
        try LogNotification.announce(LogNotification.triggers, app: trigger.appToken, on: connection)
    }

    /// Parks a delivery that used up its attempts (or was refused for good), to be re-sent by
    /// `cairn triggers retry`; an absence decision that fired keeps its row, now failed.
    static func park(
        _ trigger: TriggerDefinition,
        event: TriggerEvent,
        attempts: Int,
        error: String,
        on connection: PostgresConnection
    ) throws(PostgresError) {
        try connection.execute(
            """
            INSERT INTO trigger_deliveries (app_token, trigger, internal_event_id, inserted_at, person, state, attempts, last_error)
            SELECT $1, $2, $3::bigint, $4::timestamptz, $5, 'failed', $6::integer, $7
            -- An event erased while it was being delivered leaves nothing of its person behind.
            WHERE EXISTS (SELECT 1 FROM events WHERE app_token = $1 AND internal_event_id = $3::bigint AND inserted_at = $4::timestamptz)
            ON CONFLICT (app_token, trigger, internal_event_id, inserted_at) DO UPDATE SET
                state = 'failed', due_at = NULL, attempts = trigger_deliveries.attempts + EXCLUDED.attempts,
                last_error = EXCLUDED.last_error, updated_at = now()
            """,
            [trigger.appToken, trigger.name, String(event.internalEventId), event.insertedAtText, event.person, String(attempts), error]
        )
    }

    /// Takes a parked or waiting delivery off the list, once it is done.
    static func settle(_ trigger: TriggerDefinition, _ key: TriggerEventKey, on connection: PostgresConnection) throws(PostgresError) {
        try connection.execute(
            """
            DELETE FROM trigger_deliveries WHERE app_token = $1 AND trigger = $2 AND internal_event_id = $3::bigint AND inserted_at = $4::timestamptz
            """,
            [trigger.appToken, trigger.name, String(key.internalEventId), key.insertedAt]
        )
    }

    /// `cairn triggers retry`: parked deliveries become due again, and a trigger that a 410
    /// disabled resumes from its checkpoint. Returns how many deliveries were queued and
    /// whether the trigger was resumed.
    static func retry(
        _ trigger: TriggerDefinition,
        eventIds: [Int64],
        on connection: PostgresConnection
    ) throws(PostgresError) -> (queued: Int, resumed: Bool) {
        try connection.transaction { () throws(PostgresError) -> (Int, Bool) in
            let queued = try connection.execute(
                """
                UPDATE trigger_deliveries SET state = 'retry', updated_at = now()
                WHERE app_token = $1 AND trigger = $2 AND state = 'failed' AND (cardinality($3::bigint[]) = 0 OR internal_event_id = ANY($3::bigint[]))
                """,
                [trigger.appToken, trigger.name, PostgresArray.text(eventIds.map(String.init))]
            ).affectedRows
            let resumed = try connection.execute(
                """
                UPDATE triggers SET state = 'active', state_reason = NULL, updated_at = now()
                WHERE app_token = $1 AND name = $2 AND state = 'disabled'
                """,
                [trigger.appToken, trigger.name]
            ).affectedRows
            try LogNotification.announce(LogNotification.triggers, app: trigger.appToken, on: connection)
            return (queued, resumed > 0)
        }
    }

    /// Per trigger: its definition (without the secret), totals, what waits, and the lag.
    static func status(appToken: String?, on connection: PostgresConnection) throws(PostgresError) -> [JSONObject] {
        try connection.execute("SET TimeZone = 'UTC'")
        return try connection.execute(
            """
            SELECT COALESCE(a.name, t.app_token) AS app_name, t.name, t.event, t.state, t.state_reason, t.matched, t.delivered,
                   t.failed, t.cancelled, d.waiting, d.parked, round(extract(epoch FROM now() - e.oldest)::numeric, 3)::text AS lag_s,
                   e.pending, t.last_delivered_at::text AS last_delivered_at, t.last_error, t.last_error_at::text AS last_error_at,
                   COALESCE(t.url, 'email to ' || t.email_to) AS target, t.unless_event, t.within_s, t.unless_same
            FROM triggers t
            LEFT JOIN apps a ON a.token = t.app_token
            CROSS JOIN LATERAL (
                SELECT count(*) FILTER (WHERE state = 'waiting') AS waiting, count(*) FILTER (WHERE state IN ('failed', 'retry')) AS parked
                FROM trigger_deliveries WHERE app_token = t.app_token AND trigger = t.name
            ) d
            CROSS JOIN LATERAL (
                SELECT count(*) AS pending, min(received_at) AS oldest FROM events
                WHERE app_token = t.app_token AND \(ExportCheckpoints.eventsAfter(xid: "t.after_xid", at: "t.after_at", eventId: "t.after_event_id"))
            ) e
            WHERE $1::text IS NULL OR t.app_token = $1
            ORDER BY 1, 2
            """,
            [appToken]
        ).namedRows.map { row in
            func int(_ column: String) -> JSON { .int(row[column, as: Int64.self] ?? 0) }
            return [
                "app": .optional(row["app_name"]), "trigger": .optional(row["name"]), "event": .optional(row["event"]),
                "absence": .optional(
                    row["unless_event"].map {
                        "unless \($0)\(row["unless_same"].map { " with the same \($0)" } ?? "") within \(row["within_s"] ?? "?")s"
                    }
                ),
                "state": .optional(row["state"]), "state_reason": .optional(row["state_reason"]),
                "matched": int("matched"), "delivered": int("delivered"), "failed": int("failed"), "cancelled": int("cancelled"),
                "waiting": int("waiting"), "parked": int("parked"),
                "pending_events": int("pending"), "lag_s": row["lag_s", as: Double.self].map { .double($0) } ?? .double(0),
                "last_delivered_at": .optional(row["last_delivered_at"]), "last_error": .optional(row["last_error"]),
                "last_error_at": .optional(row["last_error_at"]), "target": .optional(row["target"]),
            ]
        }
    }

    static func milliseconds(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
    }
}
