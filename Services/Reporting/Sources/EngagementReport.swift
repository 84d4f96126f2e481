import CairnCore
import CairnPostgres
import CairnWire

/// `report.engagement`: one view of in-app engagement across tools. A UserGuiding guide and
/// a Userpilot flow (experience) are both flows; each entity reports the people who saw,
/// started, completed and dismissed it, and the rates against those who saw it.
///
/// | entity | Userpilot (`{entity}:{id}:{STATUS}`) | UserGuiding / Userlike |
/// |---|---|---|
/// | flow | `experience`, `experience_step` | Guide Started (seen, started), Guide Completed, Guide Button Click with `dismiss-guide` |
/// | checklist | `checklist`, `checklist_task` | Checklist Item Trigger, Checklist Item Url Click (seen, started), Checklist Completed |
/// | survey | `survey_module` | Survey Shown (seen), Survey Question Answer (started) |
/// | nps | `nps` | Survey Question Answer with `NPS Rating` |
/// | resource_center | `resource_center`, `resource_center_article` | Resource Center … events (seen, started) |
/// | experiment | `experiment` (with `variant`) | — |
/// | hotspot | — | Hotspot Interacted (seen), Hotspot Button Click (started; dismissed for dismiss/close) |
/// | banner | — | Banner Button Click (seen, started) |
/// | chat | — | Userlike: button_displayed, chat_requested, chat_started, rating_submit |
///
/// Userpilot statuses map as: SEEN → seen; STARTED, ENGAGED, SUBMITTED_* → started;
/// COMPLETED → completed (and started); DISMISSED → dismissed. Every stage implies seen.
/// Surveys add the answer distribution per question; NPS adds promoters (9–10), passives
/// (7–8), detractors (0–6) and the score, from each person's latest answer; experiments add
/// the split per variant with completion per variant.
public struct EngagementReport: Sendable {
    public enum Entity: String, Sendable, CaseIterable {
        case flow, checklist, survey, nps, resource_center, experiment, hotspot, banner, chat
    }

    public var scope: ReportScope
    public var entity: Entity
    public var id: String?

    public init(params: JSON, now: Timestamp = .now()) throws(RPCError) {
        scope = try ReportScope(params: params, now: now)
        let name = params["entity"]?.stringValue ?? ""
        guard let entity = Entity(rawValue: name) else {
            throw RPCError.application("invalid_entity", "--entity must be one of \(Entity.allCases.map(\.rawValue).joined(separator: ", ")); found '\(name)'"
                                       + Suggestion.phrase(for: name, among: Entity.allCases.map(\.rawValue)))
        }
        self.entity = entity
        id = params["id"]?.stringValue
    }

    /// One event as the report reads it.
    struct Sighting {
        var person: String
        /// The tool the entity lives in: its ids are that tool's, so ids never mix across tools.
        var tool: String
        var id: String
        var stages: Set<String>
        var time: Int64
        var metadata: JSONObject
    }

    static let prefixes: [Entity: [String]] = [
        .flow: ["experience", "experience_step"], .checklist: ["checklist", "checklist_task"], .survey: ["survey_module"],
        .nps: ["nps"], .resource_center: ["resource_center", "resource_center_article"], .experiment: ["experiment"],
    ]

    static let namedEvents: [Entity: [String]] = [
        .flow: ["Guide Started", "Guide Completed", "Guide Button Click"],
        .checklist: ["Checklist Item Trigger", "Checklist Item Url Click", "Checklist Completed"],
        .survey: ["Survey Shown", "Survey Question Answer"],
        .nps: ["Survey Question Answer"],
        .resource_center: ["Resource Center Guide Trigger", "Resource Center Survey Trigger", "Resource Center Checklist Guide Trigger",
                           "Resource Center Checklist Item Url Click", "Resource Center External URL Click", "Resource Center Article Link Click"],
        .hotspot: ["Hotspot Interacted", "Hotspot Button Click"],
        .banner: ["Banner Button Click"],
        .chat: ["button_displayed", "chat_requested", "chat_started", "rating_submit"],
    ]

