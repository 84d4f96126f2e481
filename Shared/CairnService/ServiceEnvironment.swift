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

    public init(dataDirectory: String, runDirectory: String? = nil, databaseURL: String? = nil,
                maximumFrameSize: Int = Framing.defaultMaximumFrameSize, supervisorPID: Int32? = nil) {
        self.dataDirectory = dataDirectory
        self.runDirectory = runDirectory ?? Self.defaultRunDirectory(dataDirectory: dataDirectory)
        self.databaseURL = databaseURL
        self.maximumFrameSize = maximumFrameSize
        self.supervisorPID = supervisorPID
    }

    /// Reads the `CAIRN_*` variables.
    public static func fromProcessEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> ServiceEnvironment {
        let data = environment["CAIRN_DATA_DIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "./var"
        return ServiceEnvironment(
            dataDirectory: data,
            runDirectory: environment["CAIRN_RUN_DIR"].flatMap { $0.isEmpty ? nil : $0 },
            databaseURL: environment["CAIRN_DATABASE_URL"].flatMap { $0.isEmpty ? nil : $0 },
            maximumFrameSize: environment["CAIRN_MAX_FRAME_BYTES"].flatMap { Int($0) } ?? Framing.defaultMaximumFrameSize,
            supervisorPID: environment["CAIRN_SUPERVISOR_PID"].flatMap { Int32($0) })
    }

    public static func defaultRunDirectory(dataDirectory: String) -> String {
        (dataDirectory.hasSuffix("/") ? dataDirectory : dataDirectory + "/") + "run"
    }

    /// The socket of `service` (`ingest`, `storage`, …) in the run directory.
    public func socketPath(of service: String) -> String {
        RunDirectory.socketPath(runDirectory, service: service)
    }
}
