import ArgumentParser
import CairnCore
import Foundation

extension CairnCommand {
    /// `cairn status`: each service's health, pid, uptime, restarts and counters.
    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the health, pid, uptime and counters of every service.")

        @Option(name: .long, help: "Output: table, json or csv.")
        var format: OutputFormat = .table

        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            let result = try await connection.call("supervisor", "supervisor.status", .object(JSONObject()))
            var rows: [JSON] = []
            for service in result["services"]?.arrayValue ?? [] {
                let status = service["status"]
                var counters = status?["counters"]?.objectValue ?? JSONObject()
                for key in ["spool_depth", "dead_letters"] {
                    if let value = status?[key] { counters[key] = value }
                }
                let summary = counters.map { "\($0.key)=\(TableRenderer.text($0.value))" }.joined(separator: " ")
                rows.append([
                    "service": service["name"] ?? .null, "state": service["state"] ?? .null,
                    "health": status?["health"] ?? (service["name"]?.stringValue == "postgres" ? .string(service["state"]?.stringValue == "running" ? "ok" : "down") : .null),
                    "pid": service["pid"] ?? .null, "uptime_s": service["uptime_s"] ?? .null,
                    "restarts": service["restarts"] ?? .null, "counters": .string(summary),
                ])
            }
            let table: JSON = ["columns": ["service", "state", "health", "pid", "uptime_s", "restarts", "counters"], "rows": .array(rows)]
            if format == .json {
                print(result.serializedString())
            } else {
                print("stack \(result["stack"]?.stringValue ?? "?") is \(result["phase"]?.stringValue ?? "?") (supervisor pid \(result["supervisor_pid"]?.intValue ?? 0))")
                print(TableRenderer.render(table, format: format))
            }
        }
    }
}
