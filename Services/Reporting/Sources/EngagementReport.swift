import CairnCore
import CairnMethods
import CairnPostgres
import CairnRollups
import CairnWire

/// `report.engagement`: one view of in-app engagement across tools (``EngagementCatalog``):
/// each entity reports the people who saw, started, completed and dismissed it, and the
/// rates against those who saw it. Surveys add the answer distribution per question; NPS
/// adds promoters (9–10), passives (7–8), detractors (0–6) and the score, from each
/// person's latest answer; experiments add the split per variant with completion per variant.
///
/// Events are classified in PostgreSQL by `cairn_engagement_stages`, generated from the catalog.
/// Over all time the stage counts come from `rollup_engagement_people`; over a period, from
/// the events.
public struct EngagementReport: Report {
    public typealias Method = ReportEngagement

    public typealias Entity = EngagementCatalog.Entity

    public var scope: ReportScope
    public var entity: Entity
    public var id: String?

    public init(params: ReportEngagement.Params, now: Timestamp = .now()) throws(ReportError) {
        scope = try ReportScope(params.scope, now: now)
        let name = params.options.entity ?? ""
        guard let entity = Entity(rawValue: name) else {
            throw ReportError(
                .invalidEntity,
                field: "entity",
                "must be one of \(Entity.allCases.map(\.rawValue).joined(separator: ", ")); found '\(name)'"
                    + Suggestion.phrase(for: name, among: Entity.allCases.map(\.rawValue))
            )
        }
        self.entity = entity
        id = params.options.id
    }

    /// One event as the report reads it.
    struct Sighting {
        var person: String
        /// The tool the entity lives in: its ids are that tool's, so ids never mix across tools.
        var tool: String
        var id: String
        /// The part of the entity it is a sighting of (`survey_module:49`), or empty.
        var part: String
        var stages: Set<String>
        var time: Int64
        var metadata: JSONObject
    }

    public func run(on connection: PostgresConnection) throws -> ReportTable {
        try scope.run(on: connection) { token in
            switch entity {
            case .nps: return nps(try sightings(token: token, on: connection))
            case .experiment:
                return experiment(try sightings(token: token, on: connection), runs: try experiences(token: token, on: connection))
            case .survey where id != nil: return answers(try sightings(token: token, on: connection))
            default: return funnel(try stagePeople(token: token, on: connection))
            }
        }
    }

    /// The app's events in the period that can be this entity's, classified, as a subquery
    /// with `person`, `tool`, `id` and `stages` (plus `extra` columns). Parameters: `$1` the
    /// app, `$2` the entity, `$3` the id or NULL, then the name filters and the period. Only
    /// events whose names can match reach the classifier, so indexes on names apply.
    private func classifiedEvents(token: String, extra: String = "", after: Int64? = nil) -> (sql: String, parameters: [String?]) {
        var parameters: [String?] = [token, entity.rawValue, id]
        // LIKE patterns: the prefix literally (`_` escaped), then ':'.
        let patterns = EngagementCatalog.userpilotPrefixes.filter { $0.entity == entity }.map {
            $0.prefix.split(separator: "_", omittingEmptySubsequences: false).joined(separator: "\\_") + ":%"
        }
        parameters.append(PostgresArray.text(Array(Set(EngagementCatalog.namedEvents.filter { $0.entity == entity }.map(\.event))).sorted()))
        var alternatives = ["r.event_name = ANY($\(parameters.count)::text[])"]
        for pattern in patterns {
            parameters.append(pattern)
            alternatives.append("(r.event_type = 'interaction' AND r.event_name LIKE $\(parameters.count))")
        }
        let time = scope.timeFilter(startingAt: parameters.count + 1, column: "r.inserted_at")
        parameters += time.parameters
        let conditions =
            [
                "r.app_token = $1", "r.person IS NOT NULL", "(" + alternatives.joined(separator: " OR ") + ")",
                "octet_length(cairn_engagement_id($2, r.event_type, r.event_name, r.metadata)) + octet_length(cairn_engagement_part(r.event_type, r.event_name, r.metadata)) <= \(Rollups.maximumEngagementIdBytes)",
            ] + time.clauses
            + (after.map { ["r.stored_xid > \($0)"] } ?? [])
        let sql = """
            (SELECT r.person, cairn_engagement_tool($2, r.event_type) AS tool, cairn_engagement_id($2, r.event_type, r.event_name, r.metadata) AS id,
                    cairn_engagement_part(r.event_type, r.event_name, r.metadata) AS part,
                    cairn_engagement_stages($2, r.event_type, r.event_name, r.metadata) AS stages\(extra)
             FROM events_resolved r
             WHERE \(conditions.joined(separator: " AND "))) AS classified
            """
        return (sql, parameters)
    }

