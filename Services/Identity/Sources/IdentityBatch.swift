import CairnCore

/// The users, companies, memberships and aliases one batch of events names, folded into one
/// upsert row per key.
///
/// Folding follows the rules storage applies across batches, so one batch and many, in any
/// order, give the same state:
/// - first and last seen are the extremes of event time;
/// - traits merge key by key: the later event time wins, and at equal times the greater
///   value (as JSON text), so arrival order never matters;
/// - a user's company is the one on their latest event that names one (Userpilot's event schema), and every
///   (user, company) pair keeps its first and last sighting for "company as of that time";
/// - an identify carrying both an anonymous id and a user id aliases the anonymous id to the
///   user; the earliest identification of an anonymous id wins. Ids on PostHog's illegal list
///   never alias.
public struct IdentityBatch: Sendable {
    struct Trait: Sendable {
        var value: JSON
        var time: Timestamp
        var text: String
    }

    struct Entity: Sendable {
        var firstSeen: Timestamp
        var lastSeen: Timestamp
        var traits: [ExactString: Trait] = [:]
        var company: (id: String, time: Timestamp)?
    }

    private var users: [Key: Entity] = [:]
    private var companies: [Key: Entity] = [:]
    private var memberships: [MembershipKey: (first: Timestamp, last: Timestamp)] = [:]
    private var aliases: [Key: (user: String, time: Timestamp)] = [:]
    /// Aliases refused because an id is on the illegal list.
    public private(set) var refusedAliases = 0

    /// Ids compare by their bytes, as PostgreSQL compares them: `anne\u{301}` and `ann\u{e9}`
    /// are two users, though Swift's `==` calls them equal.
    struct Key: Hashable, Comparable, Sendable {
        var app: String
        var id: String
        static func == (lhs: Key, rhs: Key) -> Bool { lhs.app.isExactly(rhs.app) && lhs.id.isExactly(rhs.id) }
        func hash(into hasher: inout Hasher) {
            hasher.combineExactly(app)
            hasher.combineExactly(id)
        }
        static func < (lhs: Key, rhs: Key) -> Bool {
            lhs.app.isExactly(rhs.app) ? lhs.id.precedesExactly(rhs.id) : lhs.app.precedesExactly(rhs.app)
        }
    }

    struct MembershipKey: Hashable, Comparable, Sendable {
        var app: String
        var user: String
        var company: String
        static func == (lhs: MembershipKey, rhs: MembershipKey) -> Bool {
            lhs.app.isExactly(rhs.app) && lhs.user.isExactly(rhs.user) && lhs.company.isExactly(rhs.company)
        }
        func hash(into hasher: inout Hasher) {
            hasher.combineExactly(app)
            hasher.combineExactly(user)
            hasher.combineExactly(company)
        }
        static func < (lhs: MembershipKey, rhs: MembershipKey) -> Bool {
            if !lhs.app.isExactly(rhs.app) { return lhs.app.precedesExactly(rhs.app) }
            if !lhs.user.isExactly(rhs.user) { return lhs.user.precedesExactly(rhs.user) }
            return lhs.company.precedesExactly(rhs.company)
        }
    }

    public init() {}

    /// Folds in one canonical event (as JSON); fields it cannot read are left to storage to judge.
    public mutating func add(_ event: JSON) {
        guard let app = event["app_token"]?.stringValue, let type = event["event_type"]?.stringValue,
            let time = event["inserted_at"]?.stringValue.flatMap(Timestamp.init(parsing:))
        else { return }
        let userId = event["user_id"]?.stringValue
        let companyId = event["company_id"]?.stringValue
        let anonymousId = event["anonymous_id"]?.stringValue
        if let userId {
            let key = Key(app: app, id: userId)
            users[key, default: Entity(firstSeen: time, lastSeen: time)].see(time)
            if let companyId {
                users[key]!.assignCompany(companyId, at: time)
                let membership = MembershipKey(app: app, user: userId, company: companyId)
                let seen = memberships[membership] ?? (time, time)
                memberships[membership] = (min(seen.first, time), max(seen.last, time))
            }
            if type == EventType.identifyUser.rawValue, let traits = event["metadata"]?.objectValue {
                users[key]!.merge(traits, at: time)
            }
            // Identifies alias; so do Userlike events once client_email identifies the contact.
            let identifies = type == EventType.identifyUser.rawValue || event["origin"]?.stringValue == InputFormat.userlike.rawValue
            if identifies, let anonymousId, anonymousId != userId {
                if IllegalIds.contains(anonymousId) || IllegalIds.contains(userId) {
                    refusedAliases += 1
                } else {
                    let aliasKey = Key(app: app, id: anonymousId)
                    if let existing = aliases[aliasKey], (existing.time, existing.user) <= (time, userId) {
                        // The earliest identification of an anonymous id wins.
                    } else {
                        aliases[aliasKey] = (userId, time)
                    }
                }
            }
        }
        if let companyId {
            let key = Key(app: app, id: companyId)
            companies[key, default: Entity(firstSeen: time, lastSeen: time)].see(time)
            if type == EventType.identifyCompany.rawValue, let traits = event["metadata"]?.objectValue {
                companies[key]!.merge(traits, at: time)
            }
        }
    }

