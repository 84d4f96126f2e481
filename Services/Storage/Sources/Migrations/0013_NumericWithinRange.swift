// A shipped migration: never edit it. A change ships as a new migration (CONTRIBUTING.md).

extension Migration {
    /// `cairn_jsonb_numeric` bounded to 255 digits on each side of the point and a three-digit exponent,
    /// so a stored string such as `"1e1000000"` cannot overflow `numeric` in every rollup and report.
    static let numericWithinRange = Migration(
        version: 13,
        name: "numericWithinRange",
        statements: [
            #"""
            CREATE OR REPLACE FUNCTION cairn_jsonb_numeric(value jsonb) RETURNS numeric IMMUTABLE LANGUAGE sql AS $$
                SELECT CASE
                    WHEN jsonb_typeof(value) = 'number' THEN (value #>> '{}')::numeric
                    WHEN jsonb_typeof(value) = 'string'
                         AND (value #>> '{}') ~ '^\s*-?[0-9]{1,255}(\.[0-9]{1,255})?([eE][-+]?0*[0-9]{1,3})?\s*$'
                        THEN trim(value #>> '{}')::numeric
                END
            $$
            """#
        ]
    )
}