    /// Every stage as rows, to spread a sighting's stages without a set-returning function
    /// beside the resolved events' correlated subquery (docs/scale.md). Catalog constants only.
    static let stageRows = "(VALUES " + EngagementCatalog.allStages.map { "('\($0)')" }.joined(separator: ", ") + ") AS stages(stage)"

    /// People per stage of an entity (`part` empty) or of one part of it (a checklist's task).
    typealias StageCount = (tool: String, id: String, part: String, stage: String, people: Int)

    /// People per (tool, id, part, stage). The counts of an entity with parts are of everyone
    /// who had a sighting of it or of any of its parts (``wholeCTEs``).
    private func stagePeople(token: String, on connection: PostgresConnection) throws -> [StageCount] {
        let allTime = scope.since == nil && scope.until == nil
        // All time: counted ahead, plus the people of the unfolded tail not counted there yet.
        let events =
            allTime
            ? classifiedEvents(token: token, after: try FollowerCheckpoint.read(app: token, on: connection)) : classifiedEvents(token: token)
        let classifiedPeople = """
            SELECT DISTINCT tool, id, part, stage, person FROM \(events.sql) JOIN \(Self.stageRows) ON stages.stage = ANY(classified.stages)
            WHERE $3::text IS NULL OR id = $3
            """
        let rows: [(count: StageCount, whole: Bool)]
        if allTime {
            // The rollup holds each person once per stage: it is counted as it stands, and a
            // person of the tail only when the rollup lacks them (no hash of every person).
            let counts = try Self.stageCounts(
                connection.execute(
                    """
                    SELECT tool, id, part, stage, sum(people)::bigint AS people, false AS whole FROM (
                        SELECT tool, id, part, stage, count(*) AS people FROM rollup_engagement_people
                        WHERE app_token = $1 AND entity = $2 AND ($3::text IS NULL OR id = $3)
                        GROUP BY 1, 2, 3, 4
                        UNION ALL
                        SELECT t.tool, t.id, t.part, t.stage, count(*) FROM (\(classifiedPeople)) t
                        WHERE NOT EXISTS (
                            SELECT 1 FROM rollup_engagement_people p
                            WHERE p.app_token = $1 AND p.entity = $2 AND p.tool = t.tool AND p.id = t.id AND p.part = t.part AND p.stage = t.stage
                              AND p.person = t.person
                        )
                        GROUP BY 1, 2, 3, 4
                    ) AS folded_and_tail
                    GROUP BY 1, 2, 3, 4
                    """,
                    events.parameters
                )
            )
            // Wholes need every person of the rollup: read only when some entity has parts.
            guard counts.contains(where: { !$0.count.part.isEmpty }) else { return counts.map(\.count) }
            rows =
                counts
                + (try Self.stageCounts(
                    connection.execute(
                        """
                        WITH people AS (
                            SELECT tool, id, part, stage, person FROM rollup_engagement_people
                            WHERE app_token = $1 AND entity = $2 AND ($3::text IS NULL OR id = $3)
                            UNION \(classifiedPeople)
                        ), \(wholeCTEs)
                        \(Self.wholeRows)
                        """,
                        events.parameters
                    )
                ))
        } else {
            // A period: the events are classified once, for the entities' own rows and their wholes.
            rows = try Self.stageCounts(
                connection.execute(
                    """
                    WITH people AS MATERIALIZED (\(classifiedPeople)), \(wholeCTEs)
                    SELECT tool, id, part, stage, count(*) AS people, false AS whole FROM people GROUP BY 1, 2, 3, 4
                    UNION ALL
                    \(Self.wholeRows)
                    """,
                    events.parameters
                )
            )
        }
        // An entity's whole replaces its own row.
        let replaced = Set(rows.filter(\.whole).map { $0.count.tool + "\u{1F}" + $0.count.id })
        return rows.filter { $0.whole || !($0.count.part.isEmpty && replaced.contains($0.count.tool + "\u{1F}" + $0.count.id)) }.map(\.count)
    }

