import CairnCore
import CairnWire

// Export: batch exports, continuous destinations, triggers.

/// An export's app and period.
public struct ExportParams: Codable, Sendable {
    public var app: String
    /// RFC 3339 or relative (`24h`, `7d`).
    public var since: String?
    public var until: String?
    /// Where the files go: an absolute path on the export service's machine.
    public var out: String?
    /// `export.segment` only: POST the batches to this Segment-compatible endpoint instead.
    public var to: String?
    public var write_key: String?
    public var gzip: Bool?

    public init(
        app: String,
        since: String? = nil,
        until: String? = nil,
        out: String? = nil,
        to: String? = nil,
        write_key: String? = nil,
        gzip: Bool? = nil
    ) {
        self.app = app
        self.since = since
        self.until = until
        self.out = out
        self.to = to
        self.write_key = write_key
        self.gzip = gzip
    }
}

public enum ExportSegment: RPCMethod {
    public static let name = "export.segment"
    public static let service = ServiceName.export
    public static let summary = "Every stored event and alias of a period as Segment batch files, or POSTed to a Segment-compatible endpoint."
    /// An export reads every event of its period.
    public static let deadline: Duration = .seconds(3600)
    public typealias Params = ExportParams
    public typealias Result = JSON
}

public enum ExportJSONLines: RPCMethod {
    public static let name = "export.jsonl"
    public static let service = ServiceName.export
    public static let summary = "Every stored event of a period as canonical JSON lines."
    public static let deadline: Duration = .seconds(3600)
    public typealias Params = ExportParams
    public typealias Result = JSON
}

public enum ExportStatus: RPCMethod {
    public static let name = "export.status"
    public static let service = ServiceName.export
    public static let summary = "Each continuous destination: its checkpoint, totals, what is pending and the lag."
    public typealias Params = NoParams
    public typealias Result = JSON
}

/// A trigger, by name (and app, when two apps use the name).
public struct TriggerParams: Codable, Sendable {
    public var name: String
    public var app: String?
    public init(name: String, app: String? = nil) {
        self.name = name
        self.app = app
    }
}

/// Parameters naming an app or none (then every app).
public struct OptionalAppParams: Codable, Sendable {
    public var app: String?
    public init(app: String? = nil) { self.app = app }
}

/// An e-mail trigger's message: Mustache templates over the event, its person and company.
public struct TriggerEmail: Codable, Sendable, Equatable {
    /// The recipient; `{{user.traits.email}}` when absent.
    public var to: String?
    public var subject: String
    /// The text body.
    public var text: String
    /// An HTML body sent beside the text one (`multipart/alternative`).
    public var html: String?

    public init(to: String? = nil, subject: String, text: String, html: String? = nil) {
        self.to = to
        self.subject = subject
        self.text = text
        self.html = html
    }
}

public enum TriggersAdd: RPCMethod {
    public static let name = "triggers.add"
    public static let service = ServiceName.export
    public static let summary =
        "Define a trigger: a webhook POSTed, or an e-mail sent, for each stored event that matches (or, with `unless`, that is not followed in time)."

    public struct Params: Codable, Sendable {
        public var app: String
        public var name: String
        /// An event name, or a pattern with `*`.
        public var event: String
        /// The webhook's URL; or `email`, not both.
        public var url: String?
        public var email: TriggerEmail?
        /// A condition on the event's attributes: `price > 10 and plan = "pro"`.
        public var `where`: String?
        /// A condition on the user's stored traits.
        public var trait: String?
        /// With `within`: fire when this event does not follow in time.
        public var unless: String?
        /// With `unless`: only a follow-up whose attribute of this name equals the event's
        /// answers it (the same product: `sku`).
        public var unless_same: String?
        public var within: String?
        /// Signs each body with HMAC-SHA256.
        public var secret: String?
        public var max_attempts: Int?
        public var timeout: String?

        public init(app: String, name: String, event: String, url: String? = nil, email: TriggerEmail? = nil) {
            self.app = app
            self.name = name
            self.event = event
            self.url = url
            self.email = email
        }
    }

    public typealias Result = JSON
}

public enum TriggersRemove: RPCMethod {
    public static let name = "triggers.remove"
    public static let service = ServiceName.export
    public static let summary = "Remove a trigger and its pending deliveries."
    public typealias Params = TriggerParams
    public typealias Result = JSON
}

public enum TriggersList: RPCMethod {
    public static let name = "triggers.list"
    public static let service = ServiceName.export
    public static let summary = "Every trigger's definition (without its secret)."
    public typealias Params = OptionalAppParams
    public typealias Result = JSON
}

public enum TriggersStatus: RPCMethod {
    public static let name = "triggers.status"
    public static let service = ServiceName.export
    public static let summary = "Each trigger's state, totals, waiting and parked deliveries, and lag."
    public typealias Params = OptionalAppParams
    public typealias Result = JSON
}

public enum TriggersParked: RPCMethod {
    public static let name = "triggers.parked"
    public static let service = ServiceName.export
    public static let summary = "A trigger's deliveries that failed their last attempt."
    public typealias Params = TriggerParams
    public typealias Result = JSON
}

public enum TriggersRetry: RPCMethod {
    public static let name = "triggers.retry"
    public static let service = ServiceName.export
    public static let summary = "Queue parked deliveries again (all, or these event ids), and resume a disabled trigger."

    public struct Params: Codable, Sendable {
        public var name: String
        public var app: String?
        /// Event ids as `triggers.parked` shows them (16 hex digits).
        public var event_ids: [String]?
        public init(name: String, app: String? = nil, event_ids: [String]? = nil) {
            self.name = name
            self.app = app
            self.event_ids = event_ids
        }
    }

    public typealias Result = JSON
}

public enum TriggersTest: RPCMethod {
    public static let name = "triggers.test"
    public static let service = ServiceName.export
    public static let summary = "Whether a record would fire a trigger, part by part, and the body and headers it would get."

    public struct Params: Codable, Sendable {
        public var name: String
        public var app: String?
        public var record: JSON
        public var format: String?
        public init(name: String, app: String? = nil, record: JSON, format: String? = nil) {
            self.name = name
            self.app = app
            self.record = record
            self.format = format
        }
    }

    public typealias Result = JSON
}
