import CairnCore
import CairnMethods
import CairnWire

// Reporting: every report takes the same scope (app, period, time zone) and options of its own.

/// The scope every report shares.
public struct ReportScopeParams: Codable, Sendable {
    /// The app, by name or token.
    public var app: String
    /// Start of the period: RFC 3339 or relative (`24h`, `7d`).
    public var since: String?
    /// End of the period (exclusive).
    public var until: String?
    /// Time zone for calendar buckets (`Europe/Berlin`); UTC when absent.
    public var tz: String?
    /// The report's time limit in seconds (1 to 3,600; 30 when absent).
    public var timeout_s: Int?

    public init(app: String, since: String? = nil, until: String? = nil, tz: String? = nil, timeout_s: Int? = nil) {
        self.app = app
        self.since = since
        self.until = until
        self.tz = tz
        self.timeout_s = timeout_s
    }
}

/// A report's parameters: the shared scope and the report's own options, side by side in one
/// JSON object.
public struct ReportParams<Options: Codable & Sendable>: Codable, Sendable {
    public var scope: ReportScopeParams
    public var options: Options

    public init(_ scope: ReportScopeParams, _ options: Options) {
        self.scope = scope
        self.options = options
    }

    public init(from decoder: any Decoder) throws {
        scope = try ReportScopeParams(from: decoder)
        options = try Options(from: decoder)
    }

    public func encode(to encoder: any Encoder) throws {
        try scope.encode(to: encoder)
        try options.encode(to: encoder)
    }
}

/// A report's answer: its columns in order, and each row as an object keyed by column.
public struct ReportTableResult: Codable, Sendable, Equatable {
    public var columns: [String]
    public var rows: [JSONObject]

    public init(columns: [String], rows: [JSONObject]) {
        self.columns = columns
        self.rows = rows
    }
}

/// A report method: its parameters are ``ReportParams`` of its `Options`; it answers a table.
public protocol ReportMethod: RPCMethod where Params == ReportParams<Options>, Result == ReportTableResult {
    associatedtype Options: Codable & Sendable
}

extension ReportMethod {
    public static var service: ServiceName { .reporting }
    /// The report's own `timeout_s` (at most an hour) ends it first.
    public static var deadline: Duration { .seconds(3_700) }
}

public enum ReportEvents: ReportMethod {
    public static let name = "report.events"
    public static let summary =
        "Events per name (the most frequent first), a time series with `by`, or events and people per value of an attribute with `breakdown`."

    public struct Options: Codable, Sendable {
        /// `hour`, `day`, `week` or `month`: a time series.
        public var by: String?
        public var event: String?
        /// An event type: `track`, `page_view`, `interaction`, …
        public var type: String?
        public var top: Int?
        /// Count per value of this attribute instead of per name.
        public var breakdown: String?
        public init(by: String? = nil, event: String? = nil, type: String? = nil, top: Int? = nil, breakdown: String? = nil) {
            self.by = by
            self.event = event
            self.type = type
            self.top = top
            self.breakdown = breakdown
        }
    }
}

public enum ReportUniques: ReportMethod {
    public static let name = "report.uniques"
    public static let summary = "Unique people per day, week or month (DAU, WAU, MAU); an identified visitor counts once."

    public struct Options: Codable, Sendable {
        /// `day`, `week` or `month`.
        public var by: String?
        public var event: String?
        public init(by: String? = nil, event: String? = nil) {
            self.by = by
            self.event = event
        }
    }
}

public enum ReportStats: ReportMethod {
    public static let name = "report.stats"
    public static let summary = "Count, sum, min, max, mean and percentiles of a numeric attribute of one event."

    public struct Options: Codable, Sendable {
        public var event: String?
        public var attr: String?
        public init(event: String? = nil, attr: String? = nil) {
            self.event = event
            self.attr = attr
        }
    }
}

public enum ReportTimeline: ReportMethod {
    public static let name = "report.timeline"
    public static let summary = "One person's events in time order, with their sessions."

