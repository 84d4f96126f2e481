import CairnCore

/// The small condition language of `report users --where` and `--trait`, and of triggers'
/// `--where` and `--trait`.
///
/// ```
/// condition  := clause (("and" | "or") clause)*     -- "and" binds tighter than "or"
/// clause     := "not" clause | "(" condition ")" | comparison
/// comparison := name op value | name ["not"] "in" "(" value ("," value)* ")" | name "contains" value
/// op         := "=" | "!=" | "<>" | ">" | ">=" | "<" | "<="
/// value      := number | 'text' | "text" | true | false | 2024-05-01 | 2024-05-01T12:00:00Z
/// ```
///
/// A condition is parsed into a tree and compiled to SQL in which every name and value is a
/// bound parameter: nothing the user typed is pasted into SQL. Comparisons are typed by the
/// value: a number compares numerically, a date as a time, `true`/`false` as a boolean, text
/// as text. An attribute whose stored value does not read as that type does not match.
public indirect enum Condition: Sendable, Equatable {
    case compare(name: String, op: String, value: Literal)
    case member(name: String, values: [Literal], negated: Bool)
    case contains(name: String, value: Literal)
    case not(Condition)
    case and(Condition, Condition)
    case or(Condition, Condition)

    public enum Literal: Sendable, Equatable {
        case number(Double)
        case text(String)
        case boolean(Bool)
        case date(Timestamp)

        func sameKind(as other: Literal) -> Bool {
            switch (self, other) {
            case (.number, .number), (.text, .text), (.boolean, .boolean), (.date, .date): return true
            default: return false
            }
        }
    }

    /// The bounds on a condition, checked as it is read, before anything recurses deeper:
    /// conditions are written by people, and a hostile one (4,000 parentheses, 30,000 `not`s,
    /// an `or` of 8,000 terms) must be refused, not crash the service that compiles it.
    public enum Limits {
        /// Characters in a condition.
        public static let maximumLength = 4_096
        /// Parentheses and `not`s open at once.
        public static let maximumDepth = 32
        /// Comparisons in a condition (each `and`/`or` adds one level to the compiled tree).
        public static let maximumTerms = 128
        /// Values in one `in (…)` list.
        public static let maximumListValues = 1_000
    }

    /// Parses `text`.
    /// - Throws: ``ConditionError`` `invalid_condition` naming the position and what was expected,
    ///   or the bound a condition exceeds (``Limits``).
    public static func parse(_ text: String) throws(ConditionError) -> Condition {
        guard text.count <= Limits.maximumLength else {
            throw ConditionError(
                .invalidCondition,
                "at position \(Limits.maximumLength + 1): the condition is \(text.count) characters; the limit is \(Limits.maximumLength)"
            )
        }
        var parser = ConditionParser(text: text)
        let condition = try parser.parseOr()
        parser.skipSpace()
        guard parser.atEnd else { throw parser.error("expected 'and', 'or' or the end of the condition") }
        return condition
    }

    /// SQL over the JSON object `column` (e.g. `r.metadata`), appending values to `parameters`.
    public func sql(on column: String, parameters: inout [String?]) -> String {
        func bind(_ value: String) -> String {
            parameters.append(value)
            return "$\(parameters.count)"
        }
        /// The attribute read as the literal's type (NULL when it does not read as one).
        func left(_ name: String, as literal: Literal) -> String {
            let key = bind(name) + "::text"
            switch literal {
            case .number:
                // Storage's one reading of a JSON value as a number: NULL for what is not one, or
                // what PostgreSQL's numeric cannot hold ("1e1000000"), so no comparison overflows.
                return "cairn_jsonb_numeric(\(column)->\(key))"
            case .text:
                return "(\(column)->>\(key))"
            case .boolean:
                return "(CASE WHEN (\(column)->>\(key)) IN ('true', 'false') THEN (\(column)->>\(key))::boolean END)"
            case .date:
                return "(CASE WHEN (\(column)->>\(key)) ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}' THEN cairn_try_timestamptz(\(column)->>\(key)) END)"
            }
        }
        /// The literal, bound, as its SQL type.
        func right(_ literal: Literal) -> String {
            switch literal {
            case .number(let number): return "\(bind(String(number)))::numeric"
            case .text(let text): return "\(bind(text))::text"
            case .boolean(let flag): return "\(bind(flag ? "true" : "false"))::boolean"
            case .date(let time): return "\(bind(time.description))::timestamptz"
            }
        }
        switch self {
        case .compare(let name, let op, let value):
            let attribute = left(name, as: value)
            return "(\(attribute) \(op == "<>" ? "!=" : op) \(right(value)))"
        case .member(let name, let values, let negated):
            guard let first = values.first else { return negated ? "TRUE" : "FALSE" }
            // Values of one type compare as that type. A list that mixes types (`in (1, 'one')`)
            // compares the attribute as each type in turn: it is in the list when it equals
            // any value as that value's type, and not in it when it is present and equals none.
            let kinds = values.reduce(into: [Literal]()) { kinds, value in
                if !kinds.contains(where: { $0.sameKind(as: value) }) { kinds.append(value) }
            }
            guard kinds.count > 1 else {
                return "(\(left(name, as: first)) \(negated ? "NOT IN" : "IN") (\(values.map(right).joined(separator: ", "))))"
            }
            let parts = kinds.map { kind in
                "\(left(name, as: kind)) IN (\(values.filter { $0.sameKind(as: kind) }.map(right).joined(separator: ", ")))"
            }
            let member = "COALESCE(" + parts.joined(separator: " OR ") + ", FALSE)"
            return negated ? "((\(column) ? \(bind(name))::text) AND NOT \(member))" : "(\(member))"
        case .contains(let name, let value):
            let key = bind(name) + "::text"
            let needle: String
            if case .text(let text) = value { needle = text } else { needle = "\(value)" }
            return "(strpos(lower(\(column)->>\(key)), lower(\(bind(needle)))) > 0)"
        case .not(let inner):
            return "(NOT COALESCE(\(inner.sql(on: column, parameters: &parameters)), FALSE))"
        case .and(let left, let right):
            return "(\(left.sql(on: column, parameters: &parameters)) AND \(right.sql(on: column, parameters: &parameters)))"
        case .or(let left, let right):
            return "(\(left.sql(on: column, parameters: &parameters)) OR \(right.sql(on: column, parameters: &parameters)))"
        }
    }

    /// The attribute names the condition mentions.
    public var names: [String] {
        switch self {
        case .compare(let name, _, _), .member(let name, _, _), .contains(let name, _): return [name]
        case .not(let inner): return inner.names
        case .and(let left, let right), .or(let left, let right): return left.names + right.names
        }
    }
}

