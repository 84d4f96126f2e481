import ArgumentParser
import CairnCore
import CairnMethods

extension CairnCommand {
    struct Retention: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove events older than each app's retention window (cairn apps configure --retention).",
            subcommands: [Run.self]
        )
    }
}

extension CairnCommand.Retention {
    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the retention job now (it also runs daily), or with --dry-run show what it would remove.",
            discussion: """
                Each app with a window loses its events from before the start of the UTC day that long ago, \
                with what derives from them: rollups and sessions are derived again from what remains. A \
                month partition that every app in it has outlived is dropped whole; otherwise the app's rows \
                are deleted (--no-drop always deletes). People, their traits and aliases stay.
                """
        )

        @Option(name: .long, help: "One app (name or token); by default every app with a retention window.")
        var app: String?

        @Flag(name: .long, help: "Show what would be removed, and change nothing.")
        var dryRun = false

        @Flag(name: .long, help: "Delete app by app even where a whole partition could be dropped.")
        var noDrop = false

        @Option(name: .long, help: "Output: table or json.")
        var format: OutputFormat = .table

        @OptionGroup var connection: ConnectionOptions

        func validate() throws {
            guard format != .csv else { throw ValidationError("--format must be table or json") }
        }

        func run() async throws {
            let result = try await connection.call(RetentionRun.self, .init(app: app, dry_run: dryRun, drop_partitions: !noDrop))
            guard format == .table else {
                print(result.serializedString())
                return
            }
            let apps = result["apps"]?.arrayValue ?? []
            if apps.isEmpty {
                print("no app has a retention window: cairn apps configure --app NAME --retention 13mo")
                return
            }
            let verb = dryRun ? "would remove" : "removed"
            for row in apps {
                func text(_ key: String) -> String { TableRenderer.text(row[key]) }
                print(
                    "\(text("app")) (keeps \(text("retention")), before \(text("cutoff"))): \(verb) \(text("events")) events by \(text("method")); "
                        + "rollups of \(text("persons_rederived")) people derived again, \(text("sessions_removed")) sessions removed, "
                        + "\(text("sessions_recomputed_persons")) people's sessions recomputed"
                )
            }
            for partition in result["partitions_dropped"]?.arrayValue ?? [] {
                print(
                    "partition \(TableRenderer.text(partition["partition"])) [\(TableRenderer.text(partition["from"])), \(TableRenderer.text(partition["to"]))) "
                        + (dryRun ? "would be dropped" : "dropped")
                )
            }
            print("\(dryRun ? "dry run" : "done") in \(TableRenderer.text(result["seconds"])) s")
        }
    }
}
