import ArgumentParser
import CairnCore
import CairnMethods
import CairnWire
import Foundation

extension CairnCommand {
    /// `cairn users`: one person as identity resolved them, and explicit merges.
    struct Users: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Inspect users and merge two identified users.",
            subcommands: [Show.self, Merge.self, Delete.self]
        )
    }

    /// `cairn companies`: one company with its traits and members.
    struct Companies: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Inspect companies.", subcommands: [Show.self])
    }
}

/// Prints a JSON object as `key: value` lines, nested arrays of objects as indented tables.
func printRecord(_ record: JSON, format: OutputFormat) {
    guard format != .json else {
        print(record.serializedString())
        return
    }
    for (key, value) in record.objectValue ?? JSONObject() {
        switch value {
        case .array(let rows) where rows.allSatisfy({ $0.objectValue != nil }):
            print("\(key):" + (rows.isEmpty ? " (none)" : ""))
            if !rows.isEmpty {
                let table = TableRenderer.render(["rows": value], format: .table)
                print(table.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
            }
        case .object(let object):
            print("\(key):" + (object.isEmpty ? " (none)" : ""))
            for (name, item) in object { print("  \(name): \(TableRenderer.text(item))") }
        default:
            print("\(key): \(TableRenderer.text(value))")
        }
    }
}

extension CairnCommand.Users {
    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a user: traits, company, aliases, merges, first and last seen, and event count."
        )

        @Option(name: .long, help: "The app's name or token.")
        var app: String

        @Option(name: .long, help: "The user id (an id merged into another user shows that user).")
        var user: String

        @Option(name: .long, help: "Output: table or json.")
        var format: OutputFormat = .table

        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            printRecord(try await connection.call(UsersShow.self, .init(app: app, user: user)), format: format)
        }
    }

    struct Merge: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Merge one identified user into another; their events, aliases and traits follow (the target's traits win)."
        )

        @Option(name: .long, help: "The app's name or token.")
        var app: String

        @Option(name: .long, help: "The user to merge away.")
        var from: String

        @Option(name: .long, help: "The user that remains.")
        var into: String

        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            let result = try await connection.call(UsersMerge.self, .init(app: app, from: from, into: into))
            if let token = result["app_token"]?.stringValue {
                // The survivor's sessions now span both histories. A repeated merge refreshes
                // them too: the first may have been cut short before its refresh.
                let survivor = result["into"]?.stringValue ?? into
                let merged = result["from"]?.stringValue ?? from
                _ = try await connection.call(
                    IdentityRefresh.self,
                    .init(app_token: token, persons: [survivor], forget: merged == survivor ? [] : [merged])
                )
            }
            if result["merged"] == .bool(true) {
                print("merged \(result["from"]?.stringValue ?? from) into \(result["into"]?.stringValue ?? into)")
            } else {
                print("\(from) and \(into) are already the same user (\(result["into"]?.stringValue ?? into))")
            }
        }
    }
}

extension CairnCommand.Users {
    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Erase a user everywhere (events, traits, aliases, sessions, spool, dead letters) and drop their later events."
        )

        @Option(name: .long, help: "The app's name or token.")
        var app: String

        @Option(name: .long, help: "The user id.")
        var user: String

        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            let erased = try await connection.call(UsersDelete.self, .init(app: app, user: user))
            // Every ingest instance holds a spool of its own, and each must drop the ids from now on.
            var purged: (spooled: Int64, deadLetters: Int64) = (0, 0)
            let token = erased["app_token"]?.stringValue ?? app
            let userIds = (erased["user_ids"]?.arrayValue ?? []).compactMap(\.stringValue)
            let anonymousIds = (erased["anonymous_ids"]?.arrayValue ?? []).compactMap(\.stringValue)
            for instance in await connection.ingestInstances() {
                let result = try await connection.call(
                    IngestSuppress.self,
                    .init(app_token: token, user_ids: userIds, anonymous_ids: anonymousIds),
                    on: instance
                )
                purged.spooled += result["spooled_events"]?.intValue ?? 0
                purged.deadLetters += result["dead_letters"]?.intValue ?? 0
            }
            _ = try await connection.call(IdentityRefresh.self, .init(app_token: token, forget: userIds + anonymousIds.map { "anonymous:" + $0 }))
            let removed = erased["removed"]?.objectValue ?? JSONObject()
            print("deleted user \(erased["user"]?.stringValue ?? user) of app \(app):")
            for (what, count) in removed { print("  \(what): \(TableRenderer.text(count))") }
            print("  spooled events: \(purged.spooled)")
            print("  dead letters: \(purged.deadLetters)")
            let ids = ((erased["user_ids"]?.arrayValue ?? []) + (erased["anonymous_ids"]?.arrayValue ?? [])).compactMap(\.stringValue)
            print("suppressed ids (later events are dropped and counted): \(ids.joined(separator: ", "))")
        }
    }
}

extension CairnCommand.Companies {
    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a company: traits, first and last seen, and members.")

        @Option(name: .long, help: "The app's name or token.")
        var app: String

        @Option(name: .long, help: "The company id.")
        var company: String

        @Option(name: .long, help: "Output: table or json.")
        var format: OutputFormat = .table

        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            printRecord(try await connection.call(CompaniesShow.self, .init(app: app, company: company)), format: format)
        }
    }
}
