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
}

extension CairnCommand {
    struct Report: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Answer questions about stored events.",
            subcommands: [Events.self])
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
            let result = try await connection.call("reporting", "report.events", .object(params))
            print(TableRenderer.render(result, format: report.format))
        }
    }
}
