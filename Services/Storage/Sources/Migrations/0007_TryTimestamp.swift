// A shipped migration: never edit it. A change ships as a new migration (CONTRIBUTING.md).

extension Migration {
    /// `cairn_try_timestamptz`: report conditions compare dates stored as text; a text that is not a
    /// time never matches.
    static let tryTimestamp = Migration(
        version: 7,
        name: "tryTimestamp",
        statements: [
            #"""
            CREATE FUNCTION cairn_try_timestamptz(value text) RETURNS timestamptz STABLE LANGUAGE plpgsql AS $$
            BEGIN
                RETURN value::timestamptz;
            EXCEPTION WHEN others THEN
                RETURN NULL;
            END
            $$
            """#
        ]
    )
}
