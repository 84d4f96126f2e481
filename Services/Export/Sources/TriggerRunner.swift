import AsyncHTTPClient
import CairnCondition
import CairnCore
import CairnMethods
import CairnMetrics
import CairnPostgres
import CairnRollups
import CairnWire
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Runs every active trigger, one ``TriggerLane`` each, and follows the `triggers` table:
/// a trigger added, removed, disabled or resumed while the stack runs is picked up within a
/// second, without a restart.
struct TriggerRunner: Service {
    let pool: PostgresPool
    let wakeups: PostgresNotifications
    let logger: Logger
    /// Where e-mail triggers send, and its TLS context (made once).
    var mail: TriggerMail?
    /// How often a caught-up trigger looks for new events. Defaults to 250 ms.
    var pollInterval: Duration = .milliseconds(250)
    /// How often the table of triggers is read again.
    var syncInterval: Duration = .seconds(1)

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                var lanes: [String: TriggerLane] = [:]
                var retiring: [String: TriggerLane] = [:]
                let changed = wakeups.doorbell(channels: [LogNotification.triggers])
                while !Task.isCancelled {
                    let seen = changed.rings
                    do {
                        let definitions = try await pool.withConnection { try TriggerStore.all(on: $0) }
                        let wanted = Dictionary(
                            definitions.filter { $0.state == .active }.map { ($0.appToken + "\u{1F}" + $0.name, $0) },
                            uniquingKeysWith: { first, _ in first }
                        )
                        for (key, lane) in lanes where wanted[key] != lane.trigger {
                            lane.stop()
                            lanes[key] = nil
                            retiring[key] = lane
                        }
                        retiring = retiring.filter { !$0.value.hasFinished }
                        // A changed trigger's new lane starts once the old one has finished its step,
                        // so that two never move one checkpoint.
                        for (key, trigger) in wanted where lanes[key] == nil && retiring[key] == nil {
                            let lane = TriggerLane(
                                trigger: trigger,
                                pool: pool,
                                wakeups: wakeups,
                                logger: logger,
                                pollInterval: pollInterval,
                                mail: mail
                            )
                            lanes[key] = lane
                            logger.info(
                                "trigger running",
                                metadata: ["trigger": "\(trigger.name)", "app": "\(trigger.appName)", "target": "\(trigger.target)"]
                            )
                            group.addTask { await lane.run() }
                        }
                    } catch {
                        logger.warning("cannot read the triggers; will retry", metadata: ["error": "\(error)"])
                    }
                    // A lane being retired finishes its step soon: look again shortly while one is. The
                    // table is also read every 5 s regardless: a trigger written by hand (or a restored
                    // database) announces nothing, and the read costs one small query.
                    await changed.wait(after: seen, timeout: retiring.isEmpty ? min(wakeups.timeout(poll: syncInterval), .seconds(5)) : syncInterval)
                }
                for lane in lanes.values { lane.stop() }
            }
        }
    }
}

/// Follows one trigger: reads the matching events committed after its checkpoint, delivers
/// each (or, for an absence trigger, starts its wait), and moves the checkpoint in the same
/// transaction that records what became of them. Killed at any moment, it repeats at most the
/// page in flight: a webhook is delivered at least once, with a stable `X-Cairn-Delivery` id;
/// an e-mail is recorded as sent before the SMTP server is told the message is complete, so
/// it is never sent twice (``TriggerLane/email(_:_:mail:)``).
final class TriggerLane: Sendable {
    let trigger: TriggerDefinition
    let pool: PostgresPool
    let wakeups: PostgresNotifications
    /// Rings when the app's events, identity or triggers change.
    let committed: Doorbell
    let logger: Logger
    let pollInterval: Duration
    let mail: TriggerMail?
    /// Events read and acted on per step.
    let pageSize = 200
    /// Persons whose deliveries go out side by side; one person's go one after another.
    let concurrency = 8
    private let flags = Mutex<(stopped: Bool, finished: Bool, leftoversSettled: Bool)>((false, false, false))

