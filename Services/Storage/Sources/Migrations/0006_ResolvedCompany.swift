// A shipped migration: never edit it. A change ships as a new migration (CONTRIBUTING.md).

extension Migration {
    /// `events_resolved` gives each event its company: its own, else the person's company as of the
    /// event's time; and the Userlike identify-by-email switch.
    static let resolvedCompany = Migration(
        version: 6,
        name: "resolvedCompany",
        statements: [
            #"""
            DROP VIEW events_resolved
            """#,
            #"""
            CREATE VIEW events_resolved AS SELECT r.*,
                   COALESCE(r.company_id, (SELECT m.company_id FROM user_companies m
                                           WHERE m.app_token = r.app_token AND m.user_id = r.person AND m.first_seen <= r.inserted_at
                                           ORDER BY m.first_seen DESC, m.company_id DESC LIMIT 1)) AS company
            FROM (
                SELECT e.*, COALESCE(mu.user_id, e.user_id, ma.user_id, 'anonymous:' || e.anonymous_id) AS person
                FROM events e
                LEFT JOIN identity_aliases mu
                       ON mu.app_token = e.app_token AND mu.alias_kind = 'user' AND mu.alias_id = e.user_id
                LEFT JOIN identity_aliases ma
                       ON ma.app_token = e.app_token AND ma.alias_kind = 'anonymous' AND ma.alias_id = e.anonymous_id
                      AND e.user_id IS NULL
            ) r
            """#,
            #"""
            ALTER TABLE apps ADD COLUMN identify_userlike_by_email boolean NOT NULL DEFAULT false
            """#,
        ]
    )
}
