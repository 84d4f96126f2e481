import CairnCore
import CairnMethods
import CairnReporting
import CairnWire
import Foundation
import HTTPTypes

/// One page request's reader, query and period, and the way its reports run: through the same
/// catalog and parameter rules as the report API, so a page shows the API's numbers.
struct PageContext: Sendable {
    let console: Console
    let reader: Reader
    /// The app's name, as the page's URLs spell it.
    let app: String
    let query: QueryParameters
    let path: String

    var base: String { "/apps/\(Console.encode(app))" }

    /// A parameter's value, or "" when absent.
    func value(_ name: String) -> String { query.pairs.first { $0.name == name }?.value ?? "" }

    /// Every non-empty value of a repeated parameter.
    func values(_ name: String) -> [String] { query.pairs.filter { $0.name == name && !$0.value.isEmpty }.map(\.value) }

    /// The period every report on the page shares.
    var periodPairs: [(name: String, value: String)] {
        ["since", "until", "tz"].compactMap { name in value(name).isEmpty ? nil : (name, value(name)) }
    }

    /// Runs report `name` for the page's period and `options` (empty values left out, as a form
    /// sends them); answers its table and the query the API takes for the same numbers.
    /// - Parameter period: another period than the page's (``period(wholeIn:)``).
    func report(
        _ name: String,
        _ options: [(name: String, value: String)],
        period: [(name: String, value: String)]? = nil
    ) async throws -> (table: ReportTableResult, query: String) {
        guard let entry = ReportCatalog.entry(named: name) else { throw APIRefusal(.notFound, .notFound, "no report \(name)") }
        let pairs = (period ?? periodPairs) + options.filter { !$0.value.isEmpty }
        let reportQuery = ReportQuery(entry)
        let params = try reportQuery.params(app: reader.token, query: QueryParameters(pairs: pairs))
        do {
            let table = try await console.limiter.run(app: reader.token) { try await entry.run(params, on: console.runner) }
            return (table, Console.encode(pairs))
        } catch {
            throw APIRefusal.from(error, parameterName: reportQuery.name(ofField:))
        }
    }

    /// A chart of report `name` with its numbers under it and a CSV link beside it.
    func chart(
        _ heading: String,
        report name: String,
        _ options: [(name: String, value: String)],
        caption: String,
        note: String? = nil,
        open: Bool = false,
        period: [(name: String, value: String)]? = nil,
        link: @escaping (String, JSON?) -> String? = { _, _ in nil },
        draw: (ReportTableResult) -> String
    ) async throws -> SectionView {
        let (table, query) = try await report(name, options, period: period)
        let api = "/api/v1/apps/\(Console.encode(app))/reports/\(name)?\(query)"
        return SectionView(
            heading: heading,
            note: note,
            chart: ChartView(svg: draw(table), report: name, api: api, csv: api + "&format=csv", rows: table.rows.count, caption: caption),
            table: TableView(table, open: open, link: link)
        )
    }

    /// The page's period widened to whole weeks (from Monday) or months in UTC: the buckets a
    /// weekly or monthly chart shows, each whole rather than cut at the period's ends, which the
    /// rollups answer without reading events. Unchanged in another time zone or for relative bounds.
    func period(wholeIn grain: String) -> [(name: String, value: String)] {
        guard ["", "utc"].contains(value("tz").lowercased()), let since = Timestamp(parsing: value("since")),
            let until = Timestamp(parsing: value("until")), grain == "week" || grain == "month"
        else { return periodPairs }
        let day: Int64 = 86_400_000_000
        func start(_ time: Timestamp) -> Timestamp {
            if grain == "month" { return time.utcMonthBounds.start }
            let days = time.microseconds >= 0 ? time.microseconds / day : (time.microseconds - day + 1) / day
            // 1970-01-01 was a Thursday: three days after a Monday.
            return Timestamp(microseconds: (days - ((days + 3) % 7 + 7) % 7) * day)
        }
        var end = start(until)
        if end < until { end = grain == "month" ? end.utcMonthBounds.end : Timestamp(microseconds: end.microseconds + 7 * day) }
        return [("since", String(start(since).description.prefix(10))), ("until", String(end.description.prefix(10)))]
            + periodPairs.filter { $0.name == "tz" }
    }

