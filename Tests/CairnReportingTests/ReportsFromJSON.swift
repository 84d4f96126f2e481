import CairnCore
import CairnMethods
import CairnReporting
import Foundation

// Tests write report parameters as JSON, as a client sends them; they are decoded here
// exactly as the RPC router decodes them.

extension Report {
    init(params: JSON, now: Timestamp = .now()) throws {
        try self.init(params: JSONCoding.decode(Method.Params.self, from: params), now: now)
    }
}

extension ReportScope {
    init(params: JSON, now: Timestamp = .now()) throws {
        try self.init(JSONCoding.decode(ReportScopeParams.self, from: params), now: now)
    }
}

/// An error as the CLI words it: the parameter at fault named by its flag.
func cliWording(_ error: any Error) -> String? {
    guard let error = error as? any ApplicationError else { return nil }
    return error.field.map { "--\($0.replacingOccurrences(of: "_", with: "-")) \(error.reason)" } ?? error.reason
}
