import CairnCore
import CairnWire

/// The sessions one batch changes: for each person its events touch, the history with the
/// batch's events added and the sessions recomputed from it.
struct SessionPlan: Sendable {
    /// `storage.write`'s `sessions`: `[{app_token, person, sessions: [[number, start, end, events]]}]`.
    var rows: JSON
    private var updates: [String: (histories: [String: SessionHistory], forget: [String])]

    static func make(events: [JSON], aliases: JSON, cache: SessionCache, storage: ReconnectingClient) async throws -> SessionPlan {
        var byApp: [String: [JSON]] = [:]
        for event in events {
            if let app = event["app_token"]?.stringValue { byApp[app, default: []].append(event) }
        }
        var rows: [JSON] = []
        var updates: [String: (histories: [String: SessionHistory], forget: [String])] = [:]
        for (app, appEvents) in byApp.sorted(by: { $0.key < $1.key }) {
            let userIds = Array(Set(appEvents.compactMap { $0["user_id"]?.stringValue })).sorted()
            let anonymousIds = Array(Set(appEvents.compactMap { $0["user_id"] == nil ? $0["anonymous_id"]?.stringValue : nil })).sorted()
            let newAliases = (aliases.arrayValue ?? []).filter { $0["app_token"]?.stringValue == app }
            // A user who absorbs a newly identified visitor is read again whole, visitor's events included.
            let absorbing = Set(newAliases.compactMap { $0["user_id"]?.stringValue })
            let candidates = userIds.filter { !absorbing.contains($0) } + anonymousIds.map { "anonymous:" + $0 }
            let context = try await storage.call("identity.context", [
                "app_token": .string(app), "user_ids": .array(userIds.map(JSON.string)),
                "anonymous_ids": .array(anonymousIds.map(JSON.string)), "new_aliases": .array(newAliases),
                "cached": .array(cache.cachedPersons(app: app, among: candidates).map(JSON.string)),
            ])
            let sessionizer = Sessionizer(inactivity: .seconds(context["inactivity_s"]?.intValue ?? 1800),
                                          maximumLength: .seconds(context["max_length_s"]?.intValue ?? 86400))
            let aliasMap = context["aliases"]?.objectValue ?? JSONObject()
            let userMap = context["users"]?.objectValue ?? JSONObject()

            var points: [String: [Sessionizer.Point]] = [:]
            for event in appEvents {
                guard let time = event["inserted_at"]?.stringValue.flatMap(Timestamp.init(parsing:)) else { continue }
                let person: String
                if let user = event["user_id"]?.stringValue {
                    person = userMap[user]?.stringValue ?? user
                } else if let anonymous = event["anonymous_id"]?.stringValue {
                    person = aliasMap[anonymous]?.stringValue ?? "anonymous:" + anonymous
                } else {
                    continue
                }
                points[person, default: []].append(Sessionizer.Point(time: time, isSessionStart: event["event_type"]?.stringValue == EventType.sessionStart.rawValue))
            }
            // A visitor identified now stops being a person of their own, whether or not their
            // anonymous events are in this batch.
            let forget = Array(Set(anonymousIds.filter { aliasMap[$0] != nil } + newAliases.compactMap { $0["alias_id"]?.stringValue }))
                .sorted().map { "anonymous:" + $0 }
            var histories: [String: SessionHistory] = [:]
            for (person, new) in points.sorted(by: { $0.key < $1.key }) {
                var history = (absorbing.contains(person) ? nil : cache.history(app: app, person: person))
                    ?? SessionHistory(points: (context["histories"]?[person]?.arrayValue ?? []).compactMap(\.intValue).map(Sessionizer.Point.init(packed:)))
                history.insert(new)
                histories[person] = history
                let sessions = sessionizer.sessions(of: history.points).map { session -> JSON in
                    [.int(Int64(session.number)), .string(session.start.description), .string(session.end.description), .int(Int64(session.events))]
                }
                rows.append(["app_token": .string(app), "person": .string(person), "sessions": .array(sessions)])
            }
            for person in forget where histories[person] == nil {
                rows.append(["app_token": .string(app), "person": .string(person), "sessions": .array([])])
            }
            updates[app] = (histories, forget)
        }
        return SessionPlan(rows: .array(rows), updates: updates)
    }

    func commit(to cache: SessionCache) {
        for (app, update) in updates { cache.commit(app: app, update.histories, forget: update.forget) }
    }
}
