import CairnCore
import CairnMethods
import CairnPostgres
import CairnWire

/// `report.funnel`: how many people went through the steps in order, step by step, with the
/// drop-off and the median time between consecutive steps.
///
/// Each person counts once: their first step-1 event in the period starts their attempt;
/// each next step is their first event of it strictly after the previous step, within
/// `within` of the first step (default: no limit). People are resolved by identity, so a
/// funnel that starts anonymously and ends identified converts. With `by_trait`, one funnel
/// per value of that user trait.
public struct FunnelReport: Report {
    public typealias Method = ReportFunnel

    public var scope: ReportScope
    public var steps: [String]
    public var within: Int64?
    public var byTrait: String?

    public init(params: ReportFunnel.Params, now: Timestamp = .now()) throws(ReportError) {
        scope = try ReportScope(params.scope, now: now)
        steps = params.options.steps ?? []
        guard steps.count >= 2 else { throw ReportError(.missingOption, field: "steps", "must name at least two events") }
        guard !steps.contains(where: \.isEmpty) else { throw ReportError(.invalidEvent, field: "steps", "must each name an event; one is empty") }
        if let text = params.options.within {
            guard let seconds = TimeBound.seconds(text), seconds > 0 else {
                throw ReportError(.invalidWindow, field: "within", "must be a length such as 30m, 24h or 7d; found '\(text)'")
            }
            within = seconds * 1_000_000
        }
        byTrait = params.options.by_trait
    }

    public func run(on connection: PostgresConnection) throws -> ReportTable {
        try scope.run(on: connection) { token in
            for step in Set(steps) { try scope.requireEvent(step, field: "steps", token: token, on: connection) }
            var conditions = ["r.app_token = $1", "r.event_name = ANY($2::text[])", "r.person IS NOT NULL"]
            var parameters: [String?] = [token, PostgresArray.text(steps)]
            let time = scope.timeFilter(startingAt: 3)
            conditions += time.clauses.map { "r." + $0 }
            parameters += time.parameters
            let traitColumn: String
            if let byTrait {
                parameters.append(byTrait)
                traitColumn = "COALESCE(u.traits->>$\(parameters.count), '(none)')"
            } else {
                traitColumn = "''"
            }
            let rows = try connection.execute(
                """
                SELECT r.person, r.event_name, (extract(epoch FROM r.inserted_at) * 1000000)::bigint AS micros, \(traitColumn) AS trait_group
                FROM events_resolved r LEFT JOIN users u ON u.app_token = r.app_token AND u.user_id = r.person
                WHERE \(conditions.joined(separator: " AND "))
                ORDER BY r.person, 3
                """,
                parameters
            ).namedRows

            // Walk each person's step events in time order.
            var groups: [String: (reached: [Int], gaps: [[Int64]])] = [:]
            var index = 0
            while index < rows.count {
                let person = rows[index]["person"]
                let group = rows[index]["trait_group"] ?? ""
                var times: [(String, Int64)] = []
                while index < rows.count, rows[index]["person"] == person {
                    if let name = rows[index]["event_name"], let time = rows[index]["micros", as: Int64.self] { times.append((name, time)) }
                    index += 1
                }
                var state = groups[group] ?? (Array(repeating: 0, count: steps.count), Array(repeating: [], count: steps.count))
                var reached = 0
                var start: Int64 = 0
                var previous: Int64 = 0
                for (name, time) in times where reached < steps.count && name == steps[reached] {
                    if reached == 0 {
                        start = time
                    } else {
                        guard time > previous else { continue }
                        if let within, time - start > within { break }
                        state.gaps[reached].append(time - previous)
                    }
                    previous = time
                    state.reached[reached] += 1
                    reached += 1
                }
                groups[group] = state
            }
            var table: [[JSON]] = []
            for group in groups.keys.sorted() {
                let state = groups[group]!
                for (position, step) in steps.enumerated() {
                    let people = state.reached[position]
                    let first = state.reached[0]
                    let before = position == 0 ? people : state.reached[position - 1]
                    let gaps = state.gaps[position].sorted()
                    let median: JSON =
                        gaps.isEmpty
                        ? .null
                        : .double(
                            Double(gaps.count % 2 == 1 ? gaps[gaps.count / 2] : (gaps[gaps.count / 2 - 1] + gaps[gaps.count / 2]) / 2) / 1_000_000
                        )
                    var row: [JSON] = []
                    if byTrait != nil { row.append(.string(group)) }
                    row += [
                        .int(Int64(position + 1)), .string(step), .int(Int64(people)),
                        .double(first == 0 ? 0 : (Double(people) * 10_000 / Double(first)).rounded() / 100),
                        .int(Int64(before - people)), median,
                    ]
                    table.append(row)
                }
            }
            let columns = (byTrait.map { [$0] } ?? []) + ["step", "event", "people", "conversion_percent", "dropped", "median_seconds_from_previous"]
            return ReportTable(columns: columns, rows: table)
        }
    }
}
