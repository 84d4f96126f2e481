import CairnCondition
import CairnCore
import CairnPostgres
import CairnReporting
import CairnWire
import Testing

@Suite struct ConditionTests {
    @Test func parsesThePrecedenceAndEveryForm() throws {
        let condition = try Condition.parse(
            "price > 150 and color = 'teal' or not (size in (39, 40)) and name contains \"sh\" and paid_at >= 2024-05-01 and express = true"
        )
        guard case .or(let left, let right) = condition else {
            Issue.record("expected or at the top: \(condition)")
            return
        }
        #expect(left == .and(.compare(name: "price", op: ">", value: .number(150)), .compare(name: "color", op: "=", value: .text("teal"))))
        guard
            case .and(
                .and(
                    .and(
                        .not(.member(name: "size", values: [.number(39), .number(40)], negated: false)),
                        .contains(name: "name", value: .text("sh"))
                    ),
                    .compare(name: "paid_at", op: ">=", value: .date(let date))
                ),
                .compare(name: "express", op: "=", value: .boolean(true))
            ) = right
        else {
            Issue.record("unexpected tree: \(right)")
            return
        }
        #expect(date.description == "2024-05-01T00:00:00.000000Z")
        #expect(
            try Condition.parse("plan not in ('free', 'trial')") == .member(name: "plan", values: [.text("free"), .text("trial")], negated: true)
        )
        #expect(try Condition.parse("note = 'it''s'") == .compare(name: "note", op: "=", value: .text("it's")))
    }

    @Test(arguments: [
        ("price >", 8, "expected a value"),
        ("price 150", 7, "expected a comparison"),
        ("(price > 1", 11, "expected ')'"),
        ("price > 1 also", 11, "expected 'and', 'or'"),
        ("color = 'teal", 14, "expected a closing '"),
        ("size in (1, 2", 14, "expected ',' or ')'"),
        ("> 5", 1, "expected an attribute name"),
        ("plan not = 'x'", 10, "expected 'in' after 'not'"),
    ])
    func malformedConditionsNameThePositionAndWhatWasExpected(text: String, position: Int, expected: String) {
        do {
            _ = try Condition.parse(text)
            Issue.record("expected an error for \(text)")
        } catch {
            #expect(error.applicationCode.rawValue == "invalid_condition")
            #expect(error.message.contains("at position \(position):"), "\(error.message)")
            #expect(error.message.contains(expected), "\(error.message)")
        }
    }

    @Test func valuesAreBoundNeverPasted() throws {
        var parameters: [String?] = ["app"]
        let sql = try Condition.parse("name = 'x''); DROP TABLE events; --'").sql(on: "m", parameters: &parameters)
        #expect(!sql.contains("DROP"))
        #expect(parameters.contains("x'); DROP TABLE events; --"))
        #expect(parameters.contains("name"))
    }
}
