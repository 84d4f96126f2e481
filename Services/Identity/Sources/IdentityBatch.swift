import CairnCore

/// The users and companies one batch of events names, folded into one upsert row per key.
///
/// Folding follows the rules storage applies across batches, so one batch and many give the
/// same state: first and last seen are the extremes of event time, traits merge key by key
/// with the later event winning, and a user's company is the one on their latest event that
/// names one (a user belongs to one company at a time, seed 003).
public struct IdentityBatch: Sendable {
    struct Entity {
        var firstSeen: Timestamp
        var lastSeen: Timestamp
        var traits = JSONObject()
        var traitsUpdatedAt: Timestamp?
        var companyId: String?
        var companyUpdatedAt: Timestamp?
    }

    private var users: [String: [String: Entity]] = [:]
    private var companies: [String: [String: Entity]] = [:]
    private var traitEvents: [(isUser: Bool, app: String, id: String, at: Timestamp, traits: JSONObject)] = []

    public init() {}

    /// Folds in one canonical event (as JSON); fields it cannot read are left to storage to judge.
    public mutating func add(_ event: JSON) {
        guard let app = event["app_token"]?.stringValue, let type = event["event_type"]?.stringValue,
            let time = event["inserted_at"]?.stringValue.flatMap(Timestamp.init(parsing:))
        else { return }
        let userId = event["user_id"]?.stringValue
        let companyId = event["company_id"]?.stringValue
        if let userId {
            users[app, default: [:]][userId, default: Entity(firstSeen: time, lastSeen: time)].see(time)
            if let companyId {
                users[app]![userId]!.assignCompany(companyId, at: time)
            }
            if type == EventType.identifyUser.rawValue, let traits = event["metadata"]?.objectValue {
                traitEvents.append((true, app, userId, time, traits))
            }
        }
        if let companyId {
            companies[app, default: [:]][companyId, default: Entity(firstSeen: time, lastSeen: time)].see(time)
            if type == EventType.identifyCompany.rawValue, let traits = event["metadata"]?.objectValue {
                traitEvents.append((false, app, companyId, time, traits))
            }
        }
    }

    /// The user upsert rows, for `storage.write`'s `users`.
    public mutating func userRows() -> JSON {
        applyTraits()
        return rows(users, idKey: "user_id", includeCompany: true)
    }

    /// The company upsert rows, for `storage.write`'s `companies`.
    public mutating func companyRows() -> JSON {
        applyTraits()
        return rows(companies, idKey: "company_id", includeCompany: false)
    }

    /// Applies identify traits in event-time order, so the later value of each key wins.
    private mutating func applyTraits() {
        guard !traitEvents.isEmpty else { return }
        for change in traitEvents.sorted(by: { $0.at < $1.at }) {
            if change.isUser {
                users[change.app]?[change.id]?.merge(change.traits, at: change.at)
            } else {
                companies[change.app]?[change.id]?.merge(change.traits, at: change.at)
            }
        }
        traitEvents.removeAll()
    }

    private func rows(_ entities: [String: [String: Entity]], idKey: String, includeCompany: Bool) -> JSON {
        var rows: [JSON] = []
        for (app, byId) in entities.sorted(by: { $0.key < $1.key }) {
            for (id, entity) in byId.sorted(by: { $0.key < $1.key }) {
                var row = JSONObject()
                row.append("app_token", .string(app))
                row.append(idKey, .string(id))
                row.append("first_seen", .string(entity.firstSeen.description))
                row.append("last_seen", .string(entity.lastSeen.description))
                if let at = entity.traitsUpdatedAt {
                    row["traits"] = .object(entity.traits)
                    row["traits_updated_at"] = .string(at.description)
                }
                if includeCompany, let companyId = entity.companyId, let at = entity.companyUpdatedAt {
                    row["company_id"] = .string(companyId)
                    row["company_updated_at"] = .string(at.description)
                }
                rows.append(.object(row))
            }
        }
        return .array(rows)
    }
}

extension IdentityBatch.Entity {
    mutating func see(_ time: Timestamp) {
        firstSeen = min(firstSeen, time)
        lastSeen = max(lastSeen, time)
    }

    mutating func assignCompany(_ id: String, at time: Timestamp) {
        if let current = companyUpdatedAt, current > time { return }
        companyId = id
        companyUpdatedAt = time
    }

    mutating func merge(_ newTraits: JSONObject, at time: Timestamp) {
        for (key, value) in newTraits { traits[key] = value }
        traitsUpdatedAt = max(traitsUpdatedAt ?? time, time)
    }
}
