// A shipped migration: never edit it. A change ships as a new migration (CONTRIBUTING.md).

extension Migration {
    /// `cairn_merge_traits` and `cairn_merge_trait_times` in one pass over each object. The
    /// first versions looked every key up in the stored traits, and each lookup read the whole
    /// (TOASTed) value again: folding identifies of 2,400 traits took seconds a span, and a
    /// client sending them held the follower, and so every erasure of the app, back.
    static let linearTraitMerge = Migration(
        version: 15,
        name: "linearTraitMerge",
        statements: [
            linearTraitMerge(function: "cairn_merge_traits", newer: "t.new_value", older: "t.old_value"),
            linearTraitMerge(function: "cairn_merge_trait_times", newer: "nt.value", older: "ot.value"),
        ]
    )

    /// The two functions differ only in what they keep of the winning side: its value or its time.
    private static func linearTraitMerge(function: String, newer: String, older: String) -> String {
        #"""
        CREATE OR REPLACE FUNCTION \#(function)(old_traits jsonb, old_times jsonb, new_traits jsonb, new_times jsonb)
        RETURNS jsonb IMMUTABLE LANGUAGE sql AS $$
            SELECT COALESCE(jsonb_object_agg(t.key, CASE
                WHEN cairn_trait_wins((ot.value #>> '{}')::timestamptz, t.old_value, (nt.value #>> '{}')::timestamptz, t.new_value)
                THEN \#(newer) ELSE \#(older) END), '{}'::jsonb)
            FROM (
                SELECT COALESCE(o.key, n.key) AS key, o.value AS old_value, n.value AS new_value
                FROM jsonb_each(old_traits) o FULL JOIN jsonb_each(new_traits) n ON n.key = o.key
            ) t
            LEFT JOIN jsonb_each(old_times) ot ON ot.key = t.key
            LEFT JOIN jsonb_each(new_times) nt ON nt.key = t.key
        $$
        """#
    }
}
