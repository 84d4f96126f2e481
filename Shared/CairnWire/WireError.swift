/// Failures of the wire layer itself: framing, connections, and error replies from peers.
public struct WireError: Error, Sendable, CustomStringConvertible {
    /// A stable code; new codes may be added.
    public struct Code: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        public static let frameTooLarge = Code(rawValue: "frame_too_large")
        public static let truncatedFrame = Code(rawValue: "truncated_frame")
        public static let connectionClosed = Code(rawValue: "connection_closed")
        public static let connectFailed = Code(rawValue: "connect_failed")
        public static let invalidResponse = Code(rawValue: "invalid_response")
        public static let timedOut = Code(rawValue: "timed_out")
        public static let socketPathTooLong = Code(rawValue: "socket_path_too_long")
        public static let runDirectory = Code(rawValue: "run_directory")
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }

    static func frameTooLarge(size: Int, maximum: Int) -> WireError {
        WireError(.frameTooLarge, "frame of \(size) bytes exceeds the maximum of \(maximum) bytes")
    }

    static func truncatedFrame(bufferedBytes: Int) -> WireError {
        WireError(.truncatedFrame, "connection closed with \(bufferedBytes) bytes of an incomplete frame")
    }
}
