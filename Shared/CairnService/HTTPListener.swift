import CairnCore
import Foundation
import NIOCore
import ServiceLifecycle

/// A `host:port` an HTTP listener binds: from an environment variable, else a stack file
/// setting, else a default. Ingest and the console read theirs the same way.
public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// The address `variable` names when set and not empty, else `settings.http_address`, else `fallback`.
    /// - Throws: ``ServiceError`` `configuration` when the value is not `host:port`.
    public init(variable: String, environment: [String: String], settings: JSONObject, fallback: ListenAddress) throws(ServiceError) {
        guard let text = environment[variable].flatMap({ $0.isEmpty ? nil : $0 }) ?? settings["http_address"]?.stringValue else {
            self = fallback
            return
        }
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            throw ServiceError(.configuration, "the HTTP address '\(text)' is not host:port (\(variable) or settings.http_address)")
        }
        host = String(text[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        self.port = port
    }

    public var description: String { "\(host):\(port)" }
}

/// Runs an HTTP server, and says which setting to change when its address is taken.
public struct HTTPListener<Server: Service>: Service {
    let server: Server
    let address: ListenAddress
    /// The variable that sets the address, named in the error.
    let variable: String
    let service: String

    public init(server: Server, address: ListenAddress, variable: String, service: String) {
        self.server = server
        self.address = address
        self.variable = variable
        self.service = service
    }

    public func run() async throws {
        do {
            try await server.run()
        } catch let error as IOError where error.errnoCode == EADDRINUSE {
            throw ServiceError(
                .configuration,
                "the HTTP address \(address) is in use by another process; set \(variable) or settings.http_address of the \(service) service"
            )
        }
    }
}
