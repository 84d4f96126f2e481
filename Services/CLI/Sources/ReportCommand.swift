import ArgumentParser
import CairnCore
import CairnMethods
import CairnWire
import Foundation

/// Options every report shares.
struct ReportOptions: ParsableArguments {
    @Option(name: .long, help: "The app to report on.")
    var app: String

    @Option(name: .long, help: "Start of the period: RFC 3339 (2024-05-01T00:00:00Z) or relative (24h, 7d).")
    var since: String?

    @Option(name: .long, help: "End of the period (exclusive), absolute or relative.")
    var until: String?

    @Option(name: .long, help: "Time zone for calendar buckets, e.g. Europe/Berlin.")
    var tz: String = "UTC"

    @Option(name: .long, help: "Output: table, json or csv.")
    var format: OutputFormat = .table

    var scope: ReportScopeParams {
        ReportScopeParams(app: app, since: since, until: until, tz: tz)
    }

    /// Asks the reporting service for `method` and prints the table it answers in `format`.
    func show<Method: ReportMethod>(_ method: Method.Type, _ options: Method.Options, via connection: ConnectionOptions) async throws {
        let table = try await connection.call(method, ReportParams(scope, options))
        print(TableRenderer.render(JSONCoding.encode(table), format: format))
    }
}

extension CairnCommand {
    struct Report: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Answer questions about stored events.",
            subcommands: [
                Events.self, Uniques.self, Stats.self, Users.self, Timeline.self, Funnel.self, Retention.self, Sessions.self,
                Engagement.self, Companies.self,
            ]
        )
    }
}

extension CairnCommand.Report {
    /// `cairn report events`: counts per event name, or a time series with `--by`.
    struct Events: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Count events per event name, or over time with --by.")

        @OptionGroup var report: ReportOptions

        @Option(name: .long, help: "Bucket the counts over time: hour, day, week or month.")
        var by: String?

        @Option(name: .long, help: "Only this event name.")
        var event: String?

        @Option(name: .long, help: "Only this event type (track, interaction, page_view, ...).")
        var type: String?

        @Option(name: .long, help: "Only the N most frequent names (or values, with --breakdown).")
        var top: Int?

        @Option(name: .long, help: "Count events and people per value of this attribute, e.g. plan (with --event, one event's).")
        var breakdown: String?

        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            try await report.show(ReportEvents.self, .init(by: by, event: event, type: type, top: top, breakdown: breakdown), via: connection)
        }
    }
}

extension CairnCommand.Report {
    /// `cairn report uniques --by day|week|month [--event NAME]`: DAU, WAU, MAU.
    struct Uniques: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Count unique people per day, week or month (an anonymous visitor who signed up counts once)."
        )

        @OptionGroup var report: ReportOptions

        @Option(name: .long, help: "day, week or month.")
        var by: String

        @Option(name: .long, help: "Only people who did this event.")
        var event: String?

        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            try await report.show(ReportUniques.self, .init(by: by, event: event), via: connection)
        }
    }

    /// `cairn report stats --event NAME --attr A`: statistics of a numeric attribute.
    struct Stats: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Count, sum, min, max, average and percentiles of a numeric attribute of one event."
        )

        @OptionGroup var report: ReportOptions

        @Option(name: .long, help: "The event name, e.g. purchase.")
        var event: String

        @Option(name: .long, help: "The numeric attribute, e.g. price.")
        var attr: String

        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            try await report.show(ReportStats.self, .init(event: event, attr: attr), via: connection)
        }
    }

    /// `cairn report timeline --user U`: one person's events in order.
    struct Timeline: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List one person's events in order, with attributes and session, including their anonymous events from before they identified."
        )

        @OptionGroup var report: ReportOptions

        @Option(name: .long, help: "The user id.")
        var user: String

        @Option(name: .long, help: "At most this many events (the latest).")
        var limit: Int = 1000

        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            try await report.show(ReportTimeline.self, .init(user: user, limit: limit), via: connection)
        }
    }
}