struct ConditionParser {
    let characters: [Character]
    let text: String
    var index = 0
    /// Parentheses and `not`s open now, and comparisons read so far (``Condition/Limits``).
    var depth = 0
    var terms = 0

    init(text: String) {
        self.text = text
        characters = Array(text)
    }

    var atEnd: Bool { index >= characters.count }

    func error(_ expected: String) -> ConditionError {
        let found = atEnd ? "the end" : "'\(String(characters[index...].prefix(12)))'"
        return ConditionError(.invalidCondition, "in '\(text)' at position \(index + 1): \(expected), found \(found)")
    }

    mutating func skipSpace() {
        while !atEnd, characters[index].isWhitespace { index += 1 }
    }

    /// Consumes `word` (case-insensitive) when it stands as a whole word here.
    mutating func keyword(_ word: String) -> Bool {
        skipSpace()
        let end = index + word.count
        guard end <= characters.count, String(characters[index..<end]).lowercased() == word else { return false }
        if end < characters.count, characters[end].isLetter || characters[end].isNumber || characters[end] == "_" { return false }
        index = end
        return true
    }

    mutating func parseOr() throws(ConditionError) -> Condition {
        var left = try parseAnd()
        while keyword("or") { left = .or(left, try parseAnd()) }
        return left
    }

    mutating func parseAnd() throws(ConditionError) -> Condition {
        var left = try parseClause()
        while keyword("and") { left = .and(left, try parseClause()) }
        return left
    }

