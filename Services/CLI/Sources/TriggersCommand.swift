import ArgumentParser
import CairnCore
import CairnMethods
import CairnWire
import Foundation

extension CairnCommand {
    /// `cairn triggers`: webhooks on newly stored events (README, "Triggers").
    struct Triggers: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Call a webhook for each newly stored event that matches, or for each that no follow-up answers in time.",
            subcommands: [Add.self, List.self, Remove.self, Test.self, Status.self, Retry.self]
        )
    }
}

extension CairnCommand.Triggers {
    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a trigger; it sees the events stored from now on.",
            discussion: """
                Example: cairn triggers add --app shop --name cart-left --event 'Added to cart' --where 'price > 100' \
                --unless Purchase --within 1h --url https://hooks.example.com/cart --secret "$SECRET"

                By e-mail instead of a webhook (the export service's SMTP server, docs/triggers.md):
                cairn triggers add --app shop --name cart-mail --event 'Product Added' --unless 'Order Completed' --within 1h \
                --email-subject 'You left {{event.attributes.name}} in your cart' --email-text-file cart.txt --email-html-file cart.html
                """
        )

        @Option(name: .long, help: "The app the trigger watches (name or token).")
        var app: String

        @Option(name: .long, help: "The trigger's name (letters, digits, '-', '_', '.').")
        var name: String

        @Option(name: .long, help: "The event name, or a pattern where * stands for anything ('Guide *').")
        var event: String

        @Option(name: .long, help: "A condition on the event's attributes, as report users --where takes it ('price > 100').")
        var `where`: String?

        @Option(name: .long, help: "A condition on the user's traits ('plan = \"pro\"').")
        var trait: String?

        @Option(name: .long, help: "Absence trigger: fire only if this event does not follow within --within.")
        var unless: String?

        @Option(name: .long, help: "Absence trigger: the window, in event time (30m, 1h, 2d).")
        var within: String?

        @Option(name: .long, help: "Absence trigger: only a follow-up with the same value of this attribute answers the event (e.g. sku).")
        var unlessSame: String?

        @Option(name: .long, help: "The webhook's http:// or https:// URL (or send an e-mail with --email-subject and --email-text).")
        var url: String?

        @Option(name: .long, help: "E-mail: the recipient, a Mustache template (default '{{user.traits.email}}').")
        var emailTo: String?

        @Option(name: .long, help: "E-mail: the subject, a Mustache template ('You left {{event.attributes.name}} in your cart').")
        var emailSubject: String?

        @Option(name: .long, help: "E-mail: the text body, a Mustache template (or --email-text-file).")
        var emailText: String?

        @Option(name: .long, help: "E-mail: a file holding the text body's template.", completion: .file())
        var emailTextFile: String?

        @Option(name: .long, help: "E-mail: an HTML body's template, sent beside the text one (or --email-html-file).")
        var emailHtml: String?

        @Option(name: .long, help: "E-mail: a file holding the HTML body's template.", completion: .file())
        var emailHtmlFile: String?

        @Option(name: .long, help: "A shared secret: bodies are signed with HMAC-SHA256 in X-Cairn-Signature.")
        var secret: String?

        @Option(name: .long, help: "Attempts per delivery before it is parked (default 10).")
        var maxAttempts: Int?

        @Option(name: .long, help: "How long one attempt may take (default 10s).")
        var timeout: String?

        @OptionGroup var connection: ConnectionOptions

        func validate() throws {
            let email = [emailTo, emailSubject, emailText, emailTextFile, emailHtml, emailHtmlFile].contains { $0 != nil }
            guard (url != nil) != email else {
                throw ValidationError(
                    url == nil
                        ? "give --url (a webhook) or --email-subject with --email-text (an e-mail)"
                        : "--url and the --email options exclude each other: a trigger POSTs a webhook or sends an e-mail"
                )
            }
            guard emailText == nil || emailTextFile == nil, emailHtml == nil || emailHtmlFile == nil else {
                throw ValidationError("give a body inline or in a file, not both")
            }
            if email, secret != nil { throw ValidationError("--secret signs webhooks; an e-mail trigger has none") }
            guard (unless == nil) == (within == nil) else {
                throw ValidationError(
                    "--unless and --within go together: the follow-up event, and how long it has (e.g. --unless Purchase --within 1h)"
                )
            }
        }

        func run() async throws {
            var params = TriggersAdd.Params(app: app, name: name, event: event, url: url)
            if url == nil {
                func read(_ path: String) throws -> String {
                    guard let data = FileManager.default.contents(atPath: path) else { throw CLIError("cannot read \(path)") }
                    return String(decoding: data, as: UTF8.self)
                }
                params.email = TriggerEmail(
                    to: emailTo,
                    subject: emailSubject ?? "",
                    text: try emailText ?? emailTextFile.map(read) ?? "",
                    html: try emailHtml ?? emailHtmlFile.map(read)
                )
            }
            params.where = `where`
            params.trait = trait
            params.unless = unless
            params.within = within
            params.unless_same = unlessSame
            params.secret = secret
            params.max_attempts = maxAttempts
            params.timeout = timeout
            let result = try await connection.call(TriggersAdd.self, params)
            for warning in result["warnings"]?.arrayValue ?? [] { printError("warning: " + (warning.stringValue ?? "")) }
            print("added trigger \(name) to app \(result["trigger"]?["app"]?.stringValue ?? app): \(describeTrigger(result["trigger"] ?? .null))")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the triggers (secrets are only said to be set).")

        @Option(name: .long, help: "Only this app's triggers.")
        var app: String?

        @Option(name: .long, help: "Output: table, json or csv.")
        var format: OutputFormat = .table

        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            try await printTriggers(
                connection,
                TriggersList.self,
                app: app,
                format: format,
                columns: [
                    "app", "name", "event", "where", "trait", "unless", "within_s", "url", "email", "secret", "max_attempts", "timeout_ms", "state",
                    "state_reason",
                ]
            )
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a trigger, with its checkpoint and parked deliveries.")

        @Option(name: .long, help: "The app (needed when two apps have a trigger of that name).")
        var app: String?

        @Option(name: .long, help: "The trigger's name.")
        var name: String

        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            let result = try await connection.call(TriggersRemove.self, TriggerParams(name: name, app: app))
            print("removed trigger \(result["removed"]?.stringValue ?? name) of app \(result["app"]?.stringValue ?? "?")")
        }
    }

    struct Test: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Dry run: whether the event in a file would match, and the body and headers (or the e-mail) it would be sent with.",
            discussion: "The file holds one record in any input format (a JSON object, or the first line of JSON lines). Nothing is stored or sent."
        )

        @Option(name: .long, help: "The app (needed when two apps have a trigger of that name).")
        var app: String?

        @Option(name: .long, help: "The trigger's name.")
        var name: String

        @Option(name: .long, help: "A file with the event to test.", completion: .file())
        var eventFile: String

        @Option(name: .long, help: "The record's format: auto, userpilot, userguiding, userlike, usercom or segment.")
        var format: String = "auto"

        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            guard let data = FileManager.default.contents(atPath: eventFile) else { throw CLIError("cannot read \(eventFile)") }
            let record: JSON
            if let whole = try? JSONParser.parse(Array(data)) {
                record = whole.arrayValue?.first ?? whole
            } else if let line = String(decoding: data, as: UTF8.self).split(separator: "\n").first(where: {
                !$0.trimmingCharacters(in: .whitespaces).isEmpty
            }),
                let first = try? JSONParser.parse(String(line))
            {
                record = first
            } else {
                throw CLIError("\(eventFile) holds no JSON record")
            }
            let result = try await connection.call(TriggersTest.self, .init(name: name, app: app, record: record, format: format))
            let matches = result["matches"]?.boolValue ?? false
            print("trigger \(name): the event \(matches ? "matches" : "does not match")")
            for reason in result["reasons"]?.arrayValue ?? [] { print("  - " + (reason.stringValue ?? "")) }
            if let absence = result["absence"]?.stringValue { print("  (absence trigger: \(absence))") }
            if let email = result["email"] {
                if let error = email["error"]?.stringValue {
                    print("e-mail: not sendable: \(error)")
                } else {
                    print("e-mail to \(email["to"]?.stringValue ?? "")")
                    print("")
                    print(email["message"]?.stringValue ?? "")
                }
            } else {
                print("POST \(result["url"]?.stringValue ?? "")")
                for (header, value) in result["headers"]?.objectValue ?? JSONObject() { print("\(header): \(value.stringValue ?? "")") }
                print("")
                print((result["body"] ?? .null).serializedString())
            }
            if !matches { throw ExitCode(3) }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Per trigger: matched, delivered, failed, waiting, parked, lag and the last error.")

        @Option(name: .long, help: "Only this app's triggers.")
        var app: String?

        @Option(name: .long, help: "Output: table, json or csv.")
        var format: OutputFormat = .table

        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            try await printTriggers(
                connection,
                TriggersStatus.self,
                app: app,
                format: format,
                columns: [
                    "app", "trigger", "event", "absence", "state", "matched", "delivered", "failed", "cancelled", "waiting", "parked",
                    "lag_s", "last_delivered_at", "last_error", "state_reason",
                ]
            )
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-send a trigger's parked deliveries, and resume it if a 410 Gone disabled it."
        )

        @Option(name: .long, help: "The app (needed when two apps have a trigger of that name).")
        var app: String?

        @Option(name: .long, help: "The trigger's name.")
        var name: String

        @Option(name: .long, parsing: .upToNextOption, help: "Only these events' deliveries (the event ids --list shows).")
        var id: [String] = []

        @Flag(name: .long, help: "List the parked deliveries instead.")
        var list = false

        @Option(name: .long, help: "Output of --list: table, json or csv.")
        var format: OutputFormat = .table

        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            if list {
                let result = try await connection.call(TriggersParked.self, TriggerParams(name: name, app: app))
                let columns: JSON = ["event_id", "inserted_at", "person", "state", "attempts", "last_error", "updated_at"]
                print(TableRenderer.render(["columns": columns, "rows": result["deliveries"] ?? .array([])], format: format))
                return
            }
            let result = try await connection.call(TriggersRetry.self, .init(name: name, app: app, event_ids: id.isEmpty ? nil : id))
            print(
                "trigger \(name): \(result["queued"]?.intValue ?? 0) parked deliveries queued to go again"
                    + (result["resumed"]?.boolValue == true ? "; the trigger is active again" : "")
            )
        }
    }
}

