import CairnCore
import Synchronization

/// The event histories identity holds, per person, so that sessions are recomputed from the
/// full history without reading it from the database for every batch.
///
/// Bounded: past ``capacity`` persons, half are forgotten at random; a forgotten history is
/// simply read again from the database when that person is next seen.
public final class SessionCache: Sendable {
    private let histories = Mutex<[String: SessionHistory]>([:])
    public let capacity: Int

    public init(capacity: Int = 1_000_000) {
        self.capacity = capacity
    }

    static func key(app: String, person: String) -> String { app + "\u{1F}" + person }

    /// How many persons' histories are held.
    public var count: Int { histories.withLock { $0.count } }

    public func history(app: String, person: String) -> SessionHistory? {
        histories.withLock { $0[Self.key(app: app, person: person)] }
    }

    /// Stores histories that storage has committed, and forgets persons that no longer exist
    /// on their own (anonymous ids that joined a user).
    public func commit(app: String, _ updated: [String: SessionHistory], forget: [String]) {
        histories.withLock { cache in
            for person in forget { cache[Self.key(app: app, person: person)] = nil }
            for (person, history) in updated { cache[Self.key(app: app, person: person)] = history }
            if cache.count > capacity {
                for key in cache.keys.shuffled().prefix(cache.count / 2) { cache[key] = nil }
            }
        }
    }

    public func cachedPersons(app: String, among persons: [String]) -> [String] {
        histories.withLock { cache in persons.filter { cache[Self.key(app: app, person: $0)] != nil } }
    }
}