    /// The period form, keeping the page's other parameters, with presets that end at `until`.
    func periodView() -> PeriodView {
        let others = query.pairs.filter { !["since", "until", "tz"].contains($0.name) }.map { NameValue(name: $0.name, value: $0.value) }
        let until = value("until")
        let allTime = LinkView(
            label: "All time",
            href: path + "?" + Console.encode([("since", ""), ("until", "")] + others.map { ($0.name, $0.value) })
        )
        let presets = [("7 days", 7), ("30 days", 30), ("90 days", 90), ("1 year", 365)].compactMap { label, days -> LinkView? in
            guard let end = Timestamp(parsing: until) else { return nil }
            let start = Timestamp(microseconds: end.microseconds - Int64(days) * 86_400_000_000)
            let pairs =
                [("since", String(start.description.prefix(10))), ("until", until)] + (value("tz").isEmpty ? [] : [("tz", value("tz"))])
                + others.map { ($0.name, $0.value) }
            return LinkView(label: label, href: path + "?" + Console.encode(pairs))
        }
        return PeriodView(action: path, since: value("since"), until: until, tz: value("tz"), hidden: others, presets: presets + [allTime])
    }

    /// A GET form of the page's own fields that keeps the period, so its result is a URL to share.
    func form(_ fields: [FieldView], submit: String, datalists: [DataListView] = []) -> FormView {
        FormView(
            action: path,
            hidden: periodPairs.map { NameValue(name: $0.name, value: $0.value) },
            fields: fields,
            submit: submit,
            datalists: datalists
        )
    }

    func personLink(_ id: String) -> String { "\(base)/people/\(Console.encode(id))?\(Console.encode(periodPairs))" }
    func companyLink(_ id: String) -> String { "\(base)/companies/\(Console.encode(id))?\(Console.encode(periodPairs))" }
}

extension ReportTableResult {
    /// The rows' values of `column` as text.
    func strings(_ column: String) -> [String] { rows.map { TableText.cell($0[column]) } }

    func number(_ row: JSONObject, _ column: String) -> Double {
        switch row[column] {
        case .int(let value)?: Double(value)
        case .double(let value)?: value
        case .string(let text)?: Double(text) ?? 0
        default: 0
        }
    }

    /// `label` and `value` columns as chart points.
    func points(label: (JSONObject) -> String, value column: String, note: ((JSONObject) -> String)? = nil) -> [ChartPoint] {
        rows.map { ChartPoint(label: label($0), value: number($0, column), note: note?($0)) }
    }
}

/// The pages: each fills a ``PageView`` from reports.
enum ConsolePage {
    static let eventTypes = ["", "track", "page_view", "screen_view", "interaction", "identify_user", "identify_company", "alias"]
    static let entities = ["flow", "checklist", "survey", "nps", "resource_center", "experiment", "hotspot", "banner", "chat"]

    /// A length of time as a person says it: 45 s, 21 min, 3.5 h, 10.4 d.
    static func duration(_ seconds: Double) -> String {
        switch seconds {
        case ..<90: "\(Int(seconds.rounded())) s"
        case ..<5_400: "\(Int((seconds / 60).rounded())) min"
        case ..<172_800: "\(TableText.cell(.double(seconds / 3_600))) h"
        default: "\(TableText.cell(.double(seconds / 86_400))) d"
        }
    }

    /// An event's label: its name, else its type.
    static func eventLabel(_ row: JSONObject) -> String {
        let name = TableText.cell(row["event_name"])
        return name.isEmpty ? "(\(TableText.cell(row["event_type"])))" : name
    }

    static func eventNames(_ context: PageContext) async -> DataListView {
        let names = (try? await context.report("events", [("top", "200")]))?.table.strings("event_name").filter { !$0.isEmpty } ?? []
        return DataListView(id: "event-names", values: Array(Set(names)).sorted())
    }

    static func overview(_ context: PageContext, _ view: inout PageView) async throws {
        view.title = "Overview"
        view.period = context.periodView()
        // Five reports, run side by side: the page takes about as long as the slowest.
        async let events = context.chart("Events per day", report: "events", [("by", "day")], caption: "Every stored event, per day.") { table in
            Chart.columns(table.points(label: { TableText.cell($0["day"]) }, value: "events"), title: "Events per day")
        }
        func active(_ grain: String, _ heading: String) async throws -> SectionView {
            try await context.chart(
                heading,
                report: "uniques",
                [("by", grain)],
                caption: "People with any event; a visitor who signed up counts once."
                    + (grain == "day" ? "" : " Each \(grain) whole, also where the period cuts it."),
                period: context.period(wholeIn: grain)
            ) {
                table in
                Chart.columns(table.points(label: { TableText.cell($0[grain]) }, value: "people"), title: heading, series: 2)
            }
        }
        async let daily = active("day", "Daily active people")
        async let weekly = active("week", "Weekly active people")
        async let monthly = active("month", "Monthly active people")
        async let top = context.chart("Top events", report: "events", [("top", "10")], caption: "The ten most frequent events.", open: true) {
            table in
            Chart.bars(table.points(label: eventLabel, value: "events"), title: "Top events")
        }
        view.sections += try await [events, daily, weekly, monthly, top]
    }

