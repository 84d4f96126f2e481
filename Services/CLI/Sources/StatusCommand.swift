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

    /// `cairn dead-letters`: the records ingest refused, newest first.
    struct DeadLetters: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "dead-letters", abstract: "List the records ingest refused, with why.")

        @Option(name: .long, help: "Only this app's dead letters.")
        var app: String?

        @Option(name: .long, help: "How many to list.")
        var limit: Int = 50

        @Option(name: .long, help: "Output: table, json or csv.")
        var format: OutputFormat = .table

        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            var params: JSONObject = ["limit": .int(Int64(limit))]
            if let app { params["app"] = .string(app) }
            let result = try await connection.call("ingest", "ingest.dead_letters", .object(params))
            let columns: JSON = ["id", "received_at", "app", "source", "record", "code", "field", "message", "raw"]
            print(TableRenderer.render(["columns": columns, "rows": result["rows"] ?? .array([])], format: format))
        }
    }
}
