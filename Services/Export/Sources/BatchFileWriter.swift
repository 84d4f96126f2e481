import CairnCore
import Foundation

/// Writes Segment batch files (`batch-000001.json`, …), each a `/v1/batch` body
/// `{"batch":[…],"sentAt":…}` within Segment's limits: at most ``maximumMessages`` messages and
/// ``maximumBatchBytes`` bytes of serialised JSON, counted on the bytes written.
public struct BatchFileWriter {
    public static let maximumMessages = 2_500
    public static let maximumBatchBytes = 475_000

    public let directory: String
    private let prefix = Array("{\"batch\":[".utf8)
    private let suffix: [UInt8]
    private var pending: [[UInt8]] = []
    private var pendingBytes = 0
    public private(set) var filesWritten = 0
    public private(set) var messagesWritten = 0

    /// - Parameter sentAt: the real time of writing, the envelope's `sentAt`.
    public init(directory: String, sentAt: Timestamp) throws {
        self.directory = directory
        var writer = JSONWriter()
        writer.writeRaw("],\"sentAt\":")
        writer.writeString(sentAt.iso8601Milliseconds)
        writer.writeRaw("}")
        suffix = writer.bytes
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        // Stale batches from an earlier export would mix with this one.
        for name in try FileManager.default.contentsOfDirectory(atPath: directory) where name.hasPrefix("batch-") && name.hasSuffix(".json") {
            try FileManager.default.removeItem(atPath: directory + "/" + name)
        }
    }

    /// The size a batch of `messages` would have on disk.
    private func size(adding message: [UInt8]) -> Int {
        prefix.count + pendingBytes + pending.count + message.count + suffix.count
    }

    public mutating func append(_ message: [UInt8]) throws {
        if !pending.isEmpty, pending.count >= Self.maximumMessages || size(adding: message) > Self.maximumBatchBytes {
            try flush()
        }
        pending.append(message)
        pendingBytes += message.count
    }

    /// Writes the pending messages as the next numbered file (atomically, via rename).
    public mutating func flush() throws {
        guard !pending.isEmpty else { return }
        var body = prefix
        body.reserveCapacity(prefix.count + pendingBytes + pending.count + suffix.count)
        for (index, message) in pending.enumerated() {
            if index > 0 { body.append(UInt8(ascii: ",")) }
            body.append(contentsOf: message)
        }
        body.append(contentsOf: suffix)
        filesWritten += 1
        let name = String(format: "batch-%06d.json", filesWritten)
        let temporary = directory + "/." + name + ".tmp"
        try Data(body).write(to: URL(fileURLWithPath: temporary))
        try FileManager.default.moveItem(atPath: temporary, toPath: directory + "/" + name)
        messagesWritten += pending.count
        pending.removeAll(keepingCapacity: true)
        pendingBytes = 0
    }
}
