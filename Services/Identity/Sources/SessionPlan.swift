import CairnCore
import CairnPostgres

/// The sessions one span changes: for each person its events touch, the history with the
/// span's events added and the sessions recomputed from it.
public struct SessionPlan: Sendable {
    /// The session rows to write: `[{app_token, person, from?, sessions: [[number, start, end, events]]}]`.
    /// Without `from`, the person's whole list is replaced; with it, the sessions numbered
    /// `from` and later.
    public var rows: JSON
    private var updates: [String: Update]

    /// One app's share of a plan.
    public struct Update: Sendable {
        public var rows: [JSON]
        public var histories: [String: SessionHistory]
        public var forget: [String]
    }

    /// Reads what the database knows (``IdentityContext``) and computes the plan for one app's events.
    static func make(
        app: String,
        events: [JSON],
        aliases: JSON,
        through: Int64,
        cache: SessionCache,
        on connection: PostgresConnection
    ) throws
        -> SessionPlan
    {
        let ids = Ids(events)
        let candidates = ids.users + ids.anonymous.map { "anonymous:" + $0 }
        // The database says which identifications are new, and returns whole the histories of
        // the users who absorb a visitor, cached or not (``IdentityContext``).
        let context = try IdentityContext.load(
            .init(
                app_token: app,
                user_ids: ids.users,
                anonymous_ids: ids.anonymous,
                cached: cache.cachedPersons(app: app, among: candidates),
                new_aliases: aliases.arrayValue ?? [],
                through: through
            ),
            on: connection
        )
        let update = compute(app: app, events: events, context: context, cache: cache)
        return SessionPlan(rows: .array(update.rows), updates: [app: update])
    }

    /// The user ids and the anonymous ids (of events without a user id) of one app's events.
    struct Ids {
        var users: [String]
        var anonymous: [String]

        init(_ events: [JSON]) {
            var users = Set<String>()
            var anonymous = Set<String>()
            for event in events {
                if let user = event["user_id"]?.stringValue {
                    users.insert(user)
                } else if let id = event["anonymous_id"]?.stringValue {
                    anonymous.insert(id)
                }
            }
            self.users = users.sorted()
            self.anonymous = anonymous.sorted()
        }
    }

    /// The pure part: given the database's context for one app's events, each touched
    /// person's new history and sessions. This is what `make bench` times as the resolver.
    public static func compute(app: String, events: [JSON], context: JSON, cache: SessionCache) -> Update {
        let sessionizer = Sessionizer(
            inactivity: .seconds(context["inactivity_s"]?.intValue ?? 1800),
            maximumLength: .seconds(context["max_length_s"]?.intValue ?? 86400)
        )
        // Indexed once: a JSON object looks keys up one by one, and a span names tens of thousands.
        func index(_ key: String) -> [ExactString: JSON] {
            var map: [ExactString: JSON] = [:]
            for (name, value) in context[key]?.objectValue ?? JSONObject() { map[ExactString(name)] = value }
            return map
        }
        let aliasMap = index("aliases")
        let userMap = index("users")
        let histories = index("histories")
        let absorbing = Set((context["absorbing"]?.arrayValue ?? []).compactMap(\.stringValue))
        let novelAliases = (context["novel_aliases"]?.arrayValue ?? []).compactMap(\.stringValue)

        var points: [String: [Sessionizer.Point]] = [:]
        var anonymousIds = Set<String>()
        for event in events {
            guard let time = event["inserted_at"]?.stringValue.flatMap(Timestamp.init(parsing:)) else { continue }
            let person: String
            if let user = event["user_id"]?.stringValue {
                person = userMap[ExactString(user)]?.stringValue ?? user
            } else if let anonymous = event["anonymous_id"]?.stringValue {
                anonymousIds.insert(anonymous)
                person = aliasMap[ExactString(anonymous)]?.stringValue ?? "anonymous:" + anonymous
            } else {
                continue
            }
            points[person, default: []].append(
                Sessionizer.Point(time: time, isSessionStart: event["event_type"]?.stringValue == EventType.sessionStart.rawValue)
            )
        }
        // A visitor identified now stops being a person of their own, whether or not their
        // anonymous events are in this batch.
        let forget = Set(anonymousIds.filter { aliasMap[ExactString($0)] != nil } + novelAliases)
            .sorted().map { "anonymous:" + $0 }
        var rows: [JSON] = []
        var updated: [String: SessionHistory] = [:]
        for (person, new) in points.sorted(by: { $0.key < $1.key }) {
            let cached = absorbing.contains(person) ? nil : cache.history(app: app, person: person)
            var history =
                cached
                ?? SessionHistory(
                    points: (histories[ExactString(person)]?.arrayValue ?? []).compactMap(\.intValue).map(Sessionizer.Point.init(packed:))
                )
            history.insert(new)
            updated[person] = history
            let sessions = sessionizer.sessions(of: history.points)
            guard let cached else {
                // Read from the database (or absorbing a visitor): what is stored may differ
                // from what the history implies, so the whole list is replaced.
                rows.append(["app_token": .string(app), "person": .string(person), "sessions": .array(sessions.map(\.json))])
                continue
            }
            // A cached history is exactly what storage committed, and so are the sessions it
            // implies: only those from the first that changed are sent. New events mostly
            // extend the last session or start one, so that is one or two rows, not the list.
            let before = sessionizer.sessions(of: cached.points)
            var first = 0
            while first < sessions.count, first < before.count, sessions[first] == before[first] { first += 1 }
            if first == sessions.count, first == before.count { continue }
            rows.append([
                "app_token": .string(app), "person": .string(person), "from": .int(Int64(first + 1)),
                "sessions": .array(sessions[first...].map(\.json)),
            ])
        }
        for person in forget where updated[person] == nil {
            rows.append(["app_token": .string(app), "person": .string(person), "sessions": .array([])])
        }
        return Update(rows: rows, histories: updated, forget: forget)
    }

    func commit(to cache: SessionCache) {
        for (app, update) in updates { cache.commit(app: app, update.histories, forget: update.forget) }
    }
}
