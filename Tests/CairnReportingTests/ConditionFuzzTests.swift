import CairnCondition
import CairnCore
import CairnPostgres
import CairnReporting
import CairnStorage
import CairnTesting
import CairnWire
import Testing

/// Seeded fuzzing of the condition language (see ``Fuzzer``): any text parses or is refused
/// with a position, and every condition that parses compiles to SQL PostgreSQL runs without
/// an error, over attributes of every JSON type.
@Suite struct ConditionFuzzTests {
    @Test func everyConditionParsesToRunnableSQLOrIsRefusedWithAPosition() async throws {
        let connection = try PostgresConnection(conninfo: try TestPostgres.freshDatabase())
        try Schema.migrate(connection)
        let rows = #"""
            ('{"price": 150, "color": "teal", "plan": "pro", "seats": 3, "name": "ann''s", "created": "2024-05-02", "active": true, "a.b.c": 350, "x": [1, 2], "$price": -1, "signed_up": "not a date"}'::jsonb),
            ('{"price": "12.5", "color": null, "plan": {"tier": 1}, "seats": "many", "active": "yes"}'::jsonb),
            ('{}'::jsonb)
            """#
        var fuzzer = Fuzzer(target: "condition")
        var compiled = 0
        var refused = 0
        try await fuzzer.run { bytes in
            let text = String(decoding: bytes, as: UTF8.self)
            let condition: Condition
            do {
                condition = try Condition.parse(text)
            } catch let error as ConditionError {
                refused += 1
                if !error.message.contains("at position") {
                    Issue.record("a refusal without a position: \(error.message)")
                }
                return
            } catch {
                Issue.record("a refusal that is not a ConditionError: \(error)")
                return
            }
            var parameters: [String?] = []
            let sql = condition.sql(on: "t.m", parameters: &parameters)
            do {
                _ = try connection.execute("SELECT count(*) FROM (VALUES \(rows)) AS t(m) WHERE \(sql)", parameters)
                compiled += 1
            } catch {
                Issue.record("'\(text.prefix(200))' compiled to SQL PostgreSQL refused: \(error)")
            }
        }
        #expect(compiled > 0 && refused > 0, "the fuzzer reached both outcomes")
    }
}

/// A list that mixes types (found by the fuzzer: PostgreSQL refused `numeric <> text`).
@Suite struct MixedListTests {
    @Test func aListOfMixedTypesComparesEachValueAsItsOwnType() throws {
        let connection = try PostgresConnection(conninfo: try TestPostgres.freshDatabase())
        // Conditions read numbers through storage's cairn_jsonb_numeric.
        try Schema.migrate(connection)
        func matches(_ text: String, _ row: String) throws -> Bool {
            var parameters: [String?] = []
            let sql = try Condition.parse(text).sql(on: "t.m", parameters: &parameters)
            return try connection.execute("SELECT count(*) FROM (VALUES ('\(row)'::jsonb)) AS t(m) WHERE \(sql)", parameters).rows.first?[0] == "1"
        }
        let inList = "x in (1, 'three')"
        #expect(try matches(inList, #"{"x": 1}"#))
        #expect(try matches(inList, #"{"x": "three"}"#))
        #expect(try !matches(inList, #"{"x": 2}"#))
        #expect(try !matches(inList, #"{"x": "four"}"#))
        #expect(try !matches(inList, #"{}"#))
        let notInList = "x not in (1, 'three')"
        #expect(try matches(notInList, #"{"x": 2}"#))
        #expect(try matches(notInList, #"{"x": "four"}"#))
        #expect(try !matches(notInList, #"{"x": 1}"#))
        #expect(try !matches(notInList, #"{"x": "three"}"#))
        #expect(try !matches(notInList, #"{}"#), "an attribute that is absent is in no list and in none's complement")
    }
}
