import CairnCore
import Synchronization

/// Named counters a service reports in `system.status`.
public final class Counters: Sendable {
    private let values = Mutex<[String: Int64]>([:])

    public init() {}

    public func add(_ name: String, _ amount: Int64 = 1) {
        values.withLock { $0[name, default: 0] += amount }
    }

    public func set(_ name: String, _ value: Int64) {
        values.withLock { $0[name] = value }
    }

    public func value(_ name: String) -> Int64 {
        values.withLock { $0[name] ?? 0 }
    }

    /// The counters as a JSON object with keys in sorted order.
    public var json: JSON {
        let snapshot = values.withLock { $0 }
        return .object(JSONObject(pairs: snapshot.sorted { $0.key < $1.key }.map { (key: $0.key, value: .int($0.value)) }))
    }
}
