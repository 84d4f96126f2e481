// A shipped migration: never edit it. A change ships as a new migration (CONTRIBUTING.md).

extension Migration {
    /// Engagement that follows Userpilot's `parent_id`: a checklist task, a survey module and a
    /// resource-center article are sightings of their parent (its id is `parent_id` without the
    /// parent's prefix: `checklist_10` → `10`), kept apart as a `part` of it (`checklist_task:11`),
    /// so that task 11 is no longer reported as checklist 11. One without a parent stays an entity
    /// of its own, named with its prefix (`checklist_task:11`), so that it cannot be taken for a
    /// checklist of the same number. The rollup gains `part`, and Userpilot's rows are derived again.
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
                                ELSE split_part(event_name, ':', 2)
                            END
                            ELSE COALESCE(metadata ->> CASE WHEN entity = 'banner' THEN 'banner_id' WHEN entity = 'chat' THEN 'widget_id' WHEN entity = 'checklist' THEN 'checklist_id' WHEN entity = 'flow' THEN 'guide_id' WHEN entity = 'hotspot' THEN 'hotspot_group_id' WHEN entity = 'nps' THEN 'survey_id' WHEN entity = 'resource_center' THEN 'resource_center_id' WHEN entity = 'survey' THEN 'survey_id' END, '') END
            $$
            """#,
            #"""
            CREATE FUNCTION cairn_engagement_part(event_type text, event_name text, metadata jsonb) RETURNS text IMMUTABLE LANGUAGE sql AS $$
                SELECT CASE WHEN event_type = 'interaction'
                                 AND split_part(event_name, ':', 1) IN ('checklist_task', 'survey_module', 'resource_center_article')
                                 AND COALESCE(metadata ->> 'parent_id', '') <> ''
                            THEN split_part(event_name, ':', 1) || ':' || split_part(event_name, ':', 2) ELSE '' END
            $$
            """#,
            #"""
            ALTER TABLE rollup_engagement_people ADD COLUMN part text NOT NULL DEFAULT '',
                DROP CONSTRAINT rollup_engagement_people_pkey,
                ADD PRIMARY KEY (app_token, entity, tool, id, part, stage, person)
            """#,
            #"""
            DELETE FROM rollup_engagement_people WHERE tool = 'userpilot' AND entity IN ('checklist', 'survey', 'resource_center')
            """#,
            #"""
            INSERT INTO rollup_engagement_people (app_token, entity, tool, id, part, stage, person)
            SELECT DISTINCT r.app_token, g.entity, 'userpilot', cairn_engagement_id(g.entity, r.event_type, r.event_name, r.metadata),
                   cairn_engagement_part(r.event_type, r.event_name, r.metadata), s.stage, r.person
            FROM events_resolved r
            CROSS JOIN (VALUES ('checklist'), ('survey'), ('resource_center')) AS g(entity)
            CROSS JOIN LATERAL unnest(cairn_engagement_stages(g.entity, r.event_type, r.event_name, r.metadata)) AS s(stage)
            WHERE r.event_type = 'interaction' AND r.person IS NOT NULL
              AND split_part(r.event_name, ':', 1) IN ('checklist', 'checklist_task', 'survey_module', 'resource_center', 'resource_center_article')
              AND octet_length(cairn_engagement_id(g.entity, r.event_type, r.event_name, r.metadata)) <= 1024
              AND octet_length(cairn_engagement_part(r.event_type, r.event_name, r.metadata)) <= 1024
            ON CONFLICT DO NOTHING
            """#,
        ]
    )
}
