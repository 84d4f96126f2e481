import CairnCore
import Foundation

/// Groups serialised Segment messages into `/v1/batch` bodies, `{"batch":[…],"sentAt":…}`
/// (files leave `sentAt` out: whoever sends one sets it then, or Segment's clock-skew
/// correction would move every event by the time the file waited),
/// within Segment's limits: at most ``maximumMessages`` messages and ``maximumBatchBytes``
/// bytes, counted on the bytes of the body. Files and HTTP deliveries both use it.
public struct BatchAssembler: Sendable {
    public static let maximumMessages = 2_500
    public static let maximumBatchBytes = 475_000

    private static let prefix = Array("{\"batch\":[".utf8)
    /// `],"sentAt":"2024-05-01T00:00:00.000Z"}`: the length is fixed.
    private static let suffixLength = Self.suffix(sentAt: Timestamp(microseconds: 0)).count
    private var pending: [[UInt8]] = []
    private var pendingBytes = 0

    public init() {}

    public var isEmpty: Bool { pending.isEmpty }
    public var count: Int { pending.count }

    /// Whether `message` still fits the batch being assembled.
    public func fits(_ message: [UInt8]) -> Bool {
        pending.isEmpty
            || (pending.count < Self.maximumMessages
                && Self.prefix.count + pendingBytes + pending.count + message.count + Self.suffixLength <= Self.maximumBatchBytes)
    }

    public mutating func append(_ message: [UInt8]) {
        pending.append(message)
        pendingBytes += message.count
    }

    /// The pending messages as one body sent at `sentAt` (nil: a body to send later),
    /// leaving the assembler empty.
    public mutating func take(sentAt: Timestamp?) -> (body: [UInt8], messages: Int) {
        var body = Self.prefix
        body.reserveCapacity(Self.prefix.count + pendingBytes + pending.count + Self.suffixLength)
        for (index, message) in pending.enumerated() {
            if index > 0 { body.append(UInt8(ascii: ",")) }
            body.append(contentsOf: message)
        }
        body.append(contentsOf: Self.suffix(sentAt: sentAt))
        let messages = pending.count
        pending.removeAll(keepingCapacity: true)
        pendingBytes = 0
        return (body, messages)
    }

    private static func suffix(sentAt: Timestamp?) -> [UInt8] {
        var writer = JSONWriter()
        writer.writeRaw("]")
        if let sentAt {
            writer.writeRaw(",\"sentAt\":")
            writer.writeString(sentAt.iso8601Milliseconds)
        }
        writer.writeRaw("}")
        return writer.bytes
    }
}

/// Where an export's serialised Segment messages go, in order.
protocol SegmentSink {
    /// Takes one message; false when the export should stop (its destination is unavailable).
    mutating func send(_ message: [UInt8]) async throws -> Bool
    /// Hands on what is pending; false as for ``send(_:)``.
    mutating func finish() async throws -> Bool
}

/// Writes Segment batch files (`batch-000001.json`, …) into a directory, each file one
/// ``BatchAssembler`` body.
public struct BatchFileWriter: SegmentSink {
    public static let maximumMessages = BatchAssembler.maximumMessages
    public static let maximumBatchBytes = BatchAssembler.maximumBatchBytes

    public let directory: String
    private var assembler = BatchAssembler()
    public private(set) var filesWritten = 0
    public private(set) var messagesWritten = 0

    public init(directory: String) throws {
        self.directory = directory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        // Stale batches from an earlier export would mix with this one.
        for name in try FileManager.default.contentsOfDirectory(atPath: directory) where name.hasPrefix("batch-") && name.hasSuffix(".json") {
            try FileManager.default.removeItem(atPath: directory + "/" + name)
        }
    }

    public mutating func append(_ message: [UInt8]) throws {
        if !assembler.fits(message) { try flush() }
        assembler.append(message)
    }

    mutating func send(_ message: [UInt8]) async throws -> Bool {
        try append(message)
        return true
    }

    mutating func finish() async throws -> Bool {
        try flush()
        return true
    }

    /// Writes the pending messages as the next numbered file (atomically, via rename).
    public mutating func flush() throws {
        guard !assembler.isEmpty else { return }
        let (body, messages) = assembler.take(sentAt: nil)
        filesWritten += 1
        let name = String(format: "batch-%06d.json", filesWritten)
        let temporary = directory + "/." + name + ".tmp"
        try Data(body).write(to: URL(fileURLWithPath: temporary))
        try FileManager.default.moveItem(atPath: temporary, toPath: directory + "/" + name)
        messagesWritten += messages
    }
}
