import ArgumentParser
import CairnCore
import CairnMethods
import CairnWire
import Foundation

extension CairnCommand {
    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Hand stored events on to the rest of the data stack.",
            subcommands: [Segment.self, JSONLines.self, Status.self]
        )
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

    func params(out: String?) -> ExportParams {
        ExportParams(app: app, since: since, until: until, out: out.map(absolute))
    }

    private func absolute(_ path: String) -> String {
        URL(fileURLWithPath: path, relativeTo: URL(fileURLWithPath: FileManager.default.currentDirectoryPath)).standardizedFileURL.path
    }
}

extension CairnCommand.Export {
    /// `cairn export segment --app A (--out DIR | --to URL --write-key K [--gzip])`.
    struct Segment: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write Segment /v1/batch files into a directory, or POST the batches to a Segment-compatible endpoint.",
            discussion: """
                With --out, existing batch-*.json files in the directory are replaced. With --to, each batch is \
                POSTed with Basic auth (the write key as the username); network errors, 408, 429 (honouring \
                Retry-After) and 5xx are retried with exponential backoff and jitter, and any other 4xx fails \
                the batch, which is reported. The export stops when the endpoint stays unavailable.
                """
        )

        @OptionGroup var export: ExportOptions

        @Option(name: .long, help: "The directory to write batch files into.", completion: .directory)
        var out: String?

        @Option(name: .long, help: "A Segment-compatible endpoint: a batch URL, or an origin such as https://api.segment.io.")
        var to: String?

        @Option(name: .customLong("write-key"), help: "The destination's write key (with --to).")
        var writeKey: String?

        @Flag(name: .long, help: "Send the batches gzip-compressed (with --to).")
        var gzip = false

        @OptionGroup var connection: ConnectionOptions

        func validate() throws {
            guard (out == nil) != (to == nil) else { throw ValidationError("give exactly one of --out DIR or --to URL") }
            if to != nil && (writeKey ?? "").isEmpty { throw ValidationError("--to needs --write-key") }
        }

        func run() async throws {
            if let to {
                var params = export.params(out: nil)
                params.to = to
                params.write_key = writeKey
                params.gzip = gzip
                let result = try await connection.call(ExportSegment.self, params)
                let failed = result["failed_batches"]?.arrayValue ?? []
                print(
                    "delivered \(result["delivered"]?.intValue ?? 0) of \(result["messages"]?.intValue ?? 0) messages in \(result["batches"]?.intValue ?? 0) batches to \(result["destination"]?.stringValue ?? to)"
                )
                for batch in failed {
                    printError(
                        "batch \(batch["batch"]?.intValue ?? 0) (\(batch["messages"]?.intValue ?? 0) messages) failed after \(batch["attempts"]?.intValue ?? 0) attempts: "
                            + "\(batch["status"]?.intValue.map { "HTTP \($0)" } ?? "no response"): \(batch["response"]?.stringValue ?? "")"
                    )
                }
                if result["stopped"]?.boolValue == true {
                    printError(
                        "stopped: the destination stayed unavailable; run the export again to resume (messageIds repeat, so the destination deduplicates)"
                    )
                }
                try reportSkipped(result)
                if !failed.isEmpty || result["stopped"]?.boolValue == true { throw ExitCode(2) }
                return
            }
            let result = try await connection.call(ExportSegment.self, export.params(out: out))
            print(
                "exported \(result["messages"]?.intValue ?? 0) messages in \(result["files"]?.intValue ?? 0) batch files to \(result["directory"]?.stringValue ?? out ?? "")"
                    + ((result["truncated"]?.intValue ?? 0) > 0 ? " (\(result["truncated"]!.intValue!) cut down to fit 32000 bytes)" : "")
            )
            try reportSkipped(result)
        }

        /// Names the messages that could not be sent at all; exit status 2 when there are any.
        private func reportSkipped(_ result: JSON) throws {
            guard let skipped = result["skipped"]?.intValue, skipped > 0 else { return }
            for entry in result["skipped_events"]?.arrayValue ?? [] {
                printError("skipped \(entry["internal_event_id"]?.stringValue ?? "?"): \(entry["reason"]?.stringValue ?? "")")
            }
            throw ExitCode(2)
        }
    }

    /// `cairn export jsonl --app A --out FILE`.
    struct JSONLines: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "jsonl",
            abstract: "Write the canonical (Userpilot-schema) events as JSON lines."
        )

        @OptionGroup var export: ExportOptions

        @Option(name: .long, help: "The file to write.", completion: .file())
        var out: String

        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            let result = try await connection.call(ExportJSONLines.self, export.params(out: out))
            print("exported \(result["events"]?.intValue ?? 0) events to \(result["file"]?.stringValue ?? out)")
        }
    }
}

extension CairnCommand.Export {
    /// `cairn export status`: each continuous destination's checkpoint, lag, last error and totals.
    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show each continuous destination's state, checkpoint, lag, totals and last error.",
            discussion: """
                Continuous destinations are declared in the stack file (settings.destinations of the export \
                service). pending counts the messages committed after the checkpoint; lag_s is how long the \
                oldest of them has waited since Cairn received it.
                """
        )

        @Option(name: .long, help: "Output: table, json or csv.")
        var format: OutputFormat = .table

        @OptionGroup var connection: ConnectionOptions

        static let columns = [
            "destination", "app", "state", "pending", "lag_s", "delivered", "batches", "failed", "failed_batches",
            "skipped", "checkpoint", "last_delivered_at", "last_error", "last_error_at", "url",
        ]

        func run() async throws {
            let result = try await connection.call(ExportStatus.self, NoParams())
            let rows = result["destinations"]?.arrayValue ?? []
            if rows.isEmpty && format == .table {
                print("no continuous destinations: declare them under settings.destinations of the export service in the stack file")
                return
            }
            guard format == .table else {
                print(TableRenderer.render(["columns": .array(Self.columns.map(JSON.string)), "rows": .array(rows)], format: format))
                return
            }
            // One block per destination: the errors are too long for a table's columns.
            for row in rows {
                func text(_ key: String) -> String { TableRenderer.text(row[key]) }
                print("\(text("destination")) (app \(text("app"))) → \(text("url"))")
                print("  state       \(text("state"))" + (row["state_detail"]?.stringValue.map { ": \($0)" } ?? ""))
                print("  checkpoint  \(text("checkpoint"))")
                print("  pending     \(text("pending")) messages, lag \(text("lag_s")) s")
                print(
                    "  delivered   \(text("delivered")) messages in \(text("batches")) batches, last at \(row["last_delivered_at"]?.stringValue ?? "never")"
                )
                print("  failed      \(text("failed")) messages in \(text("failed_batches")) refused batches; \(text("skipped")) skipped")
                if let error = row["last_error"]?.stringValue {
                    print("  last error  \(error) (at \(text("last_error_at")))")
                }
            }
        }
    }
}