    /// The stages a Userpilot interaction status stands for.
    static func stages(ofStatus status: String) -> Set<String> {
        switch status {
        case "SEEN": return ["seen"]
        case "COMPLETED": return ["seen", "started", "completed"]
        case "DISMISSED": return ["seen", "dismissed"]
        default: return ["seen", "started"]  // STARTED, ENGAGED, SUBMITTED_SCORE, SUBMITTED_FEEDBACK, …
        }
    }

    /// The id and stages of a named (UserGuiding or Userlike) event, or nil when it is not this entity's.
    func classify(name: String, metadata: JSONObject) -> (id: String, stages: Set<String>)? {
        func value(_ key: String) -> String { metadata[key]?.stringValue ?? metadata[key].map { $0.serializedString() } ?? "" }
        switch (entity, name) {
        case (.flow, "Guide Started"): return (value("guide_id"), ["seen", "started"])
        case (.flow, "Guide Completed"): return (value("guide_id"), ["seen", "started", "completed"])
        case (.flow, "Guide Button Click"):
            return metadata["action"]?.stringValue == "dismiss-guide" ? (value("guide_id"), ["seen", "dismissed"]) : nil
        case (.checklist, "Checklist Completed"): return (value("checklist_id"), ["seen", "started", "completed"])
        case (.checklist, _): return (value("checklist_id"), ["seen", "started"])
        case (.survey, "Survey Shown"): return (value("survey_id"), ["seen"])
        case (.survey, "Survey Question Answer"): return (value("survey_id"), ["seen", "started"])
        case (.nps, "Survey Question Answer"):
            return metadata["question_type"]?.stringValue == "NPS Rating" ? (value("survey_id"), ["seen", "started", "completed"]) : nil
        case (.resource_center, _): return (value("resource_center_id"), ["seen", "started"])
        case (.hotspot, "Hotspot Interacted"): return (value("hotspot_group_id"), ["seen"])
        case (.hotspot, "Hotspot Button Click"):
            let action = metadata["action"]?.stringValue ?? ""
            return (value("hotspot_group_id"), action == "dismiss-hotspot" || action == "close-hotspot" ? ["seen", "dismissed"] : ["seen", "started"])
        case (.banner, _): return (value("banner_id"), ["seen", "started"])
        case (.chat, let event):
            let stage = ["button_displayed": "seen", "chat_requested": "started", "chat_started": "completed", "rating_submit": "rated"][event] ?? "seen"
            let implied: [String: Set<String>] = ["seen": ["seen"], "started": ["seen", "started"], "completed": ["seen", "started", "completed"], "rated": ["rated"]]
            return (metadata["widget_id"].map { ScalarText.of($0) } ?? "", implied[stage] ?? [stage])
        default: return nil
        }
    }

    public func run(on connection: PostgresConnection) throws -> ReportTable {
        try scope.run(on: connection) { token in
            var conditions = ["app_token = $1", "person IS NOT NULL"]
            var parameters: [String?] = [token, PostgresArray.text(Self.prefixes[entity] ?? []), PostgresArray.text(Self.namedEvents[entity] ?? [])]
            let time = scope.timeFilter(startingAt: 4)
            conditions += time.clauses
            parameters += time.parameters
            let rows = try connection.execute("""
                SELECT person, event_type, event_name, (extract(epoch FROM inserted_at) * 1000000)::bigint, metadata::text
                FROM events_resolved
                WHERE \(conditions.joined(separator: " AND "))
                  AND ((event_type = 'interaction' AND split_part(event_name, ':', 1) = ANY($2::text[])) OR event_name = ANY($3::text[]))
                ORDER BY 4
                """, parameters).rows
            var sightings: [Sighting] = []
            for row in rows {
                guard let person = row[0], let name = row[2], let time = row[3].flatMap({ Int64($0) }) else { continue }
                let metadata = (try? JSONParser.parse(row[4] ?? "{}"))?.objectValue ?? JSONObject()
                if row[1] == "interaction" {
                    let parts = name.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
                    guard parts.count == 3 else { continue }
                    sightings.append(Sighting(person: person, tool: "userpilot", id: parts[1], stages: Self.stages(ofStatus: parts[2]), time: time, metadata: metadata))
                } else if let (id, stages) = classify(name: name, metadata: metadata) {
                    sightings.append(Sighting(person: person, tool: entity == .chat ? "userlike" : "userguiding", id: id, stages: stages, time: time, metadata: metadata))
                }
            }
            if let id { sightings = sightings.filter { $0.id == id } }
            switch entity {
            case .nps: return nps(sightings)
            case .experiment: return experiment(sightings)
            case .survey where id != nil: return answers(sightings)
            default: return funnel(sightings)
            }
        }
    }

