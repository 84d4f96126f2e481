import CairnCore
import CairnWire

/// The sessions one batch changes: for each person its events touch, the history with the
/// batch's events added and the sessions recomputed from it.
public struct SessionPlan: Sendable {
    /// `storage.write`'s `sessions`: `[{app_token, person, sessions: [[number, start, end, events]]}]`.
    public var rows: JSON
    private var updates: [String: Update]

    /// One app's share of a plan.
    public struct Update: Sendable {
        public var rows: [JSON]
        public var histories: [String: SessionHistory]
        public var forget: [String]
    }

    /// Fetches what the database knows (``IdentityContext`` in storage) and computes the plan.
    static func make(events: [JSON], aliases: JSON, cache: SessionCache, storage: ReconnectingClient) async throws -> SessionPlan {
        var byApp: [String: [JSON]] = [:]
        for event in events {
            if let app = event["app_token"]?.stringValue { byApp[app, default: []].append(event) }
        }
        var rows: [JSON] = []
        var updates: [String: Update] = [:]
        for (app, appEvents) in byApp.sorted(by: { $0.key < $1.key }) {
            let ids = Ids(appEvents)
            let newAliases = (aliases.arrayValue ?? []).filter { $0["app_token"]?.stringValue == app }
            // A user who absorbs a newly identified visitor is read again whole, visitor's events included.
            let absorbing = Set(newAliases.compactMap { $0["user_id"]?.stringValue })
            let candidates = ids.users.filter { !absorbing.contains($0) } + ids.anonymous.map { "anonymous:" + $0 }
            let context = try await storage.call("identity.context", [
                "app_token": .string(app), "user_ids": .array(ids.users.map(JSON.string)),
                "anonymous_ids": .array(ids.anonymous.map(JSON.string)), "new_aliases": .array(newAliases),
                "cached": .array(cache.cachedPersons(app: app, among: candidates).map(JSON.string)),
            ])
            let update = compute(app: app, events: appEvents, newAliases: newAliases, context: context, cache: cache)
            rows += update.rows
            updates[app] = update
        }
        return SessionPlan(rows: .array(rows), updates: updates)
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
    public static func compute(app: String, events: [JSON], newAliases: [JSON], context: JSON, cache: SessionCache) -> Update {
        let sessionizer = Sessionizer(inactivity: .seconds(context["inactivity_s"]?.intValue ?? 1800),
                                      maximumLength: .seconds(context["max_length_s"]?.intValue ?? 86400))
        let aliasMap = context["aliases"]?.objectValue ?? JSONObject()
        let userMap = context["users"]?.objectValue ?? JSONObject()
        let histories = context["histories"]?.objectValue ?? JSONObject()
        let absorbing = Set(newAliases.compactMap { $0["user_id"]?.stringValue })

        var points: [String: [Sessionizer.Point]] = [:]
        var anonymousIds = Set<String>()
        for event in events {
            guard let time = event["inserted_at"]?.stringValue.flatMap(Timestamp.init(parsing:)) else { continue }
            let person: String
            if let user = event["user_id"]?.stringValue {
                person = userMap[user]?.stringValue ?? user
            } else if let anonymous = event["anonymous_id"]?.stringValue {
                anonymousIds.insert(anonymous)
                person = aliasMap[anonymous]?.stringValue ?? "anonymous:" + anonymous
            } else {
                continue
            }
            points[person, default: []].append(Sessionizer.Point(time: time, isSessionStart: event["event_type"]?.stringValue == EventType.sessionStart.rawValue))
        }
        // A visitor identified now stops being a person of their own, whether or not their
        // anonymous events are in this batch.
        let forget = Set(anonymousIds.filter { aliasMap[$0] != nil } + newAliases.compactMap { $0["alias_id"]?.stringValue })
            .sorted().map { "anonymous:" + $0 }
        var rows: [JSON] = []
        var updated: [String: SessionHistory] = [:]
        for (person, new) in points.sorted(by: { $0.key < $1.key }) {
            var history = (absorbing.contains(person) ? nil : cache.history(app: app, person: person))
                ?? SessionHistory(points: (histories[person]?.arrayValue ?? []).compactMap(\.intValue).map(Sessionizer.Point.init(packed:)))
            history.insert(new)
            updated[person] = history
            rows.append(["app_token": .string(app), "person": .string(person), "sessions": .array(sessionizer.sessions(of: history.points).map(\.json))])
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