    /// Enters one level of `not` or parentheses, refusing past ``Condition/Limits/maximumDepth``.
    mutating func nest() throws(ConditionError) {
        depth += 1
        guard depth <= Condition.Limits.maximumDepth else {
            throw error("at most \(Condition.Limits.maximumDepth) parentheses and 'not's may be open at once")
        }
    }

    mutating func parseClause() throws(ConditionError) -> Condition {
        if keyword("not") {
            try nest()
            defer { depth -= 1 }
            return .not(try parseClause())
        }
        skipSpace()
        if !atEnd, characters[index] == "(" {
            try nest()
            defer { depth -= 1 }
            index += 1
            let inner = try parseOr()
            skipSpace()
            guard !atEnd, characters[index] == ")" else { throw error("expected ')'") }
            index += 1
            return inner
        }
        terms += 1
        guard terms <= Condition.Limits.maximumTerms else {
            throw error("at most \(Condition.Limits.maximumTerms) comparisons may make a condition")
        }
        let name = try parseName()
        if keyword("contains") { return .contains(name: name, value: try parseValue()) }
        let negated = keyword("not")
        if keyword("in") { return .member(name: name, values: try parseList(), negated: negated) }
        if negated { throw error("expected 'in' after 'not'") }
        skipSpace()
        for op in [">=", "<=", "!=", "<>", "=", ">", "<"] {
            let end = index + op.count
            if end <= characters.count, String(characters[index..<end]) == op {
                index = end
                return .compare(name: name, op: op, value: try parseValue())
            }
        }
        throw error("expected a comparison (=, !=, >, >=, <, <=), 'in' or 'contains' after '\(name)'")
    }

    mutating func parseName() throws(ConditionError) -> String {
        skipSpace()
        let start = index
        while !atEnd,
            characters[index].isLetter || characters[index].isNumber || characters[index] == "_" || characters[index] == "."
                || characters[index] == "$"
        {
            index += 1
        }
        guard index > start, !characters[start].isNumber else {
            index = start
            throw error("expected an attribute name")
        }
        return String(characters[start..<index])
    }

    mutating func parseList() throws(ConditionError) -> [Condition.Literal] {
        skipSpace()
        guard !atEnd, characters[index] == "(" else { throw error("expected '(' to start the list") }
        index += 1
        var values = [try parseValue()]
        while true {
            skipSpace()
            guard !atEnd else { throw error("expected ',' or ')'") }
            if characters[index] == ")" {
                index += 1
                return values
            }
            guard characters[index] == "," else { throw error("expected ',' or ')'") }
            guard values.count < Condition.Limits.maximumListValues else {
                throw error("at most \(Condition.Limits.maximumListValues) values may make a list")
            }
            index += 1
            values.append(try parseValue())
        }
    }

    mutating func parseValue() throws(ConditionError) -> Condition.Literal {
        skipSpace()
        guard !atEnd else { throw error("expected a value (a number, 'text', true, false or a date)") }
        let quote = characters[index]
        if quote == "'" || quote == "\"" {
            index += 1
            var value = ""
            while !atEnd {
                if characters[index] == quote {
                    if index + 1 < characters.count, characters[index + 1] == quote {
                        value.append(quote)
                        index += 2
                        continue
                    }
                    index += 1
                    return .text(value)
                }
                value.append(characters[index])
                index += 1
            }
            throw error("expected a closing \(quote)")
        }
        if keyword("true") { return .boolean(true) }
        if keyword("false") { return .boolean(false) }
        let start = index
        while !atEnd, !characters[index].isWhitespace, characters[index] != ")", characters[index] != "," { index += 1 }
        let token = String(characters[start..<index])
        if token.count >= 10, token.first?.isNumber == true, token.contains("-"), let time = Timestamp(parsing: token) { return .date(time) }
        if let number = Double(token), number.isFinite { return .number(number) }
        index = start
        throw error("expected a value (a number, 'text', true, false or a date such as 2024-05-01)")
    }
}

/// The condition module's marker: its errors are ``ConditionError``.
public enum ConditionModule {}

/// A condition that does not parse or is over its limits (`invalid_condition`), with the
/// position and what was expected. The caller knows which parameter held it and names it.
public typealias ConditionError = ModuleError<ConditionModule>
