import ArgumentParser
import CairnCore
import CairnMethods
import CairnWire
import Foundation

extension CairnCommand {
    /// `cairn apps`: the apps (tenants) events are sent to.
    struct Apps: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create and list apps, rotate their write keys, and set how personal data is stored.",
            subcommands: [Create.self, List.self, RotateKey.self, Configure.self]
        )
    }

    /// `cairn attributes`: the typed event attributes of an app (User.com's attribute registry).
    struct Attributes: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Register event attribute types (string, number, date, boolean, json).",
            subcommands: [Set.self, List.self]
        )
    }

    /// `cairn deadletters`: the records ingest refused, with why.
    struct DeadLetters: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "deadletters",
            abstract: "List refused records, or replay them through ingest.",
            subcommands: [List.self, Replay.self]
        )
    }
}

extension CairnCommand.Apps {
    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create an app; prints its token, write key (sends events) and read key (reads reports); the keys are shown only now."
        )

        @Argument(help: "The app's name.")
        var name: String

        @Option(name: .long, help: "The app token events are stored under (default: the name); e.g. a Userpilot app token to import its exports.")
        var token: String?

        @Option(name: .long, help: "Personal data in events (Userlike's client_email, client_name): keep, hash or drop.")
        var personalData: String = "hash"

        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            let result = try await connection.call(AppsCreate.self, .init(name: name, token: token, personal_data: personalData))
            print("app:           \(result["name"]?.stringValue ?? name)")
            print("app token:     \(result["token"]?.stringValue ?? "")")
            print("write key:     \(result["write_key"]?.stringValue ?? "")")
            print("read key:      \(result["read_key"]?.stringValue ?? "")")
            print("personal data: \(result["personal_data"]?.stringValue ?? "")")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the apps.")

        @Option(name: .long, help: "Output: table, json or csv.")
        var format: OutputFormat = .table

        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            print(TableRenderer.render(try await connection.call(AppsList.self, NoParams()), format: format))
        }
    }

    struct RotateKey: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate-key",
            abstract: "Issue a new write key (or, with --read, a new read key); the old one stops working."
        )

        @Option(name: .long, help: "The app's name or token.")
        var app: String

        @Flag(name: .long, help: "Rotate the read key, which the report API and the console take, instead of the write key.")
        var read = false

        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            if read {
                // The report API looks the key up on every request: the old one is refused at once.
                let result = try await connection.call(AppsRotateReadKey.self, AppParams(app: app))
                print("read key: \(result["read_key"]?.stringValue ?? "")")
                return
            }
            let result = try await connection.call(AppsRotateKey.self, AppParams(app: app))
            print("write key: \(result["write_key"]?.stringValue ?? "")")
            // Returns once every ingest has forgotten the old key, so it is refused from now on.
            try await connection.refreshApp(app)
        }
    }

    struct Configure: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Change an app's settings.")

        @Option(name: .long, help: "The app's name or token.")
        var app: String

        @Option(name: .long, help: "Personal data in events: keep, hash or drop.")
        var personalData: String?

        @Option(name: .long, help: "Inactivity after which a new session starts, e.g. 30m.")
        var sessionInactivity: String?

        @Option(name: .long, help: "The longest a session lasts, e.g. 24h.")
        var sessionMaxLength: String?

        @Option(name: .long, help: "Whether a Userlike contact's client_email identifies them (true or false).")
        var identifyUserlikeByEmail: Bool?

        @Option(name: .long, help: "The earliest event time accepted, e.g. 2015-01-01 (default 1970-01-01).")
        var earliestEventTime: String?

        @Option(name: .long, help: "How far after receipt an event time may lie, e.g. 48h (default 24h).")
        var futureAllowance: String?

        @Option(name: .long, help: "How long events are kept, e.g. 90d, 13mo or 2y; forever keeps them all (the default).")
        var retention: String?

        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            var params = AppsConfigure.Params(app: app)
            params.personal_data = personalData
            params.session_inactivity = sessionInactivity
            params.session_max_length = sessionMaxLength
            params.identify_userlike_by_email = identifyUserlikeByEmail
            params.earliest_event_time = earliestEventTime
            params.future_allowance = futureAllowance
            params.retention = retention
            let result = try await connection.call(AppsConfigure.self, params)
            try await connection.refreshApp(app)
            print(
                "\(result["name"]?.stringValue ?? app): personal data \(result["personal_data"]?.stringValue ?? ""), "
                    + "sessions end after \(result["session_inactivity_s"]?.intValue ?? 0) s idle or \(result["session_max_length_s"]?.intValue ?? 0) s long, "
                    + "Userlike email identifies: \(result["identify_userlike_by_email"]?.boolValue ?? false), "
                    + "event times from \(result["event_time_earliest"]?.stringValue ?? "") to \((result["event_time_future_s"]?.intValue ?? 0) / 3600)h after receipt, "
                    + "events kept \(result["retention"]?.stringValue.map { "for " + $0 } ?? "forever")"
            )
        }
    }
}

