import ArgumentParser
import CairnCore
import CairnMethods
import CairnService
import CairnWire
import Foundation

/// `cairn-supervisor --stack compose/<file>`: runs the whole stack in the foreground.
public struct SupervisorCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "cairn-supervisor",
        abstract: "Start Cairn's services from a stack file and keep them running.",
        version: CairnVersion.current
    )

    @Option(
        name: .long,
        help: "The stack file to run (default: PREFIX/etc/cairn/stack.json when installed, else compose/default.json).",
        completion: .file(extensions: ["json"])
    )
    var stack: String?

    @Option(name: .long, help: "The data directory (default: $CAIRN_DATA_DIR or ./var; /var/lib/cairn in the systemd unit).")
    var dataDir: String?

    @Option(name: .long, help: "The socket directory (default: $CAIRN_RUN_DIR or <data-dir>/run).")
    var runDir: String?

    @Flag(name: .long, help: "Print a systemd unit that runs this installation's stack as a dedicated user, and exit.")
    var printSystemdUnit = false

    @Option(name: .long, help: "The account the systemd unit runs the stack as.")
    var user = "cairn"

    public init() {}

    public func run() async throws {
        let layout = InstallLayout.current()
        let stack = absolute(self.stack ?? layout.defaultStack)
        if printSystemdUnit {
            guard SystemdUnit.isAccountName(user) else {
                throw ValidationError("--user must be an account name (a-z, 0-9, '_' and '-', starting with a letter or '_'); found '\(user)'")
            }
            print(
                SystemdUnit(supervisor: layout.supervisor, stack: stack, dataDirectory: absolute(dataDir ?? SystemdUnit.dataDirectory), user: user)
                    .text,
                terminator: ""
            )
            return
        }
        let stackFile = try StackFile.load(path: stack)
        let current = ServiceEnvironment.fromProcessEnvironment()
        // Children get absolute paths, whatever directory they are started from.
        let dataDirectory = absolute(dataDir ?? current.dataDirectory)
        let runDirectory = absolute(
            runDir ?? ProcessInfo.processInfo.environment["CAIRN_RUN_DIR"].flatMap { $0.isEmpty ? nil : $0 }
                ?? ServiceEnvironment.defaultRunDirectory(dataDirectory: dataDirectory)
        )
        setenv("CAIRN_DATA_DIR", dataDirectory, 1)
        setenv("CAIRN_RUN_DIR", runDirectory, 1)
        // The supervisor is nobody's child in the stack.
        unsetenv("CAIRN_SUPERVISOR_PID")
        try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
        // Before anything else touches the directories: one supervisor per data and socket directory.
        _ = try StackLock.acquire(dataDirectory, role: "data directory")
        // Created if missing; its permissions are checked as the supervisor's service starts.
        try FileManager.default.createDirectory(atPath: runDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        _ = try StackLock.acquire(runDirectory, role: "socket directory")
        let binDirectory = layout.executables
        await ServiceHost.run(name: "supervisor") { context in
            let runner = StackRunner(stack: stackFile, environment: context.environment, binDirectory: binDirectory, logger: context.logger)
            let environment = ProcessInfo.processInfo.environment
            let metricsAddress = try ListenAddress(
                variable: "CAIRN_METRICS_ADDR",
                environment: environment,
                settings: JSONObject(),
                fallback: MetricsEndpoint.defaultAddress
            )
            let metrics = MetricsEndpoint.listener(
                runner: runner,
                address: metricsAddress,
                access: MetricsAccess(token: environment["CAIRN_METRICS_TOKEN"]),
                logger: context.logger
            )
            var router = RPCRouter()
            router.register(SupervisorStatus.self) { _ in
                guard case .object(var status) = await runner.status() else { return .null }
                status["metrics_address"] = .optional(metrics.bound())
                return .object(status)
            }
            return ServiceParts(router: router, background: [runner, metrics.listener], healthProblem: { runner.healthProblem })
        }
    }

    private func absolute(_ path: String) -> String {
        URL(fileURLWithPath: path, relativeTo: URL(fileURLWithPath: FileManager.default.currentDirectoryPath)).standardizedFileURL.path
    }
}

extension SupervisorCommand {
    /// Parses the command line and runs; the executable's whole `main`.
    public static func start() async {
        await main()
    }
}
