import CairnCore
import CairnMethods
import CairnWire

@testable import CairnExport

// Tests write method parameters as JSON, as a client sends them; they are decoded here
// exactly as the RPC router decodes them.

extension TriggerInput {
    /// A trigger definition from `triggers.add` parameters; the app (which the definition does
    /// not read) is filled in when a test leaves it out.
    static func definition(from params: JSON) throws -> TriggerDefinition {
        var object = params.objectValue ?? JSONObject()
        if object["app"] == nil { object["app"] = "test" }
        do {
            return try definition(from: JSONCoding.decode(TriggersAdd.Params.self, from: .object(object)))
        } catch let error as JSONDecodingError {
            throw RPCError.invalidParams(error)
        }
    }
}

extension ExportService.ExportRequest {
    init(params: JSON) throws {
        try self.init(params: JSONCoding.decode(ExportParams.self, from: params))
    }
}
