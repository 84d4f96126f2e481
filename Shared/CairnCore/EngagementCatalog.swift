/// One view of in-app engagement across tools: which events are sightings of which
/// engagement entity, and which stages (seen, started, completed, dismissed, rated) each
/// stands for. A UserGuiding guide and a Userpilot flow (experience) are both flows.
///
/// Storage turns this table into SQL (the `cairn_engagement_*` classifier and the engagement
/// rollup); reporting uses it to narrow its scans to the events that can match. Changing it
/// needs a migration that recreates the classifier and re-derives the rollup.
///
/// | entity | Userpilot (`{prefix}:{id}:{STATUS}`) | UserGuiding / Userlike |
/// |---|---|---|
/// | flow | `experience`, `experience_step` | Guide Started (seen, started), Guide Completed, Guide Button Click with `dismiss-guide` |
/// | checklist | `checklist`, `checklist_task` | Checklist Item Trigger, Checklist Item Url Click (seen, started), Checklist Completed |
/// | survey | `survey_module` | Survey Shown (seen), Survey Question Answer (started) |
/// | nps | `nps` | Survey Question Answer with `NPS Rating` |
/// | resource_center | `resource_center`, `resource_center_article` | Resource Center … events (seen, started) |
/// | experiment | `experiment` (with `variant`) | — |
/// | hotspot | — | Hotspot Interacted (seen), Hotspot Button Click (started; dismissed for dismiss/close) |
/// | banner | — | Banner Button Click (seen, started) |
/// | chat | — | Userlike: button_displayed, chat_connected_proactive (seen), chat_requested, chat_started, chat_started_proactive (completed), rating_submit |
///
/// Userpilot statuses map as: SEEN → seen; STARTED, ENGAGED, SUBMITTED_* → started;
/// COMPLETED → completed (and started); DISMISSED → dismissed. Every stage implies seen.
///
/// A `checklist_task`, `survey_module` or `resource_center_article` with a `parent_id` is a
/// part of its parent (``userpilotParts``): classified under the parent's id, with `part`
/// naming it (migration 19's `cairn_engagement_id` and `cairn_engagement_part`). One without
/// a parent, and every `experience_step` (which names none), is an entity of its own named with
/// its prefix (`experience_step:12`), never taken for the flow or checklist of that number.
public enum EngagementCatalog {
    public enum Entity: String, Sendable, CaseIterable {
        case flow, checklist, survey, nps, resource_center, experiment, hotspot, banner, chat
    }

    /// The Userpilot interaction prefixes of each entity.
    public static let userpilotPrefixes: [(prefix: String, entity: Entity)] = [
        ("experience", .flow), ("experience_step", .flow), ("checklist", .checklist), ("checklist_task", .checklist),
        ("survey_module", .survey), ("nps", .nps), ("resource_center", .resource_center),
        ("resource_center_article", .resource_center), ("experiment", .experiment),
    ]

    /// Userpilot prefixes whose interactions are parts of another entity, named in `parent_id`
    /// as the parent's prefix, `_`, and its id (`checklist_10`).
    public static let userpilotParts: [(prefix: String, parentPrefix: String)] = [
        ("checklist_task", "checklist"), ("survey_module", "survey"), ("resource_center_article", "resource_center"),
    ]

    /// The stages of a Userpilot interaction status; any status not listed means started.
    public static let userpilotStatuses: [(status: String, stages: [String])] = [
        ("SEEN", ["seen"]), ("COMPLETED", ["seen", "started", "completed"]), ("DISMISSED", ["seen", "dismissed"]),
    ]
    public static let userpilotOtherStatus = ["seen", "started"]

    /// Every stage any sighting can have, in first-appearance order.
    public static var allStages: [String] {
        var seen: [String] = []
        let lists = userpilotStatuses.map(\.stages) + [userpilotOtherStatus] + namedEvents.flatMap { [$0.stages] + ($0.otherwise.map { [$0] } ?? []) }
        for stage in lists.joined() where !seen.contains(stage) { seen.append(stage) }
        return seen
    }

    /// A named (UserGuiding or Userlike) event that is a sighting of `entity`, whose id is the
    /// attribute `idKey`. When `condition` is set, `stages` apply only if that attribute holds
    /// one of its values, and `otherwise` (nil: no sighting) applies if not.
    public struct NamedEvent: Sendable {
        public var entity: Entity
        public var tool: String
        public var event: String
        public var idKey: String
        public var stages: [String]
        public var condition: (key: String, values: [String])?
        public var otherwise: [String]?
    }

    public static let namedEvents: [NamedEvent] = {
        func guiding(
            _ entity: Entity,
            _ event: String,
            _ idKey: String,
            _ stages: [String],
            when condition: (String, [String])? = nil,
            otherwise: [String]? = nil
        ) -> NamedEvent {
            NamedEvent(entity: entity, tool: "userguiding", event: event, idKey: idKey, stages: stages, condition: condition, otherwise: otherwise)
        }
        let resourceCenter = [
            "Resource Center Guide Trigger", "Resource Center Survey Trigger", "Resource Center Checklist Guide Trigger",
            "Resource Center Checklist Item Url Click", "Resource Center External URL Click", "Resource Center Article Link Click",
        ]
        let chat: [(String, [String])] = [
            ("button_displayed", ["seen"]), ("chat_connected_proactive", ["seen"]), ("chat_requested", ["seen", "started"]),
            ("chat_started", ["seen", "started", "completed"]), ("chat_started_proactive", ["seen", "started", "completed"]),
            ("rating_submit", ["rated"]),
        ]
        return [
            guiding(.flow, "Guide Started", "guide_id", ["seen", "started"]),
            guiding(.flow, "Guide Completed", "guide_id", ["seen", "started", "completed"]),
            guiding(.flow, "Guide Button Click", "guide_id", ["seen", "dismissed"], when: ("action", ["dismiss-guide"])),
            guiding(.checklist, "Checklist Item Trigger", "checklist_id", ["seen", "started"]),
            guiding(.checklist, "Checklist Item Url Click", "checklist_id", ["seen", "started"]),
            guiding(.checklist, "Checklist Completed", "checklist_id", ["seen", "started", "completed"]),
            guiding(.survey, "Survey Shown", "survey_id", ["seen"]),
            guiding(.survey, "Survey Question Answer", "survey_id", ["seen", "started"]),
            guiding(.nps, "Survey Question Answer", "survey_id", ["seen", "started", "completed"], when: ("question_type", ["NPS Rating"])),
        ] + resourceCenter.map { guiding(.resource_center, $0, "resource_center_id", ["seen", "started"]) } + [
            guiding(.hotspot, "Hotspot Interacted", "hotspot_group_id", ["seen"]),
            guiding(
                .hotspot,
                "Hotspot Button Click",
                "hotspot_group_id",
                ["seen", "dismissed"],
                when: ("action", ["dismiss-hotspot", "close-hotspot"]),
                otherwise: ["seen", "started"]
            ),
            guiding(.banner, "Banner Button Click", "banner_id", ["seen", "started"]),
        ] + chat.map { NamedEvent(entity: .chat, tool: "userlike", event: $0.0, idKey: "widget_id", stages: $0.1) }
    }()
}
