import CairnCore
import Synchronization

/// The people erased with `cairn users delete`: their later events are dropped at ingest,
/// and counted, before they reach the spool.
public final class Suppressions: Sendable {
    private let keys: Mutex<Set<String>>

    public init(_ keys: Set<String> = []) {
        self.keys = Mutex(keys)
    }

    static func key(app: String, kind: String, id: String) -> String { app + "\u{1F}" + kind + "\u{1F}" + id }

    public func add(app: String, userIds: [String], anonymousIds: [String]) {
        keys.withLock { set in
            for id in userIds { set.insert(Self.key(app: app, kind: "user", id: id)) }
            for id in anonymousIds { set.insert(Self.key(app: app, kind: "anonymous", id: id)) }
        }
    }

    /// Whether `anonymousId` of `app` belongs to an erased person: an event of another user
    /// that carries it is kept, without it, so the erased id is never stored again.
    public func isErased(anonymousId: String, app: String) -> Bool {
        keys.withLock { set in !set.isEmpty && set.contains(Self.key(app: app, kind: "anonymous", id: anonymousId)) }
    }

    /// The suppression an event falls under, as its key, or nil.
    public func match(_ event: CanonicalEvent) -> String? {
        keys.withLock { set in
            guard !set.isEmpty else { return nil }
            if let user = event.userId {
                let key = Self.key(app: event.appToken, kind: "user", id: user)
                return set.contains(key) ? key : nil
            }
            if let anonymous = event.anonymousId {
                let key = Self.key(app: event.appToken, kind: "anonymous", id: anonymous)
                return set.contains(key) ? key : nil
            }
            return nil
        }
    }
}