extension CairnCommand.Attributes {
    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Register (or change) the type of an event attribute.")

        @Option(name: .long, help: "The app's name or token.")
        var app: String

        @Option(name: .long, help: "The attribute's name, e.g. price.")
        var name: String

        @Option(name: .long, help: "string, number, date, boolean or json.")
        var type: String

        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            let result = try await connection.call(AttributesSet.self, .init(app: app, name: name, type: type))
            // Returns once every ingest applies the type, so the very next event is checked against it.
            try await connection.refreshApp(app)
            print("\(result["app"]?.stringValue ?? app): \(result["name"]?.stringValue ?? name) is \(result["type"]?.stringValue ?? type)")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List an app's registered attributes.")

        @Option(name: .long, help: "The app's name or token.")
        var app: String

        @Option(name: .long, help: "Output: table, json or csv.")
        var format: OutputFormat = .table

        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            print(TableRenderer.render(try await connection.call(AttributesList.self, AppParams(app: app)), format: format))
        }
    }
}

extension CairnCommand.DeadLetters {
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List refused records, newest first, with their reasons.")

        @Option(name: .long, help: "Only this app's dead letters (name or token).")
        var app: String?

        @Option(name: .long, help: "How many to list.")
        var limit: Int = 50

        @Option(name: .long, help: "Output: table, json or csv.")
        var format: OutputFormat = .table

        @Option(name: .long, help: "Only this ingest instance's dead letters, when the stack runs several (default: all).")
        var ingest: String?

        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            let params = IngestDeadLettersList.Params(app: app, limit: limit)
            let instances = await connection.ingestInstances(only: ingest)
            var rows: [JSON] = []
            var complete = true
            for instance in instances {
                let result = try await connection.call(IngestDeadLettersList.self, params, on: instance)
                if result["complete"] == false { complete = false }
                rows += (result["rows"]?.arrayValue ?? []).map { row in
                    guard instances.count > 1, var object = row.objectValue else { return row }
                    object["ingest"] = .string(instance)
                    return .object(object)
                }
            }
            if instances.count > 1 {
                // Newest first across instances, as within one (timestamps are fixed-width UTC text).
                rows.sort { ($0["received_at"]?.stringValue ?? "") > ($1["received_at"]?.stringValue ?? "") }
                rows = Array(rows.prefix(limit))
            }
            let columns: [JSON] =
                (instances.count > 1 ? ["ingest"] : []) + [
                    "id", "received_at", "app", "source", "record", "message", "code", "field", "error", "raw",
                ]
            print(TableRenderer.render(["columns": .array(columns), "rows": .array(rows)], format: format))
            if !complete {
                printError("only the newest dead letters that fit one answer (8 MiB) are listed; narrow the list with --app or --limit")
            }
        }
    }

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run dead letters through ingest again, e.g. after registering an attribute or creating an app."
        )

        @Option(name: .long, help: "Only this app's dead letters (name or token).")
        var app: String?

        @Option(name: .long, parsing: .upToNextOption, help: "Only these dead-letter ids.")
        var id: [Int64] = []

        @Option(name: .long, help: "Only this ingest instance's dead letters, when the stack runs several (default: all).")
        var ingest: String?

        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            let params = IngestDeadLettersReplay.Params(app: app, ids: id.isEmpty ? nil : id)
            let instances = await connection.ingestInstances(only: ingest)
            if !id.isEmpty, instances.count > 1 {
                // Ids are numbered per spool, so an id alone does not say which instance holds it.
                throw CLIError(
                    "this stack runs \(instances.count) ingest instances (\(instances.joined(separator: ", "))); say which one the ids belong to with --ingest"
                )
            }
            var totals = (replayed: Int64(0), accepted: Int64(0), duplicates: Int64(0), stillRejected: Int64(0))
            for instance in instances {
                let result = try await connection.call(IngestDeadLettersReplay.self, params, on: instance)
                for error in result["errors"]?.arrayValue ?? [] {
                    let field = error["field"]?.stringValue.map { " field '\($0)'" } ?? ""
                    let prefix = instances.count > 1 ? "\(instance) " : ""
                    printError(
                        "\(prefix)dead letter \(error["id"]?.intValue ?? 0): \(error["code"]?.stringValue ?? ""):\(field) \(error["error"]?.stringValue ?? "")"
                    )
                }
                totals.replayed += result["replayed"]?.intValue ?? 0
                totals.accepted += result["accepted"]?.intValue ?? 0
                totals.duplicates += result["duplicates"]?.intValue ?? 0
                totals.stillRejected += result["still_rejected"]?.intValue ?? 0
            }
            print(
                "replayed \(totals.replayed) dead letters: \(totals.accepted) new, \(totals.duplicates) duplicates; \(totals.stillRejected) still rejected"
            )
            if totals.stillRejected > 0 { throw ExitCode(2) }
        }
    }
}