    /// Rows of `tool, id, part, stage, people, whole`.
    private static func stageCounts(_ result: PostgresResult) -> [(count: StageCount, whole: Bool)] {
        result.namedRows.map { row in
            (
                (row["tool"] ?? "", row["id"] ?? "", row["part"] ?? "", row["stage"] ?? "", row["people", as: Int.self] ?? 0),
                row["whole"] == "t"
            )
        }
    }

    /// Per stage, the people of each entity's whole (``wholeCTEs``), as rows of ``stageCounts(_:)``.
    private static let wholeRows =
        "SELECT tool, id, '' AS part, stage, count(DISTINCT person) AS people, true AS whole FROM whole WHERE stage IS NOT NULL GROUP BY 1, 2, 4"

    /// The CTEs that give the whole of each entity that has parts, over a CTE `people` of
    /// (tool, id, part, stage, person) (Userpilot's `parent_id`: a checklist's tasks, a survey's
    /// modules, a resource center's articles): a person counts once per stage across the entity
    /// and its parts. A part seen counts as the whole seen; a part started or completed, as the
    /// whole started (a checklist is completed by its own event, not by one task). A survey has
    /// no events of its own: it is completed by a person who completed every one of its
    /// modules, and dismissed with any of them.
    private var wholeCTEs: String {
        let dismissedPart = entity == .survey ? "'dismissed'" : "NULL"
        let surveyCompleted =
            entity == .survey
            ? """
            UNION
            SELECT m.tool, m.id, 'completed', m.person FROM members m JOIN parts ON parts.tool = m.tool AND parts.id = m.id
            WHERE m.part <> '' AND m.stage = 'completed'
            GROUP BY m.tool, m.id, m.person, parts.n
            HAVING count(DISTINCT m.part) = parts.n
            """ : ""
        return """
            members AS (
                SELECT p.tool, p.id, p.part, p.stage, p.person FROM people p
                JOIN (SELECT DISTINCT tool, id FROM people WHERE part <> '') parented ON parented.tool = p.tool AND parented.id = p.id
            ),
            parts AS (SELECT tool, id, count(DISTINCT part) AS n FROM members WHERE part <> '' GROUP BY 1, 2),
            whole AS (
                SELECT tool, id,
                       CASE WHEN part = '' THEN stage WHEN stage = 'completed' THEN 'started' WHEN stage = 'dismissed' THEN \(dismissedPart) ELSE stage END
                           AS stage,
                       person
                FROM members
                \(surveyCompleted)
            )
            """
    }

    /// Every sighting of the entity in the period, oldest first, with its attributes.
    private func sightings(token: String, on connection: PostgresConnection) throws -> [Sighting] {
        let events = classifiedEvents(
            token: token,
            extra: ", (extract(epoch FROM r.inserted_at) * 1000000)::bigint AS time, r.internal_event_id, r.metadata::text AS metadata"
        )
        let rows = try connection.execute(
            """
            SELECT person, tool, id, part, array_to_string(stages, ',') AS stages, time, metadata FROM \(events.sql)
            WHERE stages IS NOT NULL AND ($3::text IS NULL OR id = $3)
            ORDER BY time, internal_event_id
            """,
            events.parameters
        ).namedRows
        return rows.compactMap { row in
            guard let person = row["person"], let time = row["time", as: Int64.self] else { return nil }
            let stages = Set((row["stages"] ?? "").split(separator: ",").map(String.init))
            let metadata = row["metadata", as: JSON.self]?.objectValue ?? JSONObject()
            return Sighting(
                person: person,
                tool: row["tool"] ?? "",
                id: row["id"] ?? "",
                part: row["part"] ?? "",
                stages: stages,
                time: time,
                metadata: metadata
            )
        }
    }

    private func rate(_ part: Int, _ whole: Int) -> JSON {
        .double(whole == 0 ? 0 : (Double(part) * 10_000 / Double(whole)).rounded() / 100)
    }

