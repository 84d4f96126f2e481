// A shipped migration: never edit it. A change ships as a new migration (CONTRIBUTING.md).

extension Migration {
    /// E-mail triggers: a trigger POSTs to `url` or sends the e-mail its templates describe.
    /// A delivery is marked `sent` in the instant between the SMTP server holding the whole
    /// message and the end of data being sent, so that a restart never sends it again. An absence
    /// trigger's `unless_same` names the attribute a follow-up must share with the event.
    static let emailTriggers = Migration(
        version: 18,
        name: "email_triggers",
        statements: [
            #"""
            ALTER TABLE triggers ALTER COLUMN url DROP NOT NULL,
                ADD COLUMN email_to text, ADD COLUMN email_subject text, ADD COLUMN email_text text, ADD COLUMN email_html text,
                ADD COLUMN unless_same text CHECK (unless_same IS NULL OR unless_event IS NOT NULL),
                ADD CONSTRAINT triggers_one_action CHECK ((url IS NULL) <> (email_subject IS NULL AND email_text IS NULL))
            """#,
            #"""
            ALTER TABLE trigger_deliveries DROP CONSTRAINT trigger_deliveries_state_check,
                ADD CONSTRAINT trigger_deliveries_state_check CHECK (state IN ('waiting', 'failed', 'retry', 'sent'))
            """#,
        ]
    )
}
