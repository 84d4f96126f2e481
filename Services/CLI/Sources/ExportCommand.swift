import ArgumentParser
import CairnCore
import Foundation

extension CairnCommand {
    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Hand stored events on to the rest of the data stack.",
            subcommands: [Segment.self, JSONLines.self])
    }
}

/// Options both exports share.
struct ExportOptions: ParsableArguments {
    @Option(name: .long, help: "The app to export.")
    var app: String

    @Option(name: .long, help: "Start of the period: RFC 3339 or relative (24h, 7d).")
    var since: String?

    @Option(name: .long, help: "End of the period (exclusive).")
    var until: String?

    func params(out: String) -> JSON {
        var object: JSONObject = ["app": .string(app), "out": .string(absolute(out))]
        if let since { object["since"] = .string(since) }
        if let until { object["until"] = .string(until) }
        return .object(object)
    }

    private func absolute(_ path: String) -> String {
        URL(fileURLWithPath: path, relativeTo: URL(fileURLWithPath: FileManager.default.currentDirectoryPath)).standardizedFileURL.path
    }
}

extension CairnCommand.Export {
    /// `cairn export segment --app A --out DIR`.
    struct Segment: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write Segment /v1/batch files (batch-000001.json, …) into a directory.",
            discussion: "Existing batch-*.json files in the directory are replaced.")

        @OptionGroup var export: ExportOptions

        @Option(name: .long, help: "The directory to write batch files into.", completion: .directory)
        var out: String

        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            let result = try await connection.call("export", "export.segment", export.params(out: out))
            print("exported \(result["messages"]?.intValue ?? 0) messages in \(result["files"]?.intValue ?? 0) batch files to \(result["directory"]?.stringValue ?? out)"
                  + ((result["truncated"]?.intValue ?? 0) > 0 ? " (\(result["truncated"]!.intValue!) cut down to fit 32000 bytes)" : ""))
            if let skipped = result["skipped"]?.intValue, skipped > 0 {
                for entry in result["skipped_events"]?.arrayValue ?? [] {
                    printError("skipped \(entry["internal_event_id"]?.stringValue ?? "?"): \(entry["reason"]?.stringValue ?? "")")
                }
                throw ExitCode(2)
            }
        }
    }

    /// `cairn export jsonl --app A --out FILE`.
    struct JSONLines: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "jsonl",
            abstract: "Write the canonical (Userpilot-schema) events as JSON lines.")

        @OptionGroup var export: ExportOptions

        @Option(name: .long, help: "The file to write.", completion: .file())
        var out: String

        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            let result = try await connection.call("export", "export.jsonl", export.params(out: out))
            print("exported \(result["events"]?.intValue ?? 0) events to \(result["file"]?.stringValue ?? out)")
        }
    }
}