/// `list` and `status`: every trigger (or one app's), one row each.
private func printTriggers<Method: RPCMethod>(
    _ connection: ConnectionOptions,
    _ method: Method.Type,
    app: String?,
    format: OutputFormat,
    columns: JSON
) async throws
where Method.Params == OptionalAppParams, Method.Result == JSON {
    let result = try await connection.call(method, OptionalAppParams(app: app))
    print(TableRenderer.render(["columns": columns, "rows": result["triggers"] ?? .array([])], format: format))
}

/// One line for a trigger: what it watches and where it calls.
private func describeTrigger(_ trigger: JSON) -> String {
    var text = "on '\(trigger["event"]?.stringValue ?? "?")'"
    if let condition = trigger["where"]?.stringValue { text += " where \(condition)" }
    if let condition = trigger["trait"]?.stringValue { text += " with traits \(condition)" }
    if let unless = trigger["unless"]?.stringValue {
        let same = trigger["unless_same"]?.stringValue.map { " with the same \($0)" } ?? ""
        text += " unless '\(unless)'\(same) follows within \(trigger["within_s"]?.intValue ?? 0)s"
    }
    if let email = trigger["email"], email != .null {
        return text + " → e-mail to \(email["to"]?.stringValue ?? "?"): \(email["subject"]?.stringValue ?? "")"
    }
    return text + " → POST \(trigger["url"]?.stringValue ?? "?")" + (trigger["secret"]?.stringValue == "set" ? " (signed)" : "")
}
