import CairnCore
import CairnGzip
import Foundation
import Logging

/// A continuous destination that writes gzip JSON lines to an S3-compatible store: Segment
/// messages (`format: "segment"`, the default) or Cairn's canonical rows (`"canonical"`, events
/// only), in objects under `prefix` partitioned by app, date and hour of receipt:
/// `{prefix}app={app}/date=2026-12-03/hour=14/{destination}-{xid}-{hash}.jsonl.gz`.
///
/// An object closes at `max_object_bytes` (compressed) or once its first message is
/// `max_object_age_s` old, and at each hour's end. It is uploaded in parts (multipart, every
/// part but the last at least `part_bytes`, each part one or more gzip members, which every gzip
/// reader reads as one stream), and completed only whole: until then the store shows nothing.
/// Its name is made from the checkpoint it starts after, so a run killed after the upload but
/// before the checkpoint moved writes the same name again, replacing the object instead of
/// adding a second copy: every message lands in exactly one object.
public struct ObjectStoreDestination: Sendable {
    public enum Format: String, Sendable {
        case segment, canonical
    }

    let bucket: S3Bucket
    /// Ends with `/` unless empty.
    let prefix: String
    let format: Format
    var maximumObjectBytes = 64 << 20
    var maximumObjectAge: Duration = .seconds(300)
    var partBytes = 8 << 20

    /// Shown where a Segment destination shows its URL.
    var url: String { "s3://\(bucket.bucket)/\(prefix)" }

    /// The smallest part S3 takes (but for the last).
    static let minimumPartBytes = 5 << 20

    /// The object of destination `destination` that starts after `checkpoint`, in the hour
    /// `hour` (`2026-12-03/14`). The checkpoint's time counts as an instant, not as text: the
    /// same position read back in another session time zone names the same object.
    func key(destination: String, app: String, hour: String, after checkpoint: StreamPosition) -> String {
        let day = hour.prefix(10)
        let instant = Timestamp(parsing: checkpoint.at).map { String($0.microseconds) } ?? checkpoint.at
        let identity = "\(checkpoint.xid)\u{1F}\(instant)\u{1F}\(checkpoint.eventId)\u{1F}\(checkpoint.aliasKind)\u{1F}\(checkpoint.aliasId)"
        let hash = SHA256.hex(Array(identity.utf8)).prefix(16)
        return "\(prefix)app=\(app)/date=\(day)/hour=\(hour.suffix(2))/\(destination)-\(max(checkpoint.xid, 0))-\(hash).jsonl.gz"
    }

    /// Aborts the uploads a killed run of this destination left: they never became objects.
    /// Another destination's (or another stack's) uploads under the same prefix are left alone.
    func abortIncompleteUploads(destination: String, app: String, logger: Logger) async {
        do {
            for upload in try await bucket.incompleteUploads(prefix: "\(prefix)app=\(app)/")
            where upload.key.split(separator: "/").last?.hasPrefix("\(destination)-") == true {
                await bucket.abortMultipartUpload(key: upload.key, uploadId: upload.uploadId)
                logger.info("aborted an upload a stopped run left", metadata: ["key": "\(upload.key)"])
            }
        } catch {
            logger.warning("cannot list incomplete uploads; they stay until the bucket's lifecycle rule", metadata: ["error": "\(error)"])
        }
    }

    /// `YYYY-MM-DD/HH` of a time, UTC.
    static func hour(of time: Timestamp) -> String {
        let text = time.description  // RFC 3339, UTC
        return String(text.prefix(10)) + "/" + String(text.dropFirst(11).prefix(2))
    }
}

/// The object being written: its lines, compressed as they come, and the parts already up.
struct OpenObject {
    let key: String
    let hour: String
    /// When its first message was received: the object is due once that is old enough.
    let firstReceived: Timestamp
    var uploadId: String?
    var parts: [String] = []
    /// Lines not yet compressed.
    var raw: [UInt8] = []
    /// Compressed members not yet uploaded.
    var pending: [UInt8] = []
    var compressedBytes = 0
    var messages = 0

    /// Raw bytes compressed as one gzip member.
    static let memberBytes = 1 << 20

    mutating func append(_ line: [UInt8]) throws {
        raw += line
        raw.append(UInt8(ascii: "\n"))
        messages += 1
        if raw.count >= Self.memberBytes { try compressRaw() }
    }

    mutating func compressRaw() throws {
        guard !raw.isEmpty else { return }
        let member = try Gzip.compress(raw)
        pending += member
        compressedBytes += member.count
        raw.removeAll(keepingCapacity: true)
    }

    func isDue(now: Timestamp, maximumAge: Duration) -> Bool {
        now.microseconds - firstReceived.microseconds >= maximumAge.components.seconds * 1_000_000
    }
}
