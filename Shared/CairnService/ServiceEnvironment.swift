import CairnCore
import CairnWire
import Foundation

/// Where a service finds its sockets, data and database: read once from the environment
/// the supervisor (or a user) sets, then passed down.
public struct ServiceEnvironment: Sendable {
    /// `CAIRN_DATA_DIR`. Defaults to `./var`.
    public var dataDirectory: String
    /// `CAIRN_RUN_DIR`: the 0700 directory of sockets. Defaults to `<data>/run`.
    public var runDirectory: String
    /// `CAIRN_DATABASE_URL`, a libpq URL or connection string; nil means the supervisor's own cluster.
    public var databaseURL: String?
    /// `CAIRN_MAX_FRAME_BYTES`. Defaults to 16 MiB.
    public var maximumFrameSize: Int
    /// `CAIRN_SUPERVISOR_PID`: set by the supervisor so a child can notice it died.
    public var supervisorPID: Int32?
    /// `CAIRN_SERVICE_SETTINGS`: the service's `settings` object from the stack file, as JSON
    /// text; nil when the stack file gives none.
    public var settingsText: String?
    /// `CAIRN_SERVICE_NAME`: the stack file's name for this process, which names its socket
    /// (and ingest's spool), so that one executable can run as several instances
    /// (`ingest`, `ingest-2`). Nil means the executable's own name.
    public var instanceName: String?

    public static let settingsVariable = "CAIRN_SERVICE_SETTINGS"
    public static let instanceNameVariable = "CAIRN_SERVICE_NAME"

    public init(
        dataDirectory: String,
        runDirectory: String? = nil,
        databaseURL: String? = nil,
        maximumFrameSize: Int = Framing.defaultMaximumFrameSize,
        supervisorPID: Int32? = nil,
        settingsText: String? = nil,
        instanceName: String? = nil
    ) {
        self.dataDirectory = dataDirectory
        self.runDirectory = runDirectory ?? Self.defaultRunDirectory(dataDirectory: dataDirectory)
        self.databaseURL = databaseURL
        self.maximumFrameSize = maximumFrameSize
        self.supervisorPID = supervisorPID
        self.settingsText = settingsText
        self.instanceName = instanceName
    }

    /// The service's settings object (empty without any); a text that is not a JSON object is
    /// a configuration error.
    public func settings() throws -> JSONObject {
        guard let settingsText else { return JSONObject() }
        guard case .object(let object)? = try? JSONParser.parse(Array(settingsText.utf8)) else {
            throw ServiceError(.configuration, "\(Self.settingsVariable) is not a JSON object")
        }
        return object
    }

    /// Reads the `CAIRN_*` variables.
    public static func fromProcessEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> ServiceEnvironment {
        let data = environment["CAIRN_DATA_DIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "./var"
        return ServiceEnvironment(
            dataDirectory: data,
            runDirectory: environment["CAIRN_RUN_DIR"].flatMap { $0.isEmpty ? nil : $0 },
            databaseURL: environment["CAIRN_DATABASE_URL"].flatMap { $0.isEmpty ? nil : $0 },
            maximumFrameSize: environment["CAIRN_MAX_FRAME_BYTES"].flatMap { Int($0) } ?? Framing.defaultMaximumFrameSize,
            supervisorPID: environment["CAIRN_SUPERVISOR_PID"].flatMap { Int32($0) },
            settingsText: environment[settingsVariable].flatMap { $0.isEmpty ? nil : $0 },
            instanceName: environment[instanceNameVariable].flatMap { $0.isEmpty ? nil : $0 }
        )
    }

    public static func defaultRunDirectory(dataDirectory: String) -> String {
        (dataDirectory.hasSuffix("/") ? dataDirectory : dataDirectory + "/") + "run"
    }

    /// The socket of `service` (`ingest`, `storage`, …) in the run directory.
    public func socketPath(of service: String) -> String {
        RunDirectory.socketPath(runDirectory, service: service)
    }
}