    private func rate(_ part: Int, _ whole: Int) -> JSON {
        .double(whole == 0 ? 0 : (Double(part) * 10_000 / Double(whole)).rounded() / 100)
    }

    /// Seen, started, completed and dismissed people per id, with rates against seen.
    private func funnel(_ sightings: [Sighting]) -> ReportTable {
        var people: [String: [String: Set<String>]] = [:]
        for sighting in sightings {
            for stage in sighting.stages { people[sighting.tool + "\u{1F}" + sighting.id, default: [:]][stage, default: []].insert(sighting.person) }
        }
        let extra = entity == .chat ? ["rated"] : []
        let stages = ["seen", "started", "completed", "dismissed"] + extra
        var rows: [[JSON]] = []
        for id in people.keys.sorted() {
            let seen = people[id]?["seen"]?.count ?? 0
            let parts = id.split(separator: "\u{1F}", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            var row: [JSON] = [.string(entity.rawValue), .string(parts[0]), .string(parts.count > 1 ? parts[1] : "")]
            for stage in stages { row.append(.int(Int64(people[id]?[stage]?.count ?? 0))) }
            for stage in stages.dropFirst() { row.append(rate(people[id]?[stage]?.count ?? 0, seen)) }
            rows.append(row)
        }
        return ReportTable(columns: ["entity", "tool", "id"] + stages + stages.dropFirst().map { "\($0)_percent" }, rows: rows)
    }

    /// From each person's latest score per NPS id: promoters, passives, detractors and the score.
    private func nps(_ sightings: [Sighting]) -> ReportTable {
        var latest: [String: [String: (time: Int64, score: Int)]] = [:]
        for sighting in sightings {
            guard let value = sighting.metadata["score"], let score = value.intValue ?? value.stringValue.flatMap({ Int64($0) }), (0...10).contains(score) else { continue }
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
            return [.string(parts[0]), .string(parts.count > 1 ? parts[1] : ""), .int(Int64(scores.count)), .int(Int64(promoters)), .int(Int64(passives)), .int(Int64(detractors)), .int(Int64(score))]
        }
        return ReportTable(columns: ["tool", "id", "respondents", "promoters", "passives", "detractors", "nps"], rows: rows)
    }

    /// People per experiment and variant, and how many of them completed.
    private func experiment(_ sightings: [Sighting]) -> ReportTable {
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
            for group in people[id]!.keys.sorted() {
                let entry = people[id]![group]!
                rows.append([.string(id), .string(group), .int(Int64(entry.seen.count)), rate(entry.seen.count, total),
                             .int(Int64(entry.completed.count)), rate(entry.completed.count, entry.seen.count)])
            }
        }
        return ReportTable(columns: ["id", "variant", "people", "split_percent", "completed", "completed_percent"], rows: rows)
    }

    /// The answer distribution per question of one survey.
    private func answers(_ sightings: [Sighting]) -> ReportTable {
        var counts: [String: [String: Int]] = [:]
        for sighting in sightings where sighting.stages.contains("started") {
            let question = sighting.metadata["survey_question"]?.stringValue ?? sighting.metadata["question_id"]?.stringValue ?? ""
            let answer = ["score", "emoji_score", "choices", "feedback"].lazy.compactMap { sighting.metadata[$0] }.first.map(ScalarText.of) ?? "(none)"
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
        case .bool(let flag): return flag ? "true" : "false"
        default: return value.serializedString()
        }
    }
}