    static func events(_ context: PageContext, _ view: inout PageView) async throws {
        view.title = "Events"
        view.period = context.periodView()
        let names = await eventNames(context)
        view.filters = context.form(
            [
                .select("Type", "type", eventTypes, selected: context.value("type")),
                FieldView(label: "Event", name: "event", value: context.value("event"), placeholder: "any event", list: names.id),
                .select("Over time", "by", ["", "hour", "day", "week", "month"], selected: context.value("by")),
                FieldView(label: "Break down by attribute", name: "breakdown", value: context.value("breakdown"), placeholder: "e.g. plan"),
                FieldView(label: "Top", name: "top", value: context.value("top"), placeholder: "25"),
            ],
            submit: "Show",
            datalists: [names]
        )
        // The 25 most frequent names unless the form asks for more: an app may have thousands.
        let top = context.value("top").isEmpty && context.value("by").isEmpty ? "25" : context.value("top")
        let options = ["type", "event", "by", "breakdown"].map { ($0, context.value($0)) } + [("top", top)]
        let by = context.value("by")
        let breakdown = context.value("breakdown")
        if !breakdown.isEmpty {
            view.sections.append(
                try await context.chart(
                    "Events by \(breakdown)",
                    report: "events",
                    options,
                    caption: "Events and people per value of \(breakdown).",
                    open: true
                ) {
                    table in
                    Chart.bars(
                        table.points(
                            label: { $0["value"].flatMap(\.stringValue) ?? "(none)" },
                            value: "events",
                            note: { "\(TableText.cell($0["people"])) people" }
                        ),
                        title: "Events by \(breakdown)"
                    )
                }
            )
        } else if !by.isEmpty {
            view.sections.append(
                try await context.chart("Events per \(by)", report: "events", options, caption: "Matching events per \(by).") { table in
                    Chart.columns(table.points(label: { TableText.cell($0[by]) }, value: "events"), title: "Events per \(by)")
                }
            )
        } else {
            view.sections.append(
                try await context.chart(
                    "Events by name",
                    report: "events",
                    options,
                    caption: "Matching events per name, most frequent first.",
                    open: true
                ) {
                    table in
                    Chart.bars(table.points(label: eventLabel, value: "events"), title: "Events by name")
                }
            )
        }
    }

    static func funnel(_ context: PageContext, _ view: inout PageView) async throws {
        view.title = "Funnels"
        view.period = context.periodView()
        let names = await eventNames(context)
        var steps = context.values("step")
        let fieldCount = max(3, steps.count + 1)
        let stepFields = (0..<fieldCount).map { index in
            FieldView(
                label: "Step \(index + 1)",
                name: "step",
                value: index < steps.count ? steps[index] : "",
                placeholder: "event name",
                list: names.id
            )
        }
        view.filters = context.form(
            stepFields + [
                FieldView(label: "Within", name: "within", value: context.value("within"), placeholder: "e.g. 7d"),
                FieldView(label: "Split by trait", name: "by-trait", value: context.value("by-trait"), placeholder: "e.g. plan"),
            ],
            submit: "Show funnel",
            datalists: [names]
        )
        guard steps.count >= 2 else {
            view.sections.append(SectionView(note: "Choose two or more steps, in order: the events a person does one after another."))
            return
        }
        steps = Array(steps.prefix(20))
        let options = steps.map { ("step", $0) } + [("within", context.value("within")), ("by-trait", context.value("by-trait"))]
        let byTrait = context.value("by-trait")
        view.sections.append(
            try await context.chart(
                "Conversion",
                report: "funnel",
                options,
                caption: "People reaching each step in order; the table gives drop-off and the median time from the step before.",
                open: true
            ) { table in
                Chart.bars(
                    table.points(
                        label: { row in
                            (byTrait.isEmpty ? "" : TableText.cell(row[byTrait]) + " · ")
                                + "\(TableText.cell(row["step"])). \(TableText.cell(row["event"]))"
                        },
                        value: "people",
                        note: { row in
                            let median =
                                row["median_seconds_from_previous"]?.doubleValue.map { ", median \(Self.duration($0)) from the step before" } ?? ""
                            return "\(TableText.cell(row["conversion_percent"]))% of step 1, \(TableText.cell(row["dropped"])) dropped\(median)"
                        }
                    ),
                    title: "Funnel conversion"
                )
            }
        )
    }

