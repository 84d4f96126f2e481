import CairnCore
import CairnMethods
import CairnWire
import NIOCore
import NIOPosix
import Synchronization

/// The settings of the apps ingest serves, fetched from storage's registry and cached, in
/// memory and in the spool's database, so that ingest keeps acknowledging for known apps
/// while PostgreSQL or storage is away.
public final class AppDirectory: Sendable {
    /// One app's settings as ingest needs them.
    public struct App: Sendable {
        public var token: String
        public var name: String
        public var personalData: PersonalDataMode
        public var attributes: AttributeRegistry
        public var identifyUserlikeByEmail: Bool
        public var admission: AdmissionPolicy

        init?(_ value: JSON) {
            guard let token = value["token"]?.stringValue, let name = value["name"]?.stringValue else { return nil }
            self.token = token
            self.name = name
            personalData = value["personal_data"]?.stringValue.flatMap(PersonalDataMode.init(rawValue:)) ?? .hash
            var types: [String: AttributeType] = [:]
            for (attribute, type) in value["attributes"]?.objectValue ?? JSONObject() {
                if let type = type.stringValue.flatMap(AttributeType.init(rawValue:)) { types[attribute] = type }
            }
            attributes = AttributeRegistry(types: types)
            identifyUserlikeByEmail = value["identify_userlike_by_email"]?.boolValue ?? false
            admission = AdmissionPolicy(
                earliest: value["event_time_earliest"]?.stringValue.flatMap(Timestamp.init(parsing:)) ?? AdmissionPolicy.defaultEarliest,
                futureAllowanceSeconds: value["event_time_future_s"]?.intValue ?? AdmissionPolicy.defaultFutureAllowanceSeconds
            )
        }

        /// What normalising this app's records needs.
        public func context(receivedAt: Timestamp) -> IngestContext {
            IngestContext(
                appToken: token,
                receivedAt: receivedAt,
                personalData: personalData,
                attributes: attributes,
                identifyUserlikeByEmail: identifyUserlikeByEmail,
                admission: admission
            )
        }
    }

    /// How long a fetched app is used before asking storage again, so that a newly
    /// registered attribute or setting takes effect within this time. Defaults to 2 seconds.
    public let freshness: Duration
    private let storage: ReconnectingClient
    private let spool: Spool
    private let cache = Mutex<[String: (app: App, fetched: ContinuousClock.Instant)]>([:])
    /// When storage last failed to answer: for a short while after, known apps are served from
    /// the cache at once instead of each request waiting out another deadline.
    private let storageFailedAt = Mutex<ContinuousClock.Instant?>(nil)
    /// How long after a failed lookup the cache is trusted without asking storage.
    public static let failureHold: Duration = .seconds(5)

    public init(storage: ReconnectingClient, spool: Spool, freshness: Duration = .seconds(2)) {
        self.storage = storage
        self.spool = spool
        self.freshness = freshness
    }

    /// The app named `key` (its name or token).
    /// - Throws: ``RPCError`` `unknown_app` when the registry has no such app, or
    ///   `storage_unavailable` when it cannot be asked and nothing is cached.
    public func resolve(_ key: String) async throws(RPCError) -> App {
        try await lookup(cacheKey: key, AppsGet.self, AppParams(app: key), unknownCode: .unknownApp)
    }

    /// Forgets every cached answer about `key`'s app and fetches it afresh: after a setting
    /// or an attribute type changed, so the next event sees it.
    public func refresh(_ key: String) async throws(RPCError) -> App {
        cache.withLock { cache in
            let token = cache[key]?.app.token
            cache = cache.filter { $0.key != key && (token == nil || $0.value.app.token != token) }
        }
        storageFailedAt.withLock { $0 = nil }
        let app = try await resolve(key)
        // Keys cached under the write key's hash name the same app: drop those too, here and in
        // the spool's copy, so that a rotated key is refused at once, storage up or down.
        cache.withLock { cache in cache = cache.filter { !$0.key.hasPrefix("key:") || $0.value.app.token != app.token } }
        let token = app.token
        try? await NIOThreadPool.singleton.runIfActive { [spool] in try spool.forgetWriteKeys(appToken: token) }
        return app
    }

    /// The app whose write key is `writeKey`. Only its SHA-256 is sent to storage or cached.
    /// - Throws: ``RPCError`` `unknown_write_key`, or `storage_unavailable` as ``resolve(_:)``.
    public func resolve(writeKey: String) async throws(RPCError) -> App {
        let hash = WriteKey.hash(writeKey)
        return try await lookup(cacheKey: "key:" + hash, AppsAuthenticate.self, .init(write_key_hash: hash), unknownCode: .unknownWriteKey)
    }

    /// One lookup, fresh from storage when the cached answer is older than ``freshness``;
    /// the last known answer when storage cannot be asked.
    private func lookup<Method: RPCMethod>(
        cacheKey key: String,
        _ method: Method.Type,
        _ params: Method.Params,
        unknownCode: ErrorCode
    ) async throws(RPCError) -> App
    where Method.Result == JSON {
        let cached = cache.withLock { $0[key] }
        if let cached, ContinuousClock.now - cached.fetched < freshness { return cached.app }
        if let cached, let failed = storageFailedAt.withLock({ $0 }), ContinuousClock.now - failed < Self.failureHold { return cached.app }
        do {
            // Every wait on storage has a deadline (the method's, 1 s): a hung storage must not hang ingest.
            let value = try await storage.call(method, params)
            storageFailedAt.withLock { $0 = nil }
            guard let app = App(value) else { throw RPCError(IngestError(.storageUnavailable, "storage sent an app without a token")) }
            let now = ContinuousClock.now
            cache.withLock {
                $0[app.token] = (app, now)
                $0[app.name] = (app, now)
                $0[key] = (app, now)
            }
            let bytes = value.serialized()
            try? await NIOThreadPool.singleton.runIfActive { [spool] in
                try spool.cacheApp(keys: Array(Set([key, app.token, app.name])), config: bytes)
            }
            return app
        } catch let error as RPCError where error.applicationCode == unknownCode {
            cache.withLock { $0[key] = nil }
            try? await NIOThreadPool.singleton.runIfActive { [spool] in try spool.forgetApp(key) }
            throw error
        } catch {
            // Storage or the database is away: last known settings keep ingest acknowledging.
            storageFailedAt.withLock { $0 = .now }
            if let cached { return cached.app }
            if let bytes = try? await NIOThreadPool.singleton.runIfActive({ [spool] in try spool.cachedApp(key) }),
                let value = try? JSONParser.parse(bytes), let app = App(value)
            {
                return app
            }
            throw RPCError(
                IngestError(
                    .storageUnavailable,
                    "cannot look up app '\(key.hasPrefix("key:") ? "by write key" : key)': \(error); nothing was accepted, retry later"
                )
            )
        }
    }
}
