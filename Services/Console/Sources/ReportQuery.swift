import CairnCore
import CairnReporting
import HTTPTypes

/// A URL's query as ordered name–value pairs, decoded as browsers encode forms: `+` is a space
/// and `%XX` a byte; names are decoded too. Bytes that are not UTF-8 are refused.
struct QueryParameters: Sendable, Equatable {
    var pairs: [(name: String, value: String)]

    static func == (lhs: Self, rhs: Self) -> Bool { lhs.pairs.elementsEqual(rhs.pairs) { $0 == $1 } }

    init(pairs: [(name: String, value: String)]) { self.pairs = pairs }

    init(query: String?) throws(APIRefusal) {
        pairs = []
        guard let query, !query.isEmpty else { return }
        for part in query.split(separator: "&", omittingEmptySubsequences: true) {
            let halves = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = try Self.decode(halves[0], parameter: nil)
            let value = halves.count > 1 ? try Self.decode(halves[1], parameter: name) : ""
            pairs.append((name, value))
        }
    }

    /// The value of `name`, or nil; refused when it is given more than once.
    func single(_ name: String) throws(APIRefusal) -> String? {
        let values = pairs.filter { $0.name == name }
        guard values.count <= 1 else {
            throw APIRefusal(.badRequest, .invalidParameter, "\(name) is given \(values.count) times; give it once", parameter: name)
        }
        return values.first?.value
    }

    /// - Parameter parameter: the name whose value this is, for the error.
    static func decode(_ text: Substring, parameter: String?) throws(APIRefusal) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            switch byte {
            case UInt8(ascii: "+"): bytes.append(UInt8(ascii: " "))
            case UInt8(ascii: "%"):
                guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                    throw APIRefusal(
                        .badRequest,
                        .invalidParameter,
                        "the query holds a % that is not followed by two hex digits",
                        parameter: parameter
                    )
                }
                bytes.append(high << 4 | low)
            default: bytes.append(byte)
            }
        }
        let what = parameter.map { "\($0)'s value" } ?? "a parameter's name"
        guard let decoded = String(validating: bytes, as: UTF8.self) else {
            throw APIRefusal(.badRequest, .invalidParameter, "\(what) decodes to bytes that are not UTF-8", parameter: parameter)
        }
        // No stored name or value can hold one (ingest refuses them), and the database would cut the value at it.
        guard !bytes.contains(0) else {
            throw APIRefusal(.badRequest, .invalidParameter, "\(what) holds a NUL character (%00)", parameter: parameter)
        }
        return decoded
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

/// One query parameter of a report route: the CLI's flag without its dashes (`start-event`,
/// `step`), the params field it fills (`start_event`, `steps`), and its JSON type.
struct ReportParameter: Sendable, Equatable {
    enum Kind: String, Sendable {
        case string, integer, strings
    }

    var name: String
    var field: String
    var kind: Kind
    /// Whether the report refuses to run without it.
    var required = false

    /// The fields each report needs (by the report's name), as the reports check them.
    static let requiredFields: [String: Set<String>] = [
        "uniques": ["by"], "stats": ["event", "attr"], "timeline": ["user"], "funnel": ["steps"],
        "retention": ["start_event", "return_event"], "engagement": ["entity"],
    ]

    /// The CLI's flags for array fields are singular and repeated (`--step A --step B`).
    static let singularFlags = ["steps": "step", "traits": "trait"]

    /// The parameters of a report, from its params' fields (every one but `app`, which the path holds).
    static func of(_ entry: ReportEntry) -> [ReportParameter] {
        entry.fields.compactMap { field in
            guard field.name != "app" else { return nil }
            let kind: Kind =
                switch field.type {
                case "integer": .integer
                case "array of strings": .strings
                default: .string
                }
            return ReportParameter(
                name: singularFlags[field.name] ?? field.name.replacingUnderscores,
                field: field.name,
                kind: kind,
                required: requiredFields[entry.name]?.contains(field.name) == true
            )
        }
    }

