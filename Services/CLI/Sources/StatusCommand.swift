import ArgumentParser
import CairnCore
import CairnMethods
import CairnWire
import Foundation

extension CairnCommand {
    /// `cairn status`: each service's health, pid, uptime, restarts and counters. Like
    /// `pg_isready`, its exit status says whether the stack is fully up: 0 when every service
    /// is running and ok, 1 when any is starting, degraded or down (the reasons follow the
    /// table), 2 when the supervisor cannot be reached. Scripts can wait on it.
    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the health, pid, uptime and counters of every service.",
            discussion:
                "Exits 0 when the stack is fully up and healthy, 1 when it is starting, degraded or partly down, 2 when the supervisor cannot be reached."
        )

        @Option(name: .long, help: "Output: table, json or csv.")
        var format: OutputFormat = .table

        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            let result: JSON
            do {
                result = try await connection.call(SupervisorStatus.self, NoParams())
            } catch {
                printError("\(error)")
                throw ExitCode(2)
            }
            var rows: [JSON] = []
            var followers: [JSON] = []
            var problems: [String] = []
            if result["phase"]?.stringValue != "running" { problems.append("the stack is \(result["phase"]?.stringValue ?? "in an unknown phase")") }
            for service in result["services"]?.arrayValue ?? [] {
                let status = service["status"]
                var counters = status?["counters"]?.objectValue ?? JSONObject()
                for key in ["spool_depth", "dead_letters"] {
                    if let value = status?[key] { counters[key] = value }
                }
                let summary = counters.map { "\($0.key)=\(TableRenderer.text($0.value))" }.joined(separator: " ")
                let name = service["name"]?.stringValue ?? "?"
                for follower in status?["followers"]?.arrayValue ?? [] {
                    followers.append([
                        "follower": follower["follower"] ?? .null, "app": follower["app"] ?? .null, "lag_events": follower["lag_events"] ?? .null,
                        "lag_seconds": follower["lag_seconds"] ?? .null, "folded_events": follower["folded_events"] ?? .null,
                    ])
                }
                if service["state"]?.stringValue == "flapping" {
                    problems.append("\(name): flapping (restarting again and again; its log says why)")
                } else if name == "postgres" {
                    if service["state"]?.stringValue != "running" { problems.append("postgres: \(service["state"]?.stringValue ?? "not running")") }
                } else if let health = status?["health"]?.stringValue, health != "ok" {
                    problems.append("\(name): \(health)\(status?["reason"]?.stringValue.map { ", " + $0 } ?? "")")
                } else if status?["health"] == nil {
                    problems.append("\(name): \(service["state"]?.stringValue ?? "no status")")
                }
                rows.append([
                    "service": service["name"] ?? .null, "state": service["state"] ?? .null,
                    "health": status?["health"]
                        ?? (service["name"]?.stringValue == "postgres" ? .string(service["state"]?.stringValue == "running" ? "ok" : "down") : .null),
                    "pid": service["pid"] ?? .null, "uptime_s": service["uptime_s"] ?? .null,
                    "restarts": service["restarts"] ?? .null, "counters": .string(summary),
                ])
            }
            let table: JSON = ["columns": ["service", "state", "health", "pid", "uptime_s", "restarts", "counters"], "rows": .array(rows)]
            if format == .json {
                print(result.serializedString())
            } else {
                print(
                    "stack \(result["stack"]?.stringValue ?? "?") is \(result["phase"]?.stringValue ?? "?") (supervisor pid \(result["supervisor_pid"]?.intValue ?? 0))"
                )
                print(TableRenderer.render(table, format: format))
                if !followers.isEmpty {
                    // What reports have folded: the rest they read from the events log directly.
                    let columns: JSON = ["follower", "app", "lag_events", "lag_seconds", "folded_events"]
                    print(TableRenderer.render(["columns": columns, "rows": .array(followers)], format: format))
                }
                if !problems.isEmpty {
                    print("stack is degraded:")
                    for problem in problems { print("  \(problem)") }
                }
            }
            if !problems.isEmpty { throw ExitCode(1) }
        }
    }
}