extension CairnCommand.Report {
    /// `cairn report funnel --step A --step B [--within 7d] [--by-trait plan]`.
    struct Funnel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Conversion and drop-off through ordered steps, with the median time between steps; each person counts once."
        )

        @OptionGroup var report: ReportOptions

        @Option(name: .long, help: "A step's event name; give two or more, in order.")
        var step: [String] = []

        @Option(name: .long, help: "All steps within this long of the first, e.g. 7d.")
        var within: String?

        @Option(name: .long, help: "One funnel per value of this user trait, e.g. plan.")
        var byTrait: String?

        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            try await report.show(ReportFunnel.self, .init(steps: step, within: within, by_trait: byTrait), via: connection)
        }
    }

    /// `cairn report sessions`.
    struct Sessions: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Session count, median and p90 length, events per session and bounce rate (sessions starting in the period)."
        )

        @OptionGroup var report: ReportOptions
        @Option(
            name: .long,
            help:
                "server: sessions computed from inactivity (the default); sender: the events' own session ids (Userpilot's session, Userlike's session_id, Segment's context.sessionId)."
        )
        var source: String?
        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            try await report.show(ReportSessions.self, .init(source: source), via: connection)
        }
    }

    /// `cairn report companies [--top N]`.
    struct Companies: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Active people and events per company.")

        @OptionGroup var report: ReportOptions

        @Option(name: .long, help: "Only the N most active companies.")
        var top: Int = 100

        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            try await report.show(ReportCompanies.self, .init(top: top), via: connection)
        }
    }
}

extension CairnCommand.Report {
    /// `cairn report retention --start-event A --return-event B --by day|week [--periods N]`.
    struct Retention: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A cohort table: of the people who first did A in each day or week, how many did B in each following one."
        )

        @OptionGroup var report: ReportOptions

        @Option(name: .long, help: "The event that puts a person in a cohort.")
        var startEvent: String

        @Option(name: .long, help: "The event that counts as coming back.")
        var returnEvent: String

        @Option(name: .long, help: "day or week.")
        var by: String = "week"

        @Option(name: .long, help: "How many periods after the cohort's own.")
        var periods: Int = 8

        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            try await report.show(
                ReportRetention.self,
                .init(start_event: startEvent, return_event: returnEvent, by: by, periods: periods),
                via: connection
            )
        }
    }
}

extension CairnCommand.Report {
    /// `cairn report users --did NAME [--times '>5'] [--where COND] [--not-did NAME] [--trait COND]`.
    struct Users: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "People matching every condition, with how often they did the event.",
            discussion: """
                Conditions: name op value, with op one of = != > >= < <=, or name in (a, b), name not in (…), \
                name contains 'text'; combined with and, or, not and parentheses. Values are numbers, 'text', \
                true, false, or dates such as 2024-05-01. Example: --did purchase --where "price > 150 and color = 'teal'".
                """
        )

        @OptionGroup var report: ReportOptions

        @Option(name: .long, help: "People who did this event.")
        var did: String?

        @Option(name: .long, help: "How often, e.g. '>5', '>=2' or '3' (default: at least once).")
        var times: String?

        @Option(name: .long, help: "Only count --did events whose attributes match, e.g. 'price > 150'.")
        var `where`: String?

        @Option(name: .long, help: "People who did not do this event in the period (repeatable).")
        var notDid: [String] = []

        @Option(name: .long, help: "A condition on user traits, e.g. \"plan = 'pro'\" (repeatable).")
        var trait: [String] = []

        @Option(name: .long, help: "At most this many people.")
        var limit: Int = 1000

        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            let options = ReportUsers.Options(did: did, not_did: notDid, traits: trait, where: `where`, times: times, limit: limit)
            try await report.show(ReportUsers.self, options, via: connection)
        }
    }
}

extension CairnCommand.Report {
    /// `cairn report engagement --entity flow|checklist|survey|nps|resource_center|experiment|hotspot|banner|chat [--id ID]`.
    struct Engagement: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "One view of engagement across tools: seen, started, completed and dismissed; survey answers, NPS, experiment variants, the chat funnel."
        )

        @OptionGroup var report: ReportOptions

        @Option(name: .long, help: "flow, checklist, survey, nps, resource_center, experiment, hotspot, banner or chat.")
        var entity: String

        @Option(name: .long, help: "One entity id (for a survey: its answer distribution per question).")
        var id: String?

        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            try await report.show(ReportEngagement.self, .init(entity: entity, id: id), via: connection)
        }
    }
}
