import CairnCore
import CairnMethods
import CairnWire
import Foundation
import Testing

@Suite struct MethodCatalogTests {
    /// docs/rpc.md is what `make rpc-docs` writes from the types; edit the types, then run it.
    @Test func theReferenceIsUpToDate() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../docs/rpc.md").standardized.path
        let written = try String(contentsOfFile: path, encoding: .utf8)
        let same = written == MethodCatalog.reference()
        #expect(same, "docs/rpc.md is out of date: run `make rpc-docs`")
    }

    @Test func everyMethodHasOneNameAndOneService() {
        let names = MethodCatalog.all.map { $0.name }
        #expect(Set(names).count == names.count)
        for method in MethodCatalog.all {
            let prefix = method.name.split(separator: ".").first.map(String.init) ?? ""
            #expect(!method.summary.isEmpty, "\(method.name) has no summary")
            #expect(method.deadline > .zero)
            if prefix == "report" { #expect(method.service == .reporting) }
            if ["ingest", "export", "storage", "supervisor"].contains(prefix) { #expect(method.service.rawValue == prefix) }
        }
    }

    /// Parameters decode from what a client sends and encode back to the same JSON; a field
    /// of the wrong type is named, with what it expected.
    @Test func parametersDecodeAndNameTheFieldAtFault() throws {
        let sent: JSON = ["app": "shop", "since": "7d", "by": "day", "top": 5, "ignored": true]
        let params = try JSONCoding.decode(ReportEvents.Params.self, from: sent)
        #expect(params.scope.app == "shop" && params.scope.since == "7d" && params.scope.tz == nil)
        #expect(params.options.by == "day" && params.options.top == 5 && params.options.event == nil)
        #expect(JSONCoding.encode(params) == ["app": "shop", "since": "7d", "by": "day", "top": 5])

        #expect(throws: JSONDecodingError(path: ["top"], expected: "an integer", found: "\"five\"")) {
            try JSONCoding.decode(ReportEvents.Params.self, from: ["app": "shop", "top": "five"])
        }
        #expect(throws: JSONDecodingError(path: ["app"], expected: "a string", found: "nothing")) {
            try JSONCoding.decode(ReportEvents.Params.self, from: ["top": 5])
        }
        #expect(throws: JSONDecodingError(path: ["steps", "1"], expected: "a string", found: "the number 2")) {
            try JSONCoding.decode(ReportFunnel.Params.self, from: ["app": "shop", "steps": ["a", 2]])
        }
        let error = RPCError.invalidParams(JSONDecodingError(path: ["steps", "1"], expected: "a string", found: "the number 2"))
        #expect(error.message == "params.steps[1]: expected a string, found the number 2")
        #expect(error.fieldReason?.field == "steps[1]")
    }

    /// JSON fields pass through whole: key order, exact big numbers and nesting kept.
    @Test func jsonFieldsPassThroughUntouched() throws {
        let record: JSON = ["z": 1, "a": .number("123456789012345678901234567890"), "m": ["x": [true, .null]]]
        let params = try JSONCoding.decode(IngestSubmit.Params.self, from: ["app": "shop", "records": [record], "lines": [7]])
        #expect(params.records == [record])
        #expect(params.records[0].serializedString() == record.serializedString())
        #expect(JSONCoding.encode(params)["records"] == [record])
    }

    /// The reference lists each method's fields from its type.
    @Test func fieldsAreReadFromTheTypes() {
        let fields = JSONCoding.fields(of: ReportRetention.Params.self)
        #expect(fields.map(\.name) == ["app", "since", "until", "tz", "timeout_s", "start_event", "return_event", "by", "periods"])
        #expect(fields.first == JSONFieldDescription(name: "app", type: "string", required: true))
        #expect(fields.last == JSONFieldDescription(name: "periods", type: "integer", required: false))
        #expect(JSONCoding.fields(of: StorageWrite.Result.self).map(\.name) == ["inserted", "duplicates", "suppressed", "rejected"])
    }
}