    static func retention(_ context: PageContext, _ view: inout PageView) async throws {
        view.title = "Retention"
        view.period = context.periodView()
        let names = await eventNames(context)
        view.filters = context.form(
            [
                FieldView(
                    label: "Cohort by first",
                    name: "start-event",
                    value: context.value("start-event"),
                    placeholder: "event name",
                    list: names.id
                ),
                FieldView(
                    label: "Came back with",
                    name: "return-event",
                    value: context.value("return-event"),
                    placeholder: "event name",
                    list: names.id
                ),
                .select("Per", "by", ["week", "day"], selected: context.value("by").isEmpty ? "week" : context.value("by")),
                FieldView(label: "Periods", name: "periods", value: context.value("periods"), placeholder: "8"),
            ],
            submit: "Show cohorts",
            datalists: [names]
        )
        guard !context.value("start-event").isEmpty, !context.value("return-event").isEmpty else {
            view.sections.append(SectionView(note: "Choose the event that starts a cohort and the event that counts as coming back."))
            return
        }
        let options = ["start-event", "return-event", "by", "periods"].map { ($0, context.value($0)) }
        view.sections.append(
            try await context.chart(
                "Cohorts",
                report: "retention",
                options,
                caption: "The share of each cohort that came back in each later period.",
                open: true
            ) {
                table in
                let periods = table.columns.filter { $0.hasPrefix("period_") && $0.hasSuffix("_percent") }
                return Chart.grid(
                    cohorts: table.rows.map { row in
                        (
                            TableText.cell(row["cohort"]), table.number(row, "people"),
                            periods.map { column -> Double? in
                                switch row[column] {
                                case nil, .null?: nil
                                default: table.number(row, column)
                                }
                            }
                        )
                    },
                    title: "Retention cohorts"
                )
            }
        )
    }

    static func sessions(_ context: PageContext, _ view: inout PageView) async throws {
        view.title = "Sessions"
        view.period = context.periodView()
        let source = context.value("source") == "sender" ? "sender" : "server"
        view.filters = context.form([.select("Sessions", "source", ["server", "sender"], selected: source)], submit: "Show")
        let labels = [
            "sessions": "Sessions", "people": "People", "median_seconds": "Median length (s)", "p90_seconds": "p90 length (s)",
            "events_per_session": "Events per session", "median_events": "Median events", "bounce_rate_percent": "Bounce rate (%)",
        ]
        // The sender's sessions read every event with a session id: asked for, not run on every visit.
        let (heading, note) =
            source == "sender"
            ? (
                "Sessions as the sender numbered them",
                "Each person's events grouped by the session id they carried (Userpilot's session, Userlike's session_id, Segment's context.sessionId); events without one are in none."
            )
            : ("Sessions that started in the period", "A session ends after the app's inactivity limit (30 minutes unless configured).")
        let (table, query) = try await context.report("sessions", [("source", source)])
        let row = table.rows.first ?? JSONObject()
        view.sections.append(
            SectionView(
                heading: heading,
                note: note + " CSV: /api/v1/apps/\(context.app)/reports/sessions?\(query)&format=csv",
                tiles: table.columns.map { TileView(label: labels[$0] ?? $0, value: TableText.cell(row[$0])) },
                table: TableView(table)
            )
        )
    }

