/// Why the supervisor could not bring up or keep up the stack.
public struct SupervisorError: Error, Sendable, CustomStringConvertible {
    public struct Code: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        public static let invalidStack = Code(rawValue: "invalid_stack")
        public static let spawnFailed = Code(rawValue: "spawn_failed")
        public static let unhealthy = Code(rawValue: "unhealthy")
        public static let database = Code(rawValue: "database")
        /// Another live supervisor runs a stack on the same data directory.
        public static let alreadyRunning = Code(rawValue: "already_running")
        /// The data directory's lock file could not be opened or locked.
        public static let lockFailed = Code(rawValue: "lock_failed")
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