    /// What each parameter means, for the OpenAPI document.
    static let summaries: [String: String] = [
        "since": "Start of the period: RFC 3339 (2024-05-01T00:00:00Z), a date (2024-05-01, midnight in tz) or relative (24h, 7d).",
        "until": "End of the period (exclusive), absolute or relative.",
        "tz": "Time zone for calendar buckets, e.g. Europe/Berlin (UTC when absent).",
        "timeout_s": "The report's time limit in seconds, 1 to 3600 (30 when absent).",
        "by": "The bucket: hour, day, week or month (report by report, as the CLI says).",
        "event": "An event name.",
        "type": "An event type: track, page_view, interaction, identify, …",
        "top": "Only the N largest rows.",
        "breakdown": "Count events and people per value of this attribute.",
        "attr": "A numeric attribute of the event, e.g. price.",
        "user": "A user id (or an anonymous id that identity resolved).",
        "limit": "At most this many rows.",
        "steps": "A funnel step's event name; repeat it, two or more times, in order.",
        "within": "All steps within this long of the first, e.g. 7d.",
        "by_trait": "One funnel per value of this user trait, e.g. plan.",
        "start_event": "The event that puts a person in a cohort.",
        "return_event": "The event that counts as coming back.",
        "periods": "How many periods after the cohort's own (8 when absent).",
        "did": "People who did this event.",
        "not_did": "People who did not do this event in the period (repeatable).",
        "traits": "A condition on user traits, e.g. plan = 'pro' (repeatable).",
        "where": "A condition on the did event's attributes, e.g. price > 150.",
        "times": "How often did happened: 3 (exactly), >5, >=2, <3, !=0.",
        "entity": "flow, checklist, survey, nps, resource_center, experiment, hotspot, banner or chat.",
        "source": "Sessions: server (computed from inactivity, the default) or sender (the events' own session ids).",
        "id": "One entity id (for a survey: its answer distribution per question).",
    ]
}

extension String {
    var replacingUnderscores: String { String(map { $0 == "_" ? "-" : $0 }) }
}

/// Turns a report route's query into the report's params: each parameter by its CLI name (or
/// its field name), typed; anything else is refused with the parameter named.
struct ReportQuery {
    let parameters: [ReportParameter]

    init(_ entry: ReportEntry) { parameters = ReportParameter.of(entry) }

    /// The query parameter a params field came from, for error messages.
    func name(ofField field: String) -> String { parameters.first { $0.field == field }?.name ?? field.replacingUnderscores }

    /// The report's params as JSON for `app`, from `query`. `ignoring` names parameters the
    /// route reads itself (`format`).
    func params(app: String, query: QueryParameters, ignoring: Set<String> = []) throws(APIRefusal) -> JSON {
        var object: JSONObject = ["app": .string(app)]
        var seen: Set<String> = []
        for (name, value) in query.pairs where !ignoring.contains(name) {
            guard let parameter = parameters.first(where: { $0.name == name || $0.field == name }) else {
                let known = parameters.map(\.name).joined(separator: ", ")
                throw APIRefusal(.badRequest, .unknownParameter, "\(name) is not a parameter of this report; it takes \(known)", parameter: name)
            }
            switch parameter.kind {
            case .strings:
                var list = object[parameter.field]?.arrayValue ?? []
                list.append(.string(value))
                object[parameter.field] = .array(list)
            case .string, .integer:
                guard seen.insert(parameter.field).inserted else {
                    throw APIRefusal(.badRequest, .invalidParameter, "\(name) is given more than once; give it once", parameter: name)
                }
                if parameter.kind == .integer {
                    guard let number = Int64(value) else {
                        throw APIRefusal(.badRequest, .invalidParameter, "\(name) must be a whole number; found '\(value)'", parameter: name)
                    }
                    object[parameter.field] = .int(number)
                } else {
                    object[parameter.field] = .string(value)
                }
            }
        }
        return .object(object)
    }
}