    static func engagement(_ context: PageContext, _ view: inout PageView) async throws {
        view.title = "Engagement"
        view.period = context.periodView()
        let entity = context.value("entity").isEmpty ? "flow" : context.value("entity")
        view.filters = context.form(
            [
                .select("Entity", "entity", entities, selected: entity),
                FieldView(label: "One id", name: "id", value: context.value("id"), placeholder: "all"),
            ],
            submit: "Show"
        )
        let id = context.value("id")
        let options = [("entity", entity), ("id", id)]
        let caption = "Across UserGuiding, Userpilot, Userlike and User.com, as the README's engagement table maps them."
        let section: SectionView
        switch entity {
        case "nps":
            section = try await context.chart("NPS", report: "engagement", options, caption: caption, open: true) { table in
                table.rows.enumerated().map { index, row in
                    Chart.gauge(
                        ChartPoint(label: "\(TableText.cell(row["tool"])) \(TableText.cell(row["id"]))", value: table.number(row, "nps")),
                        index: index
                    )
                }.joined()
            }
        case "experiment":
            section = try await context.chart("Experiment variants", report: "engagement", options, caption: caption, open: true) { table in
                Chart.bars(
                    table.points(
                        label: { "\(TableText.cell($0["id"])) · \(TableText.cell($0["variant"]))" },
                        value: "people",
                        note: { "\(TableText.cell($0["completed_percent"]))% completed" }
                    ),
                    title: "Experiment variants"
                )
            }
        case "survey" where !id.isEmpty:
            section = try await context.chart("Answers to survey \(id)", report: "engagement", options, caption: caption, open: true) { table in
                let labelColumns = table.columns.filter { !["people", "answers", "percent", "share_percent"].contains($0) }
                let valueColumn = table.columns.first { ["people", "answers"].contains($0) } ?? table.columns.last ?? ""
                return Chart.bars(
                    table.points(label: { row in labelColumns.map { TableText.cell(row[$0]) }.joined(separator: " · ") }, value: valueColumn),
                    title: "Survey answers"
                )
            }
        default:
            let heading =
                entity == "chat" ? "The chat funnel" : "Who saw, started and completed each \(entity.replacingOccurrences(of: "_", with: " "))"
            section = try await context.chart(
                heading,
                report: "engagement",
                options,
                caption: caption + " Rates against those who saw it are in the table.",
                open: true,
                link: { column, value in
                    guard entity == "survey", column == "id", let id = value.map(TableText.cell) else { return nil }
                    return context.path + "?" + Console.encode(context.periodPairs + [("entity", "survey"), ("id", id)])
                },
                draw: { table in
                    // The stages are the report's count columns between `id` and the rates: seen, started, completed, …
                    let stages = table.columns.filter { !["entity", "tool", "id", "part"].contains($0) && !$0.hasSuffix("_percent") }
                    return Chart.stages(
                        table.rows.map { row in
                            // A part as short as it can be said, so that labels cut to fit still differ.
                            let part = ["checklist_task:": "task ", "survey_module:": "module ", "resource_center_article:": "article "]
                                .reduce(TableText.cell(row["part"])) { $0.replacingOccurrences(of: $1.key, with: $1.value) }
                            let label =
                                part.isEmpty
                                ? "\(TableText.cell(row["tool"])) \(TableText.cell(row["id"]))" : "\(TableText.cell(row["id"])) › \(part)"
                            return (label, stages.map { table.number(row, $0) })
                        },
                        stages: stages,
                        title: heading
                    )
                }
            )
        }
        view.sections.append(section)
    }

    static func people(_ context: PageContext, _ view: inout PageView) async throws {
        view.title = "People"
        view.period = context.periodView()
        let names = await eventNames(context)
        view.filters = context.form(
            [
                FieldView(label: "Did", name: "did", value: context.value("did"), placeholder: "event name", list: names.id),
                FieldView(label: "Where", name: "where", value: context.value("where"), placeholder: "price > 150"),
                FieldView(label: "Times", name: "times", value: context.value("times"), placeholder: ">=2"),
                FieldView(label: "Trait", name: "trait", value: context.value("trait"), placeholder: "plan = 'pro'"),
                FieldView(label: "Did not", name: "not-did", value: context.value("not-did"), placeholder: "event name", list: names.id),
            ],
            submit: "Find people",
            datalists: [names]
        )
        view.sections.append(
            SectionView(
                heading: "Open a profile",
                form: nil,
                search: SearchView(action: context.path, hidden: context.periodPairs.map { NameValue(name: $0.name, value: $0.value) })
            )
        )
        guard !context.value("did").isEmpty || !context.value("trait").isEmpty else {
            view.sections.append(
                SectionView(note: "Or find people by what they did (how often, with which attributes), by their traits, or by what they did not do.")
            )
            return
        }
        let options = ["did", "where", "times", "trait", "not-did"].map { ($0, context.value($0)) } + [("limit", "500")]
        let (table, query) = try await context.report("users", options)
        let api = "/api/v1/apps/\(Console.encode(context.app))/reports/users?\(query)"
        view.sections.append(
            SectionView(
                heading: "\(table.rows.count) people",
                note: "CSV: \(api)&format=csv",
                table: TableView(table, open: true) { column, value in
                    column == "user" ? value.map { context.personLink(TableText.cell($0)) } : nil
                }
            )
        )
    }

