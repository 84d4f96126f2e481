// A shipped migration: never edit it. A change ships as a new migration (CONTRIBUTING.md).

extension Migration {
    /// Engagement that follows Userpilot's `parent_id`: a checklist task, a survey module and a
    /// resource-center article are sightings of their parent (its id is `parent_id` without the
    /// parent's prefix: `checklist_10` → `10`), kept apart as a `part` of it (`checklist_task:11`),
    /// so that task 11 is no longer reported as checklist 11. One without a parent stays an entity
    /// of its own, named with its prefix (`checklist_task:11`), so that it cannot be taken for a
    /// checklist of the same number; so is a flow step (`experience_step:12`), which names no
    /// parent. Userlike's proactive chats join the chat funnel (`chat_connected_proactive` seen,
    /// `chat_started_proactive` completed). The rollup gains `part`, and Userpilot's flows,
    /// checklists, surveys and resource centers, and every chat, are derived again. An id and its
    /// part together stay within the 1,024 bytes an id alone had, so the key still fits an index row.
    static let engagementParts = Migration(
        version: 19,
        name: "engagement_parts",
        statements: [
            #"""
            CREATE OR REPLACE FUNCTION cairn_engagement_id(entity text, event_type text, event_name text, metadata jsonb) RETURNS text IMMUTABLE LANGUAGE sql AS $$
                SELECT CASE WHEN event_type = 'interaction' THEN
                            CASE split_part(event_name, ':', 1)
                                WHEN 'checklist_task' THEN COALESCE(NULLIF(regexp_replace(COALESCE(metadata ->> 'parent_id', ''), '^checklist_', ''), ''), 'checklist_task:' || split_part(event_name, ':', 2))
                                WHEN 'survey_module' THEN COALESCE(NULLIF(regexp_replace(COALESCE(metadata ->> 'parent_id', ''), '^survey_', ''), ''), 'survey_module:' || split_part(event_name, ':', 2))
                                WHEN 'resource_center_article' THEN COALESCE(NULLIF(regexp_replace(COALESCE(metadata ->> 'parent_id', ''), '^resource_center_', ''), ''), 'resource_center_article:' || split_part(event_name, ':', 2))
                                WHEN 'experience_step' THEN 'experience_step:' || split_part(event_name, ':', 2)
                                ELSE split_part(event_name, ':', 2)
                            END
                            ELSE COALESCE(metadata ->> CASE WHEN entity = 'banner' THEN 'banner_id' WHEN entity = 'chat' THEN 'widget_id' WHEN entity = 'checklist' THEN 'checklist_id' WHEN entity = 'flow' THEN 'guide_id' WHEN entity = 'hotspot' THEN 'hotspot_group_id' WHEN entity = 'nps' THEN 'survey_id' WHEN entity = 'resource_center' THEN 'resource_center_id' WHEN entity = 'survey' THEN 'survey_id' END, '') END
            $$
            """#,
            #"""
            CREATE FUNCTION cairn_engagement_part(event_type text, event_name text, metadata jsonb) RETURNS text IMMUTABLE LANGUAGE sql AS $$
                SELECT CASE WHEN event_type = 'interaction'
                                 AND NULLIF(regexp_replace(COALESCE(metadata ->> 'parent_id', ''),
                                                           CASE split_part(event_name, ':', 1) WHEN 'checklist_task' THEN '^checklist_'
                                                                WHEN 'survey_module' THEN '^survey_' WHEN 'resource_center_article' THEN '^resource_center_' END,
                                                           ''), '') IS NOT NULL
                            THEN split_part(event_name, ':', 1) || ':' || split_part(event_name, ':', 2) ELSE '' END
            $$
            """#,
            #"""
            CREATE OR REPLACE FUNCTION cairn_engagement_stages(entity text, event_type text, event_name text, metadata jsonb)
            RETURNS text[] IMMUTABLE LANGUAGE sql AS $$
                SELECT CASE WHEN event_type = 'interaction' THEN
                    CASE WHEN length(event_name) - length(replace(event_name, ':', '')) = 2
                              AND (CASE split_part(event_name, ':', 1) WHEN 'experience' THEN 'flow' WHEN 'experience_step' THEN 'flow' WHEN 'checklist' THEN 'checklist' WHEN 'checklist_task' THEN 'checklist' WHEN 'survey_module' THEN 'survey' WHEN 'nps' THEN 'nps' WHEN 'resource_center' THEN 'resource_center' WHEN 'resource_center_article' THEN 'resource_center' WHEN 'experiment' THEN 'experiment' END) = entity
                         THEN CASE split_part(event_name, ':', 3) WHEN 'SEEN' THEN ARRAY['seen']::text[] WHEN 'COMPLETED' THEN ARRAY['seen', 'started', 'completed']::text[] WHEN 'DISMISSED' THEN ARRAY['seen', 'dismissed']::text[] ELSE ARRAY['seen', 'started']::text[] END
                    END
                ELSE CASE
                    WHEN entity = 'flow' AND event_name = 'Guide Started' THEN ARRAY['seen', 'started']::text[]
                        WHEN entity = 'flow' AND event_name = 'Guide Completed' THEN ARRAY['seen', 'started', 'completed']::text[]
                        WHEN entity = 'flow' AND event_name = 'Guide Button Click' THEN CASE WHEN metadata ->> 'action' IN ('dismiss-guide') THEN ARRAY['seen', 'dismissed']::text[] ELSE NULL::text[] END
                        WHEN entity = 'checklist' AND event_name = 'Checklist Item Trigger' THEN ARRAY['seen', 'started']::text[]
                        WHEN entity = 'checklist' AND event_name = 'Checklist Item Url Click' THEN ARRAY['seen', 'started']::text[]
                        WHEN entity = 'checklist' AND event_name = 'Checklist Completed' THEN ARRAY['seen', 'started', 'completed']::text[]
                        WHEN entity = 'survey' AND event_name = 'Survey Shown' THEN ARRAY['seen']::text[]
                        WHEN entity = 'survey' AND event_name = 'Survey Question Answer' THEN ARRAY['seen', 'started']::text[]
                        WHEN entity = 'nps' AND event_name = 'Survey Question Answer' THEN CASE WHEN metadata ->> 'question_type' IN ('NPS Rating') THEN ARRAY['seen', 'started', 'completed']::text[] ELSE NULL::text[] END
                        WHEN entity = 'resource_center' AND event_name = 'Resource Center Guide Trigger' THEN ARRAY['seen', 'started']::text[]
                        WHEN entity = 'resource_center' AND event_name = 'Resource Center Survey Trigger' THEN ARRAY['seen', 'started']::text[]
                        WHEN entity = 'resource_center' AND event_name = 'Resource Center Checklist Guide Trigger' THEN ARRAY['seen', 'started']::text[]
                        WHEN entity = 'resource_center' AND event_name = 'Resource Center Checklist Item Url Click' THEN ARRAY['seen', 'started']::text[]
                        WHEN entity = 'resource_center' AND event_name = 'Resource Center External URL Click' THEN ARRAY['seen', 'started']::text[]
                        WHEN entity = 'resource_center' AND event_name = 'Resource Center Article Link Click' THEN ARRAY['seen', 'started']::text[]
                        WHEN entity = 'hotspot' AND event_name = 'Hotspot Interacted' THEN ARRAY['seen']::text[]
                        WHEN entity = 'hotspot' AND event_name = 'Hotspot Button Click' THEN CASE WHEN metadata ->> 'action' IN ('dismiss-hotspot', 'close-hotspot') THEN ARRAY['seen', 'dismissed']::text[] ELSE ARRAY['seen', 'started']::text[] END
                        WHEN entity = 'banner' AND event_name = 'Banner Button Click' THEN ARRAY['seen', 'started']::text[]
                        WHEN entity = 'chat' AND event_name = 'button_displayed' THEN ARRAY['seen']::text[]
                        WHEN entity = 'chat' AND event_name = 'chat_requested' THEN ARRAY['seen', 'started']::text[]
                        WHEN entity = 'chat' AND event_name = 'chat_started' THEN ARRAY['seen', 'started', 'completed']::text[]
                        WHEN entity = 'chat' AND event_name = 'chat_connected_proactive' THEN ARRAY['seen']::text[]
                        WHEN entity = 'chat' AND event_name = 'chat_started_proactive' THEN ARRAY['seen', 'started', 'completed']::text[]
                        WHEN entity = 'chat' AND event_name = 'rating_submit' THEN ARRAY['rated']::text[]
                END END
            $$
            """#,
            #"""
            CREATE OR REPLACE FUNCTION cairn_engagement_candidate(event_type text, event_name text) RETURNS boolean IMMUTABLE LANGUAGE sql AS $$
                SELECT event_type = 'interaction' OR event_name = ANY (ARRAY['Banner Button Click', 'Checklist Completed', 'Checklist Item Trigger', 'Checklist Item Url Click', 'Guide Button Click', 'Guide Completed', 'Guide Started', 'Hotspot Button Click', 'Hotspot Interacted', 'Resource Center Article Link Click', 'Resource Center Checklist Guide Trigger', 'Resource Center Checklist Item Url Click', 'Resource Center External URL Click', 'Resource Center Guide Trigger', 'Resource Center Survey Trigger', 'Survey Question Answer', 'Survey Shown', 'button_displayed', 'chat_connected_proactive', 'chat_requested', 'chat_started', 'chat_started_proactive', 'rating_submit']::text[])
            $$
            """#,
            #"""
            ALTER TABLE rollup_engagement_people ADD COLUMN part text NOT NULL DEFAULT '',
                DROP CONSTRAINT rollup_engagement_people_pkey,
                ADD PRIMARY KEY (app_token, entity, tool, id, part, stage, person)
            """#,
            #"""
            DELETE FROM rollup_engagement_people WHERE (tool = 'userpilot' AND entity IN ('flow', 'checklist', 'survey', 'resource_center')) OR entity = 'chat'
            """#,
            #"""
            INSERT INTO rollup_engagement_people (app_token, entity, tool, id, part, stage, person)
            SELECT DISTINCT r.app_token, g.entity, cairn_engagement_tool(g.entity, r.event_type), cairn_engagement_id(g.entity, r.event_type, r.event_name, r.metadata),
                   cairn_engagement_part(r.event_type, r.event_name, r.metadata), s.stage, r.person
            FROM events_resolved r
            CROSS JOIN (VALUES ('flow'), ('checklist'), ('survey'), ('resource_center'), ('chat')) AS g(entity)
            CROSS JOIN LATERAL unnest(cairn_engagement_stages(g.entity, r.event_type, r.event_name, r.metadata)) AS s(stage)
            WHERE r.person IS NOT NULL
              AND ((r.event_type = 'interaction' AND split_part(r.event_name, ':', 1) IN ('experience', 'experience_step', 'checklist', 'checklist_task', 'survey_module', 'resource_center', 'resource_center_article'))
                   OR (r.event_type <> 'interaction' AND r.event_name IN ('button_displayed', 'chat_connected_proactive', 'chat_requested', 'chat_started', 'chat_started_proactive', 'rating_submit')))
              AND octet_length(cairn_engagement_id(g.entity, r.event_type, r.event_name, r.metadata))
                  + octet_length(cairn_engagement_part(r.event_type, r.event_name, r.metadata)) <= 1024
            ON CONFLICT DO NOTHING
            """#,
        ]
    )
}
