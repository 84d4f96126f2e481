import CairnCore
import CairnWire

// Storage: the write path, the app registry, and identity's context reads.

/// Commits a batch: events with their identity rows, in one transaction.
public enum StorageWrite: RPCMethod {
    public static let name = "storage.write"
    public static let service = ServiceName.storage
    public static let summary = "Commit canonical events to the log (the events table), in one transaction; what derives from them follows."
    /// A big batch may wait for its partitions; ingest's own deadline is longer.
    public static let deadline: Duration = .seconds(100)

    public struct Params: Codable, Sendable {
        public var events: [JSON]

        public init(events: [JSON]) {
            self.events = events
        }
    }

    public struct Result: Codable, Sendable {
        public var inserted: Int
        public var duplicates: Int
        public var suppressed: Int
        /// Events that did not read as canonical events: `index`, `code`, `field`, `message`.
        public var rejected: [JSON]

        public init(inserted: Int, duplicates: Int, suppressed: Int, rejected: [JSON]) {
            self.inserted = inserted
            self.duplicates = duplicates
            self.suppressed = suppressed
            self.rejected = rejected
        }
    }
}

/// Parameters naming one app, by name or token.
public struct AppParams: Codable, Sendable {
    public var app: String
    public init(app: String) { self.app = app }
}

public enum AppsCreate: RPCMethod {
    public static let name = "apps.create"
    public static let service = ServiceName.storage
    public static let summary = "Register an app; the answer holds its write key and read key, shown this once."

    public struct Params: Codable, Sendable {
        public var name: String
        public var token: String?
        /// `keep`, `hash` (the default) or `drop`.
        public var personal_data: String?

        public init(name: String, token: String? = nil, personal_data: String? = nil) {
            self.name = name
            self.token = token
            self.personal_data = personal_data
        }
    }

    public typealias Result = JSON
}

public enum AppsList: RPCMethod {
    public static let name = "apps.list"
    public static let service = ServiceName.storage
    public static let summary = "Every app, as a table."
    public typealias Params = NoParams
    public typealias Result = JSON
}

public enum AppsGet: RPCMethod {
    public static let name = "apps.get"
    public static let service = ServiceName.storage
    public static let summary = "One app's settings and attribute types, by name or token."
    /// Ingest looks apps up on its request path and must not wait long.
    public static let deadline: Duration = .seconds(1)
    public typealias Params = AppParams
    public typealias Result = JSON
}

public enum AppsAuthenticate: RPCMethod {
    public static let name = "apps.authenticate"
    public static let service = ServiceName.storage
    public static let summary = "The app whose write key has this SHA-256 (hex); the key itself never leaves ingest."
    public static let deadline: Duration = .seconds(1)

    public struct Params: Codable, Sendable {
        public var write_key_hash: String
        public init(write_key_hash: String) { self.write_key_hash = write_key_hash }
    }

    public typealias Result = JSON
}

public enum AppsRotateKey: RPCMethod {
    public static let name = "apps.rotate_key"
    public static let service = ServiceName.storage
    public static let summary = "Issue a new write key for an app; the old one stops working."
    public typealias Params = AppParams
    public typealias Result = JSON
}

public enum AppsRotateReadKey: RPCMethod {
    public static let name = "apps.rotate_read_key"
    public static let service = ServiceName.storage
    public static let summary = "Issue a new read key for an app (its first, for an app made before read keys); the old one stops reading."
    public typealias Params = AppParams
    public typealias Result = JSON
}

public enum AppsConfigure: RPCMethod {
    public static let name = "apps.configure"
    public static let service = ServiceName.storage
    public static let summary = "Change an app's settings; only the fields given change."

    public struct Params: Codable, Sendable {
        public var app: String
        public var personal_data: String?
        /// Inactivity that ends a session: `30m`, `1h`, …
        public var session_inactivity: String?
        /// The longest a session lasts: `24h`, …
        public var session_max_length: String?
        public var identify_userlike_by_email: Bool?
        /// The earliest event time accepted (RFC 3339).
        public var earliest_event_time: String?
        /// How far past receipt an event time may lie: `24h`, `7d`, …
        public var future_allowance: String?
        /// How long events are kept: `90d`, `13mo`, `2y`, …; `forever` keeps them all.
        public var retention: String?

        public init(app: String) { self.app = app }
    }

    public typealias Result = JSON
}

public enum AttributesSet: RPCMethod {
    public static let name = "attributes.set"
    public static let service = ServiceName.storage
    public static let summary = "Register an attribute's type (string, number, date, boolean or json) for an app."

    public struct Params: Codable, Sendable {
        public var app: String
        public var name: String
        public var type: String
        public init(app: String, name: String, type: String) {
            self.app = app
            self.name = name
            self.type = type
        }
    }

    public typealias Result = JSON
}

public enum AttributesList: RPCMethod {
    public static let name = "attributes.list"
    public static let service = ServiceName.storage
    public static let summary = "An app's registered attribute types, as a table."
    public typealias Params = AppParams
    public typealias Result = JSON
}

public enum UsersMerge: RPCMethod {
    public static let name = "users.merge"
    public static let service = ServiceName.storage
    public static let summary = "Merge one user into another: the first's ids, events and traits become the second's."

    public struct Params: Codable, Sendable {
        public var app: String
        public var from: String
        public var into: String
        public init(app: String, from: String, into: String) {
            self.app = app
            self.from = from
            self.into = into
        }
    }

    public typealias Result = JSON
}

public enum UsersDelete: RPCMethod {
    public static let name = "users.delete"
    public static let service = ServiceName.storage
    public static let summary = "Erase a user: their events, traits, memberships, aliases and sessions; later events naming them are dropped."

    public struct Params: Codable, Sendable {
        public var app: String
        public var user: String
        public init(app: String, user: String) {
            self.app = app
            self.user = user
        }
    }

    public typealias Result = JSON
}