    static func person(_ context: PageContext, user: String, _ view: inout PageView) async throws {
        view.title = "Person \(user)"
        view.period = context.periodView()
        let profile = try await context.console.limiter.run(app: context.reader.token) {
            try await context.console.runner.user(.init(app: context.reader.token, user: user))
        }
        var tiles = [
            TileView(label: "User id", value: TableText.cell(profile["user_id"])),
            TileView(label: "Events", value: TableText.cell(profile["events"])),
            TileView(label: "First seen", value: TableText.cell(profile["first_seen"])),
            TileView(label: "Last seen", value: TableText.cell(profile["last_seen"])),
        ]
        if let company = profile["company_id"]?.stringValue { tiles.append(TileView(label: "Company", value: company)) }
        view.sections.append(SectionView(heading: "Profile", tiles: tiles))
        let traits = (profile["traits"]?.objectValue ?? JSONObject()).map { [$0.key, TableText.cell($0.value)] }
        view.sections.append(SectionView(heading: "Traits", table: TableView(columns: ["trait", "value"], rows: traits)))
        for (key, heading) in [("aliases", "Aliases"), ("merged", "Merged into this user"), ("sessions", "Sessions")] {
            guard let rows = profile[key]?.arrayValue, let first = rows.first?.objectValue else { continue }
            let columns = first.keys
            view.sections.append(
                SectionView(heading: heading, table: TableView(columns: columns, rows: rows.map { row in columns.map { TableText.cell(row[$0]) } }))
            )
        }
        let (timeline, _) = try await context.report("timeline", [("user", user), ("limit", "200")])
        view.sections.append(SectionView(heading: "Timeline (the latest 200 events in the period)", table: TableView(timeline, open: true)))
    }

    static func companies(_ context: PageContext, _ view: inout PageView) async throws {
        view.title = "Companies"
        view.period = context.periodView()
        view.sections.append(
            try await context.chart(
                "Most active companies",
                report: "companies",
                [("top", "25")],
                caption: "Active people per company in the period.",
                open: true,
                link: { column, value in column == "company" ? value.map { context.companyLink(TableText.cell($0)) } : nil },
                draw: { table in
                    Chart.bars(
                        table.points(
                            label: { row in row["name"]?.stringValue ?? TableText.cell(row["company"]) },
                            value: "active_people",
                            note: { "\(TableText.cell($0["events"])) events" }
                        ),
                        title: "Active people per company",
                        series: 2
                    )
                }
            )
        )
    }

    static func company(_ context: PageContext, company: String, _ view: inout PageView) async throws {
        view.title = "Company \(company)"
        view.period = context.periodView()
        let record = try await context.console.limiter.run(app: context.reader.token) {
            try await context.console.runner.company(.init(app: context.reader.token, company: company))
        }
        var tiles: [TileView] = []
        for (key, value) in record.objectValue ?? JSONObject() {
            switch value {
            case .array, .object: continue
            default: tiles.append(TileView(label: key.replacingOccurrences(of: "_", with: " "), value: TableText.cell(value)))
            }
        }
        view.sections.append(SectionView(heading: "Company", tiles: tiles))
        let traits = (record["traits"]?.objectValue ?? JSONObject()).map { [$0.key, TableText.cell($0.value)] }
        view.sections.append(SectionView(heading: "Traits", table: TableView(columns: ["trait", "value"], rows: traits)))
        for (key, value) in record.objectValue ?? JSONObject() {
            guard case .array(let rows) = value, let first = rows.first?.objectValue else { continue }
            let columns = first.keys
            var table = TableView(columns: columns, rows: rows.map { row in columns.map { TableText.cell(row[$0]) } })
            if let userColumn = columns.firstIndex(where: { $0 == "user_id" || $0 == "user" }) {
                for index in table.rows.indices {
                    table.rows[index].cells[userColumn].href = context.personLink(table.rows[index].cells[userColumn].text)
                }
            }
            view.sections.append(SectionView(heading: key.replacingOccurrences(of: "_", with: " ").capitalized, table: table))
        }
    }

    static func live(_ context: PageContext, _ view: inout PageView) {
        view.title = "Live"
        view.sections.append(
            SectionView(
                heading: "Incoming events",
                note: "Events appear as storage commits them, pushed from the server (server-sent events). The newest 200 stay on the page.",
                live: LiveView(stream: "\(context.base)/live/stream")
            )
        )
    }
}
