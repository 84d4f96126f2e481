import CairnCore
import CairnWire

// Every service answers these; the supervisor adds its own status.

public enum SystemHealth: RPCMethod {
    public static let name = "system.health"
    /// Every service answers it on its own socket.
    public static let service = ServiceName.supervisor
    public static let summary = "`ok`, or `unavailable` with the reason (every service)."
    public static let deadline: Duration = .seconds(3)
    public typealias Params = NoParams
    public typealias Result = JSON
}

public enum SystemStatus: RPCMethod {
    public static let name = "system.status"
    public static let service = ServiceName.supervisor
    public static let summary = "Version, pid, uptime, counters and the service's own details (every service)."
    public static let deadline: Duration = .seconds(3)
    public typealias Params = NoParams
    public typealias Result = JSON
}

public enum SystemMetrics: RPCMethod {
    public static let name = "system.metrics"
    public static let service = ServiceName.supervisor
    public static let summary = "The service's metrics in Prometheus text format; the supervisor's `/metrics` joins every service's (every service)."
    public static let deadline: Duration = .seconds(5)
    public typealias Params = NoParams
    public struct Result: Codable, Sendable {
        /// Prometheus text exposition format 0.0.4.
        public var text: String
        public init(text: String) { self.text = text }
    }
}

public enum SupervisorStatus: RPCMethod {
    public static let name = "supervisor.status"
    public static let service = ServiceName.supervisor
    public static let summary = "Each child service's state, restarts and own status: what `cairn status` prints."
    public static let deadline: Duration = .seconds(10)
    public typealias Params = NoParams
    public typealias Result = JSON
}