    public struct Options: Codable, Sendable {
        public var user: String?
        public var limit: Int?
        public init(user: String? = nil, limit: Int? = nil) {
            self.user = user
            self.limit = limit
        }
    }
}

public enum ReportSessions: ReportMethod {
    public static let name = "report.sessions"
    public static let summary = "Sessions, people, median and p90 length, events per session and bounce rate."

    public struct Options: Codable, Sendable {
        /// `server` (the default): the sessions identity computes from inactivity; `sender`:
        /// the events' own session ids (Userpilot's `session`, Userlike's `session_id`,
        /// Segment's `context.sessionId`).
        public var source: String?
        public init(source: String? = nil) { self.source = source }
    }
}

public enum ReportCompanies: ReportMethod {
    public static let name = "report.companies"
    public static let summary = "Active people and events per company."

    public struct Options: Codable, Sendable {
        public var top: Int?
        public init(top: Int? = nil) { self.top = top }
    }
}

public enum ReportFunnel: ReportMethod {
    public static let name = "report.funnel"
    public static let summary = "People reaching each step in order, conversion, drop-off and time between steps."

    public struct Options: Codable, Sendable {
        public var steps: [String]?
        /// The whole funnel's time limit: `30m`, `7d`, …
        public var within: String?
        /// Split the funnel by a user trait.
        public var by_trait: String?
        public init(steps: [String]? = nil, within: String? = nil, by_trait: String? = nil) {
            self.steps = steps
            self.within = within
            self.by_trait = by_trait
        }
    }
}

public enum ReportRetention: ReportMethod {
    public static let name = "report.retention"
    public static let summary = "Cohorts by first `start_event`, and the share who did `return_event` in each later period."

    public struct Options: Codable, Sendable {
        public var start_event: String?
        public var return_event: String?
        /// `day` or `week` (the default).
        public var by: String?
        public var periods: Int?
        public init(start_event: String? = nil, return_event: String? = nil, by: String? = nil, periods: Int? = nil) {
            self.start_event = start_event
            self.return_event = return_event
            self.by = by
            self.periods = periods
        }
    }
}

public enum ReportUsers: ReportMethod {
    public static let name = "report.users"
    public static let summary = "Users who did (or did not do) events, with conditions on attributes and traits."

    public struct Options: Codable, Sendable {
        public var did: String?
        public var not_did: [String]?
        /// Conditions on stored traits, all of which must hold.
        public var traits: [String]?
        /// A condition on the `did` event's attributes.
        public var `where`: String?
        /// How many times `did` happened: `3` (exactly), `>5`, `>=2`, `<3`, `!=0`.
        public var times: String?
        public var limit: Int?
        public init(
            did: String? = nil,
            not_did: [String]? = nil,
            traits: [String]? = nil,
            where: String? = nil,
            times: String? = nil,
            limit: Int? = nil
        ) {
            self.did = did
            self.not_did = not_did
            self.traits = traits
            self.where = `where`
            self.times = times
            self.limit = limit
        }
    }
}

public enum ReportEngagement: ReportMethod {
    public static let name = "report.engagement"
    public static let summary = "Flows, checklists, surveys, NPS and experiments across the engagement tools: who saw, started, completed."

    public struct Options: Codable, Sendable {
        /// `flow`, `checklist`, `survey`, `nps`, `experiment`, …
        public var entity: String?
        public var id: String?
        public init(entity: String? = nil, id: String? = nil) {
            self.entity = entity
            self.id = id
        }
    }
}

public enum UsersShow: RPCMethod {
    public static let name = "users.show"
    public static let service = ServiceName.reporting
    public static let summary = "One user: traits, company, aliases, merges, sessions and event count."

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

public enum CompaniesShow: RPCMethod {
    public static let name = "companies.show"
    public static let service = ServiceName.reporting
    public static let summary = "One company: traits, first and last seen, and its members now and before."

    public struct Params: Codable, Sendable {
        public var app: String
        public var company: String
        public init(app: String, company: String) {
            self.app = app
            self.company = company
        }
    }

    public typealias Result = JSON
}