    /// Seen, started, completed and dismissed people per id, with rates against seen; an
    /// entity with parts is followed by a row per part (`part`: `checklist_task:11`).
    private func funnel(_ counts: [StageCount]) -> ReportTable {
        var people: [[String]: [String: Int]] = [:]
        for count in counts { people[[count.tool, count.id, count.part], default: [:]][count.stage] = count.people }
        let extra = entity == .chat ? ["rated"] : []
        let stages = ["seen", "started", "completed", "dismissed"] + extra
        var rows: [[JSON]] = []
        for key in people.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
            let seen = people[key]?["seen"] ?? 0
            var row: [JSON] = [.string(entity.rawValue), .string(key[0]), .string(key[1]), .string(key[2])]
            for stage in stages { row.append(.int(Int64(people[key]?[stage] ?? 0))) }
            for stage in stages.dropFirst() { row.append(rate(people[key]?[stage] ?? 0, seen)) }
            rows.append(row)
        }
        return ReportTable(columns: ["entity", "tool", "id", "part"] + stages + stages.dropFirst().map { "\($0)_percent" }, rows: rows)
    }

    /// From each person's latest score per NPS id: promoters, passives, detractors and the score.
    private func nps(_ sightings: [Sighting]) -> ReportTable {
        var latest: [String: [String: (time: Int64, score: Int)]] = [:]
        for sighting in sightings {
            guard let value = sighting.metadata["score"], let score = value.intValue ?? value.stringValue.flatMap({ Int64($0) }),
                (0...10).contains(score)
            else { continue }
            let key = sighting.tool + "\u{1F}" + sighting.id
            if let current = latest[key]?[sighting.person], current.time > sighting.time { continue }
            latest[key, default: [:]][sighting.person] = (sighting.time, Int(score))
        }
        let rows: [[JSON]] = latest.keys.sorted().map { id in
            let scores = latest[id]!.values.map(\.score)
            let promoters = scores.filter { $0 >= 9 }.count
            let detractors = scores.filter { $0 <= 6 }.count
            let passives = scores.count - promoters - detractors
            let score = scores.isEmpty ? 0 : (Double(promoters - detractors) * 100 / Double(scores.count)).rounded()
            let parts = id.split(separator: "\u{1F}", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            return [
                .string(parts[0]), .string(parts.count > 1 ? parts[1] : ""), .int(Int64(scores.count)), .int(Int64(promoters)), .int(Int64(passives)),
                .int(Int64(detractors)), .int(Int64(score)),
            ]
        }
        return ReportTable(columns: ["tool", "id", "respondents", "promoters", "passives", "detractors", "nps"], rows: rows)
    }

    /// The flow (Userpilot experience) each experiment ran, and who completed it.
    struct ExperimentRuns {
        /// Per experiment id: the experience whose events came with its own for the most people.
        var experience: [String: String] = [:]
        /// Per experience id: the people who completed it.
        var completed: [String: Set<String>] = [:]
    }

    /// Userpilot sends a flow's `experience:*` events together with the `experiment:*` events of
    /// the experiment it is part of; the documents name no other link. A person's experience
    /// event within 10 seconds of their experiment event is taken as its run; each experiment
    /// is linked to the experience most of its people ran (the lowest id on a tie).
    private func experiences(token: String, on connection: PostgresConnection) throws -> ExperimentRuns {
        var parameters: [String?] = [token]
        let time = scope.timeFilter(startingAt: 2, column: "r.inserted_at")
        parameters += time.parameters
        if let id { parameters.append(id) }
        let period = time.clauses.map { " AND " + $0 }.joined()
        func interactions(_ prefix: String, _ extra: String = "") -> String {
            """
            SELECT r.person, split_part(r.event_name, ':', 2) AS id, split_part(r.event_name, ':', 3) AS status, r.inserted_at FROM events_resolved r
            WHERE r.app_token = $1 AND r.event_type = 'interaction' AND r.event_name LIKE '\(prefix):%' AND r.person IS NOT NULL\(period)\(extra)
            """
        }
        let experimentFilter = id == nil ? "" : " AND split_part(r.event_name, ':', 2) = $\(parameters.count)"
        let rows = try connection.execute(
            """
            WITH x AS (\(interactions("experiment", experimentFilter))), f AS (\(interactions("experience")))
            SELECT x.id AS experiment, f.id AS experience, count(DISTINCT x.person) AS people
            FROM x JOIN f ON f.person = x.person AND f.inserted_at BETWEEN x.inserted_at - interval '10 seconds' AND x.inserted_at + interval '10 seconds'
            GROUP BY 1, 2
            """,
            parameters
        ).namedRows
        var runs = ExperimentRuns()
        var best: [String: (people: Int, experience: String)] = [:]
        for row in rows {
            guard let experiment = row["experiment"], let experience = row["experience"], let people = row["people", as: Int.self] else { continue }
            if let current = best[experiment], current.people > people || (current.people == people && !Self.idOrder(experience, current.experience))
            {
                continue
            }
            best[experiment] = (people, experience)
        }
        runs.experience = best.mapValues(\.experience)
        let linked = Set(runs.experience.values)
        guard !linked.isEmpty else { return runs }
        var completedParameters: [String?] = [token]
        completedParameters += time.parameters
        completedParameters.append(PostgresArray.text(linked.sorted()))
        let completions = try connection.execute(
            """
            SELECT DISTINCT person, id FROM (\(interactions("experience"))) f
            WHERE f.status = 'COMPLETED' AND f.id = ANY($\(completedParameters.count)::text[])
            """,
            completedParameters
        ).namedRows
        for row in completions {
            guard let person = row["person"], let experience = row["id"] else { continue }
            runs.completed[experience, default: []].insert(person)
        }
        return runs
    }

    /// Whether id `a` comes before `b`: numerically when both are numbers (9 before 10), else as text.
    static func idOrder(_ a: String, _ b: String) -> Bool {
        if let x = Int64(a), let y = Int64(b) { return x < y }
        return a < b
    }

    /// People per experiment and variant, and how many of them completed the experiment; with
    /// the experience (flow) it ran, and how many of each variant completed that flow.
    private func experiment(_ sightings: [Sighting], runs: ExperimentRuns) -> ReportTable {
        var variant: [String: [String: String]] = [:]
        for sighting in sightings {
            if let name = sighting.metadata["variant"]?.stringValue { variant[sighting.id, default: [:]][sighting.person] = name }
        }
        var people: [String: [String: (seen: Set<String>, completed: Set<String>)]] = [:]
        for sighting in sightings {
            let group = variant[sighting.id]?[sighting.person] ?? "(none)"
            var entry = people[sighting.id, default: [:]][group] ?? ([], [])
            entry.seen.insert(sighting.person)
            if sighting.stages.contains("completed") { entry.completed.insert(sighting.person) }
            people[sighting.id, default: [:]][group] = entry
        }
        var rows: [[JSON]] = []
        for id in people.keys.sorted() {
            let total = people[id]!.values.reduce(0) { $0 + $1.seen.count }
            let experience = runs.experience[id]
            for group in people[id]!.keys.sorted() {
                let entry = people[id]![group]!
                let ran = experience.map { entry.seen.intersection(runs.completed[$0] ?? []).count } ?? 0
                rows.append([
                    .string(id), .string(group), .int(Int64(entry.seen.count)), rate(entry.seen.count, total),
                    .int(Int64(entry.completed.count)), rate(entry.completed.count, entry.seen.count),
                    .optional(experience), experience == nil ? .null : .int(Int64(ran)), experience == nil ? .null : rate(ran, entry.seen.count),
                ])
            }
        }
        return ReportTable(
            columns: [
                "id", "variant", "people", "split_percent", "completed", "completed_percent", "experience", "experience_completed",
                "experience_completed_percent",
            ],
            rows: rows
        )
    }

    /// The answer distribution per question of one survey.
    private func answers(_ sightings: [Sighting]) -> ReportTable {
        var counts: [String: [String: Int]] = [:]
        for sighting in sightings where sighting.stages.contains("started") {
            // Userpilot's own example leaves `survey_question` empty: the module names the question then.
            let question =
                [sighting.metadata["survey_question"]?.stringValue, sighting.metadata["question_id"]?.stringValue, sighting.part]
                .compactMap { $0 }.first { !$0.isEmpty } ?? ""
            let answer =
                ["score", "emoji_score", "choices", "feedback"].lazy.compactMap { sighting.metadata[$0] }.first.map(ScalarText.of) ?? "(none)"
            counts[question, default: [:]][answer, default: 0] += 1
        }
        var rows: [[JSON]] = []
        for question in counts.keys.sorted() {
            let total = counts[question]!.values.reduce(0, +)
            for (answer, count) in counts[question]!.sorted(by: { ($1.value, $0.key) < ($0.value, $1.key) }) {
                rows.append([.string(question), .string(answer), .int(Int64(count)), rate(count, total)])
            }
        }
        return ReportTable(columns: ["question", "answer", "answers", "percent"], rows: rows)
    }
}

/// A scalar as a report groups by it.
enum ScalarText {
    static func of(_ value: JSON) -> String {
        switch value {
        case .string(let text): return text
        case .int(let number): return String(number)
        case .double(let number): return String(number)
        case .number(let digits): return digits
        case .bool(let flag): return flag ? "true" : "false"
        default: return value.serializedString()
        }
    }
}