    init(
        trigger: TriggerDefinition,
        pool: PostgresPool,
        wakeups: PostgresNotifications,
        logger: Logger,
        pollInterval: Duration,
        mail: TriggerMail? = nil
    ) {
        self.trigger = trigger
        self.mail = mail
        self.pool = pool
        self.wakeups = wakeups
        committed = wakeups.doorbell(
            channels: [LogNotification.events, LogNotification.folded, LogNotification.triggers],
            payload: trigger.appToken
        )
        self.logger = logger
        self.pollInterval = pollInterval
    }

    func stop() { flags.withLock { $0.stopped = true } }
    var isStopped: Bool { flags.withLock { $0.stopped } }
    var hasFinished: Bool { flags.withLock { $0.finished } }

    func run() async {
        defer { flags.withLock { $0.finished = true } }
        var backoff: Duration = .seconds(1)
        var wait = CommitWait(bell: committed, notifications: wakeups)
        while !isStopped && !Task.isCancelled {
            let seen = wait.rings
            do {
                let more = try await step()
                backoff = .seconds(1)
                if !more {
                    // An absence trigger has decisions falling due with time alone: it keeps polling.
                    if trigger.isAbsence {
                        try? await Task.sleep(for: pollInterval)
                    } else {
                        await wait.idle(after: seen, poll: pollInterval)
                    }
                }
            } catch let error as ConditionError {
                // A stored definition that no longer loads (one stored before conditions were
                // bounded) is marked broken with its reason and stops; `triggers remove` works as ever.
                logger.error("trigger cannot be loaded; disabled", metadata: ["trigger": "\(trigger.name)", "error": "\(error.reason)"])
                let trigger = self.trigger
                _ = try? await pool.withConnection {
                    try TriggerStore.disable(trigger, reason: "broken: its condition cannot be loaded: \(error.reason)", on: $0)
                }
                return
            } catch {
                if Task.isCancelled { return }
                logger.error("trigger failed; retrying", metadata: ["trigger": "\(trigger.name)", "error": "\(error)"])
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(30))
            }
        }
    }

    /// Re-sends what `cairn triggers retry` queued, acts on the next page of matching events,
    /// and decides the absences that are due. True when there may be more to read at once.
    func step() async throws -> Bool {
        if case .email = trigger.action, !flags.withLock({ $0.leftoversSettled }) {
            try await settleSentLeftovers()
            flags.withLock { $0.leftoversSettled = true }
        }
        try await resendQueued()
        let (page, next) = try await readPage()
        if trigger.isAbsence {
            try await startWaiting(page, next: next)
            try await decideDue()
        } else {
            try await deliver(page, next: next)
        }
        return page.count == pageSize
    }

    // MARK: - Reading

    /// The matching events after the checkpoint, in stream order, from one snapshot; and the
    /// position after them (past every event of the snapshot when the page is not full, so
    /// that events that do not match are never read again).
    func readPage() async throws -> ([TriggerEvent], StreamPosition?) {
        let trigger = self.trigger
        let pageSize = self.pageSize
        let logger = self.logger
        return try await pool.withConnection { connection -> ([TriggerEvent], StreamPosition?) in
            guard let start = try TriggerStore.position(trigger, on: connection) else { return ([], nil) }
            try connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            do {
                try connection.execute("SET LOCAL TimeZone = 'UTC'")
                // Only events identity has folded: the person's traits (an e-mail address, a
                // --trait condition) are those of the identify stored with or before the event.
                let horizon = min(try LogHorizon.read(on: connection), try FollowerCheckpoint.read(app: trigger.appToken, on: connection) + 1)
                var parameters: [String?] = [trigger.appToken, String(start.xid), start.at, String(start.eventId)]
                let match = try trigger.matchSQL(event: "e", user: "u", parameters: &parameters)
                let rows = try connection.execute(
                    """
                    SELECT \(TriggerEvent.columns) \(TriggerEvent.joins)
                    WHERE e.app_token = $1 AND e.stored_xid < \(horizon)
                      AND \(ExportCheckpoints.eventsAfter(xid: "$2::bigint", at: "$3::timestamptz", eventId: "$4::bigint"))
                      AND \(match.name) AND \(match.attributes) AND \(match.traits)
                    ORDER BY e.stored_xid, e.inserted_at, e.internal_event_id
                    LIMIT \(pageSize)
                    """,
                    parameters
                ).namedRows
                try connection.execute("COMMIT")
                var events: [TriggerEvent] = []
                for row in rows {
                    do throws(EventError) {
                        events.append(try TriggerEvent(row: row))
                    } catch {
                        logger.error("trigger skips an unreadable stored event", metadata: ["trigger": "\(trigger.name)", "error": "\(error)"])
                    }
                }
                if rows.count == pageSize, let last = rows.last, let xid = last["stored_xid", as: Int64.self], let at = last["inserted_at"],
                    let id = last["internal_event_id", as: Int64.self]
                {
                    return (events, .event(xid: xid, at: at, id: id))
                }
                // Everything below the horizon has been seen.
                return (events, horizon - 1 >= start.xid ? .event(xid: horizon - 1, at: "infinity", id: .max) : nil)
            } catch {
                _ = try? connection.execute("ROLLBACK")
                throw error
            }
        }
    }

    /// One stored event by its key, resolved, for an absence that fires or a retry.
    func read(_ key: TriggerEventKey) async throws -> TriggerEvent? {
        let token = trigger.appToken
        return try await pool.withConnection { connection -> TriggerEvent? in
            try connection.execute("SET TimeZone = 'UTC'")
            guard
                let row = try connection.execute(
                    """
                    SELECT \(TriggerEvent.columns) \(TriggerEvent.joins)
                    WHERE e.app_token = $1 AND e.internal_event_id = $2::bigint AND e.inserted_at = $3::timestamptz
                    """,
                    [token, String(key.internalEventId), key.insertedAt]
                ).firstRow
            else { return nil }
            return try? TriggerEvent(row: row)
        }
    }

    // MARK: - Delivering

    /// What became of a set of deliveries.
    struct Results: Sendable {
        var delivered: [TriggerEventKey] = []
        var parked: [(event: TriggerEvent, attempts: Int, error: String)] = []
        /// The receiver answered 410 Gone: the trigger is to be disabled.
        var gone: String?
        var lastError: String?

        mutating func add(_ other: Results) {
            delivered += other.delivered
            parked += other.parked
            gone = gone ?? other.gone
            lastError = other.lastError ?? lastError
        }
    }

    /// Sends `items`: each person's in order, up to ``concurrency`` persons at once. A
    /// delivery that runs out of attempts, or is refused for good, is parked.
    ///
    /// - Parameter prior: the state the deliveries' rows had (`waiting` for an absence that
    ///   fires, `retry` for a queued re-send, nil for a new match): an e-mail refused after it
    ///   was marked sent goes back to it.
    func send(_ items: [TriggerEvent], prior: String? = nil) async -> Results {
        var byPerson: [String: [TriggerEvent]] = [:]
        var order: [String] = []
        for item in items {
            if byPerson[item.person] == nil { order.append(item.person) }
            byPerson[item.person, default: []].append(item)
        }
        return await withTaskGroup(of: Results.self) { group in
            var results = Results()
            var running = 0
            for person in order {
                if running == concurrency, let finished = await group.next() {
                    results.add(finished)
                    running -= 1
                }
                let queue = byPerson[person] ?? []
                group.addTask {
                    var results = Results()
                    for item in queue {
                        let attempt = await self.deliverOne(item, prior: prior)
                        if attempt.delivered {
                            results.delivered.append(item.key)
                            continue
                        }
                        results.lastError = attempt.description
                        if attempt.gone { results.gone = attempt.description }
                        results.parked.append((item, attempt.attempts, attempt.description))
                    }
                    return results
                }
                running += 1
            }
            for await finished in group { results.add(finished) }
            return results
        }
    }

    /// Delivers a page and records it with the new checkpoint in one transaction.
    func deliver(_ page: [TriggerEvent], next: StreamPosition?) async throws {
        guard !page.isEmpty || next != nil else { return }
        let results = await send(page)
        // E-mail deliveries were marked sent one by one; the marks go with the checkpoint's move.
        let isEmail = if case .email = trigger.action { true } else { false }
        try await record(results, matched: page.count, settled: isEmail ? results.delivered : [], next: next)
    }

    private func record(_ results: Results, matched: Int, cancelled: Int = 0, settled: [TriggerEventKey] = [], next: StreamPosition?) async throws {
        let trigger = self.trigger
        let logger = self.logger
        try await pool.withConnection { connection in
            try connection.transaction { () throws(PostgresError) in
                for key in settled { try TriggerStore.settle(trigger, key, on: connection) }
                for parked in results.parked {
                    try TriggerStore.park(trigger, event: parked.event, attempts: parked.attempts, error: parked.error, on: connection)
                }
                try TriggerStore.advance(
                    trigger,
                    to: next,
                    TriggerStore.Progress(
                        matched: matched,
                        delivered: results.delivered.count,
                        failed: results.parked.count,
                        cancelled: cancelled,
                        lastError: results.lastError
                    ),
                    on: connection
                )
                if let gone = results.gone {
                    try TriggerStore.disable(
                        trigger,
                        reason: "the receiver answered 410 Gone (\(gone)); cairn triggers retry resumes it",
                        on: connection
                    )
                }
            }
        }
        for (outcome, count) in [("delivered", results.delivered.count), ("parked", results.parked.count)] where count > 0 {
            CairnMetric.triggerDeliveries.increment(by: count, trigger.appName, trigger.name, outcome)
        }
        if !results.parked.isEmpty {
            logger.error(
                "trigger parked deliveries; cairn triggers retry re-sends them",
                metadata: ["trigger": "\(trigger.name)", "parked": "\(results.parked.count)", "error": "\(results.lastError ?? "")"]
            )
        }
        if results.gone != nil {
            logger.warning("trigger disabled: its receiver answered 410 Gone", metadata: ["trigger": "\(trigger.name)"])
            stop()
        }
    }

    /// Deliveries `cairn triggers retry` queued: sent again, then settled or parked again.
    func resendQueued() async throws {
        let trigger = self.trigger
        let queued = try await pool.withConnection { connection in
            try connection.execute(
                """
                SELECT internal_event_id, inserted_at::text AS inserted_at FROM trigger_deliveries
                WHERE app_token = $1 AND trigger = $2 AND state = 'retry' ORDER BY inserted_at, internal_event_id LIMIT 200
                """,
                [trigger.appToken, trigger.name]
            ).namedRows
        }
        guard !queued.isEmpty else { return }
        var items: [TriggerEvent] = []
        var vanished: [TriggerEventKey] = []
        for row in queued {
            guard let id = row["internal_event_id", as: Int64.self], let at = row["inserted_at"] else { continue }
            let key = TriggerEventKey(internalEventId: id, insertedAt: at)
            if let item = try await read(key) {
                items.append(item)
            } else {
                vanished.append(key)  // the event is gone (erased)
            }
        }
        let results = await send(items, prior: "retry")
        // A parked delivery that fails again stays parked (park updates it); the rest leave the list.
        try await record(results, matched: 0, settled: results.delivered + vanished, next: nil)
    }

    /// One delivery's end: sent, or not, after how many attempts and why.
    struct Attempt: Sendable {
        var delivered: Bool
        var attempts: Int
        var description: String = ""
        /// A webhook's receiver answered 410 Gone.
        var gone = false
    }

    func deliverOne(_ item: TriggerEvent, prior: String?) async -> Attempt {
        switch trigger.action {
        case .webhook:
            let outcome = await TriggerWebhook.send(trigger, item)
            if outcome.delivered { return Attempt(delivered: true, attempts: outcome.attempts) }
            let description = ExportCheckpoints.describe(outcome)
            return Attempt(delivered: false, attempts: outcome.attempts, description: description, gone: outcome.status == 410)
        case .email(let templates):
            return await email(item, templates, prior: prior)
        }
    }

    // MARK: - E-mail

    /// Sends one e-mail, exactly once. Before the server is told the message is complete (the
    /// final `.`), the delivery is marked `sent` in its own transaction: a run killed before the
    /// mark leaves a message the server discards and sends it again; one killed after finds the
    /// mark and does not. Only a kill in the instant between the mark's commit and the `.`
    /// loses the message, which is never sent twice. Refusals (4xx: retried; 5xx: parked) take
    /// the mark back.
    func email(_ item: TriggerEvent, _ templates: TriggerEmailTemplates, prior: String?) async -> Attempt {
        do {
            if try await isMarkedSent(item) { return Attempt(delivered: true, attempts: 0) }
        } catch {
            return Attempt(delivered: false, attempts: 0, description: "cannot read the delivery's state: \(error)")
        }
        guard let mail else {
            return Attempt(delivered: false, attempts: 0, description: "no SMTP server is configured (settings.smtp or CAIRN_SMTP_HOST)")
        }
        let message: ComposedEmail
        do {
            message = try TriggerEmailComposer.compose(templates, trigger: trigger, item: item, from: mail.settings.from)
        } catch {
            return Attempt(delivered: false, attempts: 1, description: error.description)
        }
        var retry = RetryPolicy()
        retry.maximumAttempts = trigger.maximumAttempts
        retry.maximumBackoff = .seconds(30)
        var attempt = 0
        while true {
            attempt += 1
            // An erased person is not written to again, whatever attempts are left.
            if attempt > 1, (try? await eventExists(item)) == false {
                return Attempt(
                    delivered: false,
                    attempts: attempt - 1,
                    description: "the event was erased (cairn users delete) before it could be sent"
                )
            }
            var marked = false
            var session: SMTPSession?
            do {
                let open = try await SMTPSession.open(mail.settings, tls: mail.tls)
                session = open
                let confirmed = try await open.send(message.bytes, from: mail.settings.fromAddress, to: message.recipient) {
                    try await self.markSent(item)
                    marked = true
                }
                await open.quit()
                if !confirmed {
                    logger.warning(
                        "the SMTP server's answer to a complete message was lost; it is counted as sent, not sent again",
                        metadata: ["trigger": "\(trigger.name)", "delivery": "\(TriggerWebhook.deliveryId(trigger, item))"]
                    )
                }
                return Attempt(delivered: true, attempts: attempt)
            } catch {
                session?.close()
                if marked { try? await unmarkSent(item, prior: prior) }
                let failure = error as? SMTPFailure ?? SMTPFailure.network("\(error)")
                let description = "\(failure) (attempt \(attempt) of \(retry.maximumAttempts))"
                if failure.permanent || attempt >= retry.maximumAttempts || Task.isCancelled || isStopped {
                    return Attempt(delivered: false, attempts: attempt, description: description)
                }
                logger.notice("e-mail not sent; will retry", metadata: ["trigger": "\(trigger.name)", "error": "\(description)"])
                try? await Task.sleep(for: retry.delay(afterAttempt: attempt, retryAfter: nil))
            }
        }
    }

    private func eventExists(_ item: TriggerEvent) async throws -> Bool {
        let token = trigger.appToken
        return try await pool.withConnection { connection in
            try connection.execute(
                "SELECT 1 FROM events WHERE app_token = $1 AND internal_event_id = $2::bigint AND inserted_at = $3::timestamptz",
                [token, String(item.internalEventId), item.insertedAtText]
            ).firstRow != nil
        }
    }

    /// The delivery row's key, `$1` to `$4` in each query on `trigger_deliveries` below.
    private func deliveryKey(_ item: TriggerEvent) -> [String] {
        [trigger.appToken, trigger.name, String(item.internalEventId), item.insertedAtText]
    }

    private func isMarkedSent(_ item: TriggerEvent) async throws -> Bool {
        let key = deliveryKey(item)
        return try await pool.withConnection { connection in
            try connection.execute(
                """
                SELECT 1 FROM trigger_deliveries
                WHERE app_token = $1 AND trigger = $2 AND internal_event_id = $3::bigint AND inserted_at = $4::timestamptz AND state = 'sent'
                """,
                key
            ).firstRow != nil
        }
    }

    private func markSent(_ item: TriggerEvent) async throws {
        let key = deliveryKey(item)
        _ = try await pool.withConnection { connection in
            try connection.execute(
                """
                INSERT INTO trigger_deliveries (app_token, trigger, internal_event_id, inserted_at, person, state)
                VALUES ($1, $2, $3::bigint, $4::timestamptz, $5, 'sent')
                ON CONFLICT (app_token, trigger, internal_event_id, inserted_at) DO UPDATE SET state = 'sent', updated_at = now()
                """,
                key + [item.person]
            )
        }
    }

    private func unmarkSent(_ item: TriggerEvent, prior: String?) async throws {
        let key = deliveryKey(item)
        _ = try await pool.withConnection { connection in
            if let prior {
                try connection.execute(
                    """
                    UPDATE trigger_deliveries SET state = $5, updated_at = now()
                    WHERE app_token = $1 AND trigger = $2 AND internal_event_id = $3::bigint AND inserted_at = $4::timestamptz
                    """,
                    key + [prior]
                )
            } else {
                try connection.execute(
                    """
                    DELETE FROM trigger_deliveries
                    WHERE app_token = $1 AND trigger = $2 AND internal_event_id = $3::bigint AND inserted_at = $4::timestamptz AND state = 'sent'
                    """,
                    key
                )
            }
        }
    }

    /// Marks a killed run left behind for deliveries that will not be read again (their event
    /// is at or before the checkpoint, or gone): counted as delivered and taken off the list,
    /// once, when the lane starts. Marks of the page in flight stay, so that reading it again
    /// skips them.
    func settleSentLeftovers() async throws {
        let trigger = self.trigger
        try await pool.withConnection { connection in
            try connection.transaction { () throws(PostgresError) in
                let settled = try connection.execute(
                    """
                    DELETE FROM trigger_deliveries d USING triggers t
                    WHERE d.app_token = $1 AND d.trigger = $2 AND d.state = 'sent' AND t.app_token = d.app_token AND t.name = d.trigger
                      AND NOT EXISTS (
                          SELECT 1 FROM events e
                          WHERE e.app_token = d.app_token AND e.internal_event_id = d.internal_event_id AND e.inserted_at = d.inserted_at
                            AND (e.stored_xid, e.inserted_at, e.internal_event_id) > (t.after_xid, t.after_at, t.after_event_id)
                      )
                    """,
                    [trigger.appToken, trigger.name]
                ).affectedRows
                if settled > 0 {
                    try TriggerStore.advance(trigger, to: nil, TriggerStore.Progress(delivered: settled), on: connection)
                }
            }
        }
    }

    // MARK: - Absence

    /// An absence trigger's matching events start their wait: each is decided once its
    /// window has closed in event time (``decideDue()``).
    func startWaiting(_ page: [TriggerEvent], next: StreamPosition?) async throws {
        guard !page.isEmpty || next != nil, let within = trigger.withinSeconds else { return }
        let trigger = self.trigger
        try await pool.withConnection { connection in
            try connection.transaction { () throws(PostgresError) in
                for item in page {
                    try connection.execute(
                        """
                        INSERT INTO trigger_deliveries (app_token, trigger, internal_event_id, inserted_at, person, state, due_at)
                        VALUES ($1, $2, $3::bigint, $4::timestamptz, $5, 'waiting', $4::timestamptz + make_interval(secs => $6::bigint))
                        ON CONFLICT DO NOTHING
                        """,
                        [trigger.appToken, trigger.name, String(item.internalEventId), item.insertedAtText, item.person, String(within)]
                    )
                }
                try TriggerStore.advance(trigger, to: next, TriggerStore.Progress(matched: page.count), on: connection)
            }
        }
    }

    /// The waits whose window has closed: those the person answered with the follow-up event
    /// in time are cancelled, the others fire.
    ///
    /// A window has closed once the app has stored events from an hour that begins after its
    /// end (the hourly rollup answers that at once, where `max(inserted_at)` would read the
    /// app's events every poll), or, for an app gone quiet, once the clock is a whole window
    /// past it: a follow-up may arrive that late and still count.
    func decideDue() async throws {
        guard let unless = trigger.unless, let within = trigger.withinSeconds else { return }
        let trigger = self.trigger
        let rows = try await pool.withConnection { connection -> [PostgresRow] in
            try connection.execute("SET TimeZone = 'UTC'")
            var parameters: [String?] = [trigger.appToken, trigger.name, String(within)]
            let followUp = TriggerDefinition.eventNameSQL(unless, on: "f.event_name", parameters: &parameters)
            // `--unless-same sku`: the follow-up answers only the event with its sku (an event without one, any follow-up).
            var same = ""
            if let attribute = trigger.unlessSame {
                parameters.append(attribute)
                let key = "$\(parameters.count)"
                same = """
                    AND (s.metadata ->> \(key) IS NULL OR f.metadata ->> \(key) = s.metadata ->> \(key))
                    """
            }
            return try connection.execute(
                """
                WITH watermark AS (
                    SELECT GREATEST((SELECT max(hour) FROM rollup_event_counts WHERE app_token = $1), now() - make_interval(secs => $3::bigint)) AS at
                ), due AS (
                    SELECT d.internal_event_id, d.inserted_at, d.person, d.due_at FROM trigger_deliveries d, watermark w
                    WHERE d.app_token = $1 AND d.trigger = $2 AND d.state = 'waiting' AND d.due_at < w.at
                    ORDER BY d.due_at LIMIT 200
                )
                SELECT d.internal_event_id, d.inserted_at::text AS inserted_at, d.person, EXISTS (
                    SELECT 1 FROM events f
                    WHERE f.app_token = $1 AND \(followUp) AND f.inserted_at >= d.inserted_at AND f.inserted_at <= d.due_at \(same)
                      AND (f.user_id = d.person
                           OR f.user_id IN (SELECT alias_id FROM identity_aliases WHERE app_token = $1 AND alias_kind = 'user' AND user_id = d.person)
                           OR (f.user_id IS NULL AND f.anonymous_id IN (
                                   SELECT alias_id FROM identity_aliases WHERE app_token = $1 AND alias_kind = 'anonymous' AND user_id = d.person))
                           OR (f.user_id IS NULL AND d.person = 'anonymous:' || f.anonymous_id))
                ) AS answered
                FROM due d
                LEFT JOIN events s ON s.app_token = $1 AND s.internal_event_id = d.internal_event_id AND s.inserted_at = d.inserted_at
                """,
                parameters
            ).namedRows
        }
        guard !rows.isEmpty else { return }
        var answered: [TriggerEventKey] = []
        var firing: [TriggerEvent] = []
        for row in rows {
            guard let id = row["internal_event_id", as: Int64.self], let at = row["inserted_at"] else { continue }
            let key = TriggerEventKey(internalEventId: id, insertedAt: at)
            if row["answered", as: Bool.self] == true {
                answered.append(key)
            } else if let item = try await read(key) {
                firing.append(item)
            } else {
                answered.append(key)  // the event is gone (erased): nothing to say
            }
        }
        let results = await send(firing, prior: "waiting")
        try await record(results, matched: 0, cancelled: answered.count, settled: answered + results.delivered, next: nil)
    }
}