    /// The user upsert rows, to upsert as `users`.
    public func userRows() -> JSON { rows(users, idKey: "user_id", includeCompany: true) }

    /// The company upsert rows, to upsert as `companies`.
    public func companyRows() -> JSON { rows(companies, idKey: "company_id", includeCompany: false) }

    /// The (user, company) sightings, to upsert as `memberships`.
    public func membershipRows() -> JSON {
        .array(
            memberships.keys.sorted().map { key in
                let seen = memberships[key]!
                return [
                    "app_token": .string(key.app), "user_id": .string(key.user), "company_id": .string(key.company),
                    "first_seen": .string(seen.first.description), "last_seen": .string(seen.last.description),
                ]
            }
        )
    }

    /// The anonymous-id aliases, to upsert as `aliases`.
    public func aliasRows() -> JSON {
        .array(
            aliases.keys.sorted().map { key in
                let alias = aliases[key]!
                return [
                    "app_token": .string(key.app), "alias_id": .string(key.id), "user_id": .string(alias.user),
                    "aliased_at": .string(alias.time.description),
                ]
            }
        )
    }

    private func rows(_ entities: [Key: Entity], idKey: String, includeCompany: Bool) -> JSON {
        // Sorted, so concurrent upserts lock rows in one order.
        .array(
            entities.keys.sorted().map { key in
                let entity = entities[key]!
                var row = JSONObject()
                row.append("app_token", .string(key.app))
                row.append(idKey, .string(key.id))
                row.append("first_seen", .string(entity.firstSeen.description))
                row.append("last_seen", .string(entity.lastSeen.description))
                var traits = JSONObject()
                var times = JSONObject()
                for name in entity.traits.keys.sorted(by: { $0.text.precedesExactly($1.text) }) {
                    traits.append(name.text, entity.traits[name]!.value)
                    times.append(name.text, .string(entity.traits[name]!.time.description))
                }
                row.append("traits", .object(traits))
                row.append("trait_times", .object(times))
                if let latest = entity.traits.values.map(\.time).max() { row.append("traits_updated_at", .string(latest.description)) }
                if includeCompany, let company = entity.company {
                    row.append("company_id", .string(company.id))
                    row.append("company_updated_at", .string(company.time.description))
                }
                return .object(row)
            }
        )
    }
}

extension IdentityBatch.Entity {
    mutating func see(_ time: Timestamp) {
        firstSeen = min(firstSeen, time)
        lastSeen = max(lastSeen, time)
    }

    /// The latest sighting wins; at equal times the greater company id, for determinism.
    mutating func assignCompany(_ id: String, at time: Timestamp) {
        if let current = company, (current.time, current.id) >= (time, id) { return }
        company = (id, time)
    }

    mutating func merge(_ newTraits: JSONObject, at time: Timestamp) {
        for (key, value) in newTraits {
            let text = value.serializedString()
            if let current = traits[ExactString(key)], (current.time, current.text) >= (time, text) { continue }
            traits[ExactString(key)] = IdentityBatch.Trait(value: value, time: time, text: text)
        }
    }
}

/// Ids that must never be aliased (PostHog's list): placeholders that many visitors share.
public enum IllegalIds {
    static let caseInsensitive: Set<String> = [
        "anonymous", "guest", "distinctid", "distinct_id", "id", "not_authenticated", "email", "undefined", "true", "false",
        "user", "user_id", "userid", "anonymous_id", "anonymousid",
    ]
    static let caseSensitive: Set<String> = ["[object Object]", "NaN", "None", "none", "null", "0", "-1"]

    public static func contains(_ id: String) -> Bool {
        // Ordinary ids have no surrounding space and are longer than any listed word: decide fast.
        if id.utf8.count > 20, let first = id.utf8.first, first > 0x20, let last = id.utf8.last, last > 0x20 { return false }
        let trimmed = String(id.drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
        return trimmed.isEmpty || caseSensitive.contains(trimmed) || caseInsensitive.contains(trimmed.lowercased())
    }
}
