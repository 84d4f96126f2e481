import CairnCore
import CairnWire

// Ingest and identity.

public enum IngestSubmit: RPCMethod {
    public static let name = "ingest.submit"
    public static let service = ServiceName.ingest
    public static let summary = "Normalise records of any format and spool them; answers once they are durable (acknowledged means stored)."

    public struct Params: Codable, Sendable {
        /// The app, by name or token.
        public var app: String
        /// `auto` (the default), `segment`, `userguiding`, `userlike`, `userpilot`, `usercom` or `canonical`.
        public var format: String?
        public var records: [JSON]
        /// Each record's line number in its file, for dead letters; 1, 2, 3… when absent.
        public var lines: [Int]?
        /// Where the records came from, kept with dead letters: `cli`, `rpc`, …
        public var source: String?
        /// The line numbers (as in `lines`) of records whose bytes were not UTF-8. Each is sent
        /// as a string holding its bytes in base64, and its dead letter keeps those bytes.
        public var invalid_utf8: [Int]?

        public init(app: String, format: String? = nil, records: [JSON], lines: [Int]? = nil, source: String? = nil, invalid_utf8: [Int]? = nil) {
            self.app = app
            self.format = format
            self.records = records
            self.lines = lines
            self.source = source
            self.invalid_utf8 = invalid_utf8
        }
    }

    public typealias Result = JSON
}

public enum IngestDeadLettersList: RPCMethod {
    public static let name = "ingest.deadletters.list"
    public static let service = ServiceName.ingest
    public static let summary = "The newest dead letters, with the record, the field and the reason."

    public struct Params: Codable, Sendable {
        public var app: String?
        /// At most this many (1 to 10,000; 100 when absent).
        public var limit: Int?
        public init(app: String? = nil, limit: Int? = nil) {
            self.app = app
            self.limit = limit
        }
    }

    public typealias Result = JSON
}

public enum IngestDeadLettersReplay: RPCMethod {
    public static let name = "ingest.deadletters.replay"
    public static let service = ServiceName.ingest
    public static let summary = "Run dead letters through ingest again (after the app or attribute they needed exists)."
    public static let deadline: Duration = .seconds(300)

    public struct Params: Codable, Sendable {
        public var app: String?
        public var ids: [Int64]?
        public init(app: String? = nil, ids: [Int64]? = nil) {
            self.app = app
            self.ids = ids
        }
    }

    public typealias Result = JSON
}

public enum IngestSuppress: RPCMethod {
    public static let name = "ingest.suppress"
    public static let service = ServiceName.ingest
    public static let summary = "Drop spooled and later events of erased people."

    public struct Params: Codable, Sendable {
        public var app_token: String
        public var user_ids: [String]?
        public var anonymous_ids: [String]?
        public init(app_token: String, user_ids: [String]? = nil, anonymous_ids: [String]? = nil) {
            self.app_token = app_token
            self.user_ids = user_ids
            self.anonymous_ids = anonymous_ids
        }
    }

    public typealias Result = JSON
}

public enum IngestAppsRefresh: RPCMethod {
    public static let name = "ingest.apps.refresh"
    public static let service = ServiceName.ingest
    public static let summary = "Read an app's settings again now, so a change applies to the very next event."
    public typealias Params = AppParams
    public typealias Result = JSON
}

public enum IdentityRefresh: RPCMethod {
    public static let name = "identity.refresh"
    public static let service = ServiceName.identity
    public static let summary = "After a merge or an erasure: forget cached people and recompute the sessions of those that remain."
    public static let deadline: Duration = .seconds(120)

    public struct Params: Codable, Sendable {
        public var app_token: String
        public var persons: [String]?
        public var forget: [String]?
        public init(app_token: String, persons: [String]? = nil, forget: [String]? = nil) {
            self.app_token = app_token
            self.persons = persons
            self.forget = forget
        }
    }

    public struct Result: Codable, Sendable {
        public var persons: Int
        public init(persons: Int) { self.persons = persons }
    }
}

public enum RetentionRun: RPCMethod {
    public static let name = "retention.run"
    public static let service = ServiceName.identity
    public static let summary =
        "Remove the events older than each app's retention window (or one app's), with what derives from them; `dry_run` only says what would go."
    public static let deadline: Duration = .seconds(3600)

    public struct Params: Codable, Sendable {
        /// One app (name or token); every app with a retention window when absent.
        public var app: String?
        public var dry_run: Bool?
        /// Whether a month partition every app in it has outlived is dropped whole (the fast
        /// path) rather than deleted from app by app. Defaults to true.
        public var drop_partitions: Bool?
        public init(app: String? = nil, dry_run: Bool? = nil, drop_partitions: Bool? = nil) {
            self.app = app
            self.dry_run = dry_run
            self.drop_partitions = drop_partitions
        }
    }

    public typealias Result = JSON
}

public enum IdentityFollowers: RPCMethod {
    public static let name = "identity.followers"
    public static let service = ServiceName.identity
    public static let summary = "How far each app's identity follower is behind the events log, in events and seconds."
    /// Short: ingest's `/metrics` asks it, and a scrape must not hang on a stalled identity.
    public static let deadline: Duration = .seconds(2)
    public typealias Params = NoParams
    public struct Result: Codable, Sendable {
        public var followers: [FollowerLag]
        public init(followers: [FollowerLag]) { self.followers = followers }
    }
}

/// One app's follower: the events stored but not yet folded, and the age of the oldest.
public struct FollowerLag: Codable, Sendable, Equatable {
    public var app: String
    public var follower: String
    public var lag_events: Int64
    public var lag_seconds: Double
    public var folded_events: Int64
    public var updated_at: String?
    public init(app: String, follower: String, lag_events: Int64, lag_seconds: Double, folded_events: Int64, updated_at: String?) {
        self.app = app
        self.follower = follower
        self.lag_events = lag_events
        self.lag_seconds = lag_seconds
        self.folded_events = folded_events
        self.updated_at = updated_at
    }
}
