import ArgumentParser
import CairnCore
import CairnMethods
import CairnWire
import Foundation

/// `cairn`: the command line for a running Cairn stack.
public struct CairnCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "cairn",
        abstract: "Ingest, query and export product events with a running Cairn stack.",
        version: "0.1.0",
        subcommands: [
            Ingest.self, Apps.self, Attributes.self, DeadLetters.self, Users.self, Companies.self, Report.self, Export.self, Triggers.self,
            Retention.self, Status.self,
        ]
    )

    public init() {}

    /// Parses the command line and runs; the executable's whole `main`.
    public static func start() async {
        await main()
    }
}

/// Options every command that talks to the stack shares.
struct ConnectionOptions: ParsableArguments {
    @Option(name: .long, help: "The stack's socket directory (default: $CAIRN_RUN_DIR, else $CAIRN_DATA_DIR/run, else ./var/run).")
    var runDir: String?

    var resolvedRunDirectory: String {
        if let runDir { return runDir }
        let environment = ProcessInfo.processInfo.environment
        if let value = environment["CAIRN_RUN_DIR"], !value.isEmpty { return value }
        let data = environment["CAIRN_DATA_DIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "./var"
        return data + "/run"
    }

    /// Calls `method` on its service (or on `instance`, one of several ingest services),
    /// turning connection failures into one readable line and the parameter an error names into
    /// its flag.
    func call<Method: RPCMethod>(_ method: Method.Type, _ params: Method.Params, on instance: String? = nil) async throws -> Method.Result {
        let service = instance ?? Method.service.rawValue
        let socket = RunDirectory.socketPath(resolvedRunDirectory, service: service)
        do {
            return try await RPCClient.withConnection(socketPath: socket) { try await $0.call(method, params) }
        } catch let error as WireError where error.code == .connectFailed {
            throw CLIError("cannot reach the \(service) service at \(socket); is the stack running (make run)?")
        } catch let error as RPCError {
            throw CLIError(error)
        }
    }
}

extension ConnectionOptions {
    /// Has every ingest instance fetch `app`'s settings afresh, so a changed setting or
    /// attribute type applies to the next event, not after the cache's 2 seconds. An instance
    /// that cannot be reached is named: its next start reads the settings anyway.
    func refreshApp(_ app: String) async throws {
        var unreachable: [String] = []
        for instance in await ingestInstances() {
            do {
                _ = try await call(IngestAppsRefresh.self, AppParams(app: app), on: instance)
            } catch {
                unreachable.append("\(instance) (\(error))")
            }
        }
        if !unreachable.isEmpty {
            throw CLIError(
                "the setting is stored, but not yet applied by \(unreachable.joined(separator: ", ")); it applies within 2 seconds of that ingest answering again"
            )
        }
    }

    /// The stack's ingest instances: `chosen` when the user named one, else every service whose
    /// executable is `cairn-ingest`, by the supervisor's account (`ingest` alone when the
    /// supervisor cannot say).
    func ingestInstances(only chosen: String? = nil) async -> [String] {
        if let chosen { return [chosen] }
        guard let status = try? await call(SupervisorStatus.self, NoParams()) else { return ["ingest"] }
        let names = (status["services"]?.arrayValue ?? []).compactMap { service -> String? in
            guard service["executable"]?.stringValue?.hasSuffix("cairn-ingest") == true else { return nil }
            return service["name"]?.stringValue
        }
        return names.isEmpty ? ["ingest"] : names
    }
}

/// How a report or listing is printed.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case table, json, csv
}

/// A failure the CLI reports as one line on stderr, with a non-zero exit.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }

    /// A service's error in the CLI's words: the parameter at fault is named by its flag.
    init(_ error: RPCError) {
        if let (field, reason) = error.fieldReason {
            description = "\(Self.flag(for: field)) \(reason)"
        } else {
            description = error.message
        }
    }

    /// The flag that sets a method parameter: `start_event` → `--start-event`; an element of
    /// a list (`steps[2]`) is named by its list's flag.
    static func flag(for field: String) -> String {
        let name = field.split(separator: "[").first.map(String.init) ?? field
        let renamed = ["traits": "trait", "attr": "attr", "app_token": "app", "event_ids": "id", "steps": "step"][name] ?? name
        // A nested field (`email.subject`) is set by a flag of both names (`--email-subject`).
        return "--" + renamed.replacingOccurrences(of: "_", with: "-").replacingOccurrences(of: ".", with: "-")
    }
}

func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

func isTerminal(_ descriptor: Int32) -> Bool { isatty(descriptor) == 1 }
