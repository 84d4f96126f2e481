import ArgumentParser
import CairnCore
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

    var params: JSONObject {
        var object: JSONObject = ["app": .string(app), "tz": .string(tz)]
        if let since { object["since"] = .string(since) }
        if let until { object["until"] = .string(until) }
        return object
    }

    /// Asks the reporting service for `method` and prints the table it answers in `format`.
    func show(_ method: String, _ params: JSONObject, via connection: ConnectionOptions) async throws {
        print(TableRenderer.render(try await connection.call("reporting", method, .object(params)), format: format))
    }
}

extension CairnCommand {
    struct Report: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Answer questions about stored events.",
            subcommands: [Events.self, Uniques.self, Stats.self, Users.self, Timeline.self, Funnel.self, Retention.self, Sessions.self,
                          Engagement.self, Companies.self])
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

        @Option(name: .long, help: "Only the N most frequent names.")
        var top: Int?

        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            var params = report.params
            if let by { params["by"] = .string(by) }
            if let event { params["event"] = .string(event) }
            if let type { params["type"] = .string(type) }
            if let top { params["top"] = .int(Int64(top)) }
            try await report.show("report.events", params, via: connection)
        }
    }
}

extension CairnCommand.Report {
    /// `cairn report uniques --by day|week|month [--event NAME]`: DAU, WAU, MAU.
    struct Uniques: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Count unique people per day, week or month (an anonymous visitor who signed up counts once).")

        @OptionGroup var report: ReportOptions

        @Option(name: .long, help: "day, week or month.")
        var by: String

        @Option(name: .long, help: "Only people who did this event.")
        var event: String?

        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            var params = report.params
            params["by"] = .string(by)
            if let event { params["event"] = .string(event) }
            try await report.show("report.uniques", params, via: connection)
        }
    }

    /// `cairn report stats --event NAME --attr A`: statistics of a numeric attribute.
    struct Stats: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Count, sum, min, max, average and percentiles of a numeric attribute of one event.")

        @OptionGroup var report: ReportOptions

        @Option(name: .long, help: "The event name, e.g. purchase.")
        var event: String

        @Option(name: .long, help: "The numeric attribute, e.g. price.")
        var attr: String

        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            var params = report.params
            params["event"] = .string(event)
            params["attr"] = .string(attr)
            try await report.show("report.stats", params, via: connection)
        }
    }

    /// `cairn report timeline --user U`: one person's events in order.
    struct Timeline: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List one person's events in order, with attributes and session, including their anonymous events from before they identified.")

        @OptionGroup var report: ReportOptions

        @Option(name: .long, help: "The user id.")
        var user: String

        @Option(name: .long, help: "At most this many events (the latest).")
        var limit: Int = 1000

        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            var params = report.params
            params["user"] = .string(user)
            params["limit"] = .int(Int64(limit))
            try await report.show("report.timeline", params, via: connection)
        }
    }
}

extension CairnCommand.Report {
    /// `cairn report funnel --step A --step B [--within 7d] [--by-trait plan]`.
    struct Funnel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Conversion and drop-off through ordered steps, with the median time between steps; each person counts once.")

        @OptionGroup var report: ReportOptions

        @Option(name: .long, help: "A step's event name; give two or more, in order.")
        var step: [String] = []

        @Option(name: .long, help: "All steps within this long of the first, e.g. 7d.")
        var within: String?

        @Option(name: .long, help: "One funnel per value of this user trait, e.g. plan.")
        var byTrait: String?

        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            var params = report.params
            params["steps"] = .array(step.map(JSON.string))
            if let within { params["within"] = .string(within) }
            if let byTrait { params["by_trait"] = .string(byTrait) }
            try await report.show("report.funnel", params, via: connection)
        }
    }

    /// `cairn report sessions`.
    struct Sessions: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Session count, median and p90 length, events per session and bounce rate (sessions starting in the period).")

        @OptionGroup var report: ReportOptions
        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            try await report.show("report.sessions", report.params, via: connection)
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
            var params = report.params
            params["top"] = .int(Int64(top))
            try await report.show("report.companies", params, via: connection)
        }
    }
}

extension CairnCommand.Report {
    /// `cairn report retention --start-event A --return-event B --by day|week [--periods N]`.
    struct Retention: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A cohort table: of the people who first did A in each day or week, how many did B in each following one.")

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
            var params = report.params
            params["start_event"] = .string(startEvent)
            params["return_event"] = .string(returnEvent)
            params["by"] = .string(by)
            params["periods"] = .int(Int64(periods))
            try await report.show("report.retention", params, via: connection)
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
                """)

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
            var params = report.params
            if let did { params["did"] = .string(did) }
            if let times { params["times"] = .string(times) }
            if let `where` { params["where"] = .string(`where`) }
            params["not_did"] = .array(notDid.map(JSON.string))
            params["traits"] = .array(trait.map(JSON.string))
            params["limit"] = .int(Int64(limit))
            try await report.show("report.users", params, via: connection)
        }
    }
}

extension CairnCommand.Report {
    /// `cairn report engagement --entity flow|checklist|survey|nps|resource_center|experiment|hotspot|banner|chat [--id ID]`.
    struct Engagement: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "One view of engagement across tools: seen, started, completed and dismissed; survey answers, NPS, experiment variants, the chat funnel.")

        @OptionGroup var report: ReportOptions

        @Option(name: .long, help: "flow, checklist, survey, nps, resource_center, experiment, hotspot, banner or chat.")
        var entity: String

        @Option(name: .long, help: "One entity id (for a survey: its answer distribution per question).")
        var id: String?

        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            var params = report.params
            params["entity"] = .string(entity)
            if let id { params["id"] = .string(id) }
            try await report.show("report.engagement", params, via: connection)
        }
    }
}
