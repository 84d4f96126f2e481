import CairnCore
import Foundation

/// A stack file from `compose/`: which services to run, how, and in what order.
///
/// ```json
/// {"name": "default",
///  "services": [{"name": "storage", "executable": "cairn-storage", "depends_on": [],
///                "args": [], "env": {}, "settings": {}, "restart": "always"}],
///  "restart_backoff_ms": {"initial": 250, "max": 30000},
///  "health_timeout_s": 60, "shutdown_timeout_s": 15}
/// ```
public struct StackFile: Sendable, Equatable {
    public enum RestartPolicy: String, Sendable {
        /// Restart whenever it exits unless the stack is stopping.
        case always
        /// Restart only when it exits with an error or a signal.
        case onFailure = "on-failure"
        case never
    }

    public struct ServiceEntry: Sendable, Equatable {
        public var name: String
        /// A path, or a name looked up next to the supervisor binary.
        public var executable: String
        public var dependsOn: [String]
        public var arguments: [String]
        public var environment: [String: String]
        /// Service-specific configuration (the export service's destinations), handed to the
        /// service as JSON in `CAIRN_SERVICE_SETTINGS`.
        public var settings: JSON?
        public var restart: RestartPolicy
    }

    public var name: String
    public var services: [ServiceEntry]
    public var initialBackoff: Duration
    public var maximumBackoff: Duration
    public var healthTimeout: Duration
    public var shutdownTimeout: Duration

    public static func load(path: String) throws(SupervisorError) -> StackFile {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SupervisorError(.invalidStack, "cannot read stack file \(path)")
        }
        do {
            return try parse(JSONParser.parse(Array(data)), origin: path)
        } catch let error as SupervisorError {
            throw error
        } catch {
            throw SupervisorError(.invalidStack, "\(path): \(error)")
        }
    }

    public static func parse(_ value: JSON, origin: String) throws(SupervisorError) -> StackFile {
        func fail(_ message: String) -> SupervisorError { SupervisorError(.invalidStack, "\(origin): \(message)") }
        guard case .object = value else { throw fail("expected a JSON object") }
        guard let entries = value["services"]?.arrayValue, !entries.isEmpty else { throw fail("'services' must be a non-empty array") }
        var services: [ServiceEntry] = []
        for (index, entry) in entries.enumerated() {
            guard let name = entry["name"]?.stringValue, !name.isEmpty else { throw fail("services[\(index)].name must be a non-empty string") }
            // The name names the instance's socket and files (ingest's spool), so it must be a plain file name.
            guard name.count <= 40, name != "supervisor", name != "postgres",
                name.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D || $0 == 0x5F })
            else {
                throw fail("services[\(index)].name '\(name)' must be at most 40 of a-z, 0-9, '-' and '_', and not 'supervisor' or 'postgres'")
            }
            let executable = entry["executable"]?.stringValue ?? "cairn-\(name)"
            var dependsOn: [String] = []
            for dependency in entry["depends_on"]?.arrayValue ?? [] {
                guard let text = dependency.stringValue else { throw fail("services[\(index)].depends_on must list service names") }
                dependsOn.append(text)
            }
            var arguments: [String] = []
            for argument in entry["args"]?.arrayValue ?? [] {
                guard let text = argument.stringValue else { throw fail("services[\(index)].args must be strings") }
                arguments.append(text)
            }
            var environment: [String: String] = [:]
            for (key, value) in entry["env"]?.objectValue ?? JSONObject() {
                guard let text = value.stringValue else { throw fail("services[\(index)].env.\(key) must be a string") }
                environment[key] = text
            }
            let settings = entry["settings"]
            if let settings, settings.objectValue == nil { throw fail("services[\(index)].settings must be an object") }
            let policyName = entry["restart"]?.stringValue ?? "always"
            guard let policy = RestartPolicy(rawValue: policyName) else {
                throw fail("services[\(index)].restart must be always, on-failure or never")
            }
            services.append(
                ServiceEntry(
                    name: name,
                    executable: executable,
                    dependsOn: dependsOn,
                    arguments: arguments,
                    environment: environment,
                    settings: settings,
                    restart: policy
                )
            )
        }
        let stack = StackFile(
            name: value["name"]?.stringValue ?? "stack",
            services: try order(services, fail: fail),
            initialBackoff: .milliseconds(value["restart_backoff_ms"]?["initial"]?.intValue ?? 250),
            maximumBackoff: .milliseconds(value["restart_backoff_ms"]?["max"]?.intValue ?? 30_000),
            healthTimeout: .seconds(value["health_timeout_s"]?.intValue ?? 60),
            shutdownTimeout: .seconds(value["shutdown_timeout_s"]?.intValue ?? 15)
        )
        return stack
    }

    /// Services in dependency order (dependencies first); refuses unknown names and cycles.
    static func order(_ services: [ServiceEntry], fail: (String) -> SupervisorError) throws(SupervisorError) -> [ServiceEntry] {
        let byName = Dictionary(services.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        guard byName.count == services.count else { throw fail("service names must be unique") }
        var ordered: [ServiceEntry] = []
        var state: [String: Bool] = [:]  // false: visiting, true: done
        func visit(_ name: String, from: String) throws(SupervisorError) {
            if state[name] == true { return }
            if state[name] == false { throw fail("dependency cycle through '\(name)'") }
            guard let service = byName[name] else { throw fail("'\(from)' depends on unknown service '\(name)'") }
            state[name] = false
            for dependency in service.dependsOn { try visit(dependency, from: name) }
            state[name] = true
            ordered.append(service)
        }
        for service in services { try visit(service.name, from: service.name) }
        return ordered
    }
}
