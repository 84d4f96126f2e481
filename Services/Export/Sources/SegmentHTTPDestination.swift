import AsyncHTTPClient
import CairnCore
import CairnGzip
import CairnWire
import Foundation
import NIOCore
import NIOHTTP1

/// When a delivery is tried again (Segment's client retry behaviour, docs/export.md): network errors,
/// `408`, `429` and `5xx` are retried with exponential backoff and full jitter, and a
/// `Retry-After` is honoured up to a cap; any other status is final.
public struct RetryPolicy: Sendable {
    /// Attempts per batch, the first included. Defaults to `10`.
    public var maximumAttempts = 10
    /// The first backoff; each retry doubles it. Defaults to 0.5 s, as Segment's Python library.
    public var initialBackoff: Duration = .milliseconds(500)
    /// Defaults to 60 s.
    public var maximumBackoff: Duration = .seconds(60)
    /// The longest `Retry-After` obeyed. Defaults to 300 s.
    public var maximumRetryAfter: Duration = .seconds(300)
    /// How long one attempt may take, connecting included: the HTTP client keeps trying to
    /// connect to a refusing endpoint until then. Defaults to 30 s.
    public var attemptTimeout: Duration = .seconds(30)

    public init() {}

    public static func isRetryable(status: Int) -> Bool {
        status == 408 || status == 429 || (500...599).contains(status)
    }

    /// The wait before attempt `attempt + 1`: `Retry-After` when the server gave one,
    /// otherwise a random time up to the doubled backoff (full jitter).
    public func delay(afterAttempt attempt: Int, retryAfter: Duration?) -> Duration {
        if let retryAfter { return min(retryAfter, maximumRetryAfter) }
        let ceiling = min(maximumBackoff, initialBackoff * (1 << min(attempt - 1, 20)))
        let milliseconds = ceiling.components.seconds * 1000 + ceiling.components.attoseconds / 1_000_000_000_000_000
        return .milliseconds(Int64.random(in: milliseconds / 2...max(milliseconds / 2, milliseconds)))
    }
}

/// A Segment-compatible `/v1/batch` endpoint: Segment itself, RudderStack, Jitsu, or any
/// collector that speaks the HTTP Tracking API.
public struct SegmentHTTPDestination: Sendable {
    /// The batch endpoint; a bare origin such as `https://api.segment.io` gets `/v1/batch`.
    public let url: String
    /// `Basic base64(writeKey:)`, with the trailing colon Segment documents.
    private let authorization: String
    public let gzip: Bool
    public var retry: RetryPolicy

    public init(url: String, writeKey: String, gzip: Bool = false, retry: RetryPolicy = RetryPolicy()) throws(ExportError) {
        guard let parsed = URL(string: url), let scheme = parsed.scheme?.lowercased(), scheme == "http" || scheme == "https", parsed.host != nil
        else {
            throw ExportError(.invalidDestination, field: "to", "'\(url)' is not an http:// or https:// URL")
        }
        guard !writeKey.isEmpty else { throw ExportError(.invalidDestination, field: "write_key", "must not be empty") }
        self.url = parsed.path.isEmpty || parsed.path == "/" ? url.trimmingSuffix("/") + "/v1/batch" : url
        authorization = "Basic " + Data((writeKey + ":").utf8).base64EncodedString()
        self.gzip = gzip
        self.retry = retry
    }

    public typealias Delivery = DeliveryOutcome

    /// POSTs `body` until it is accepted, refused for good, or out of attempts.
    public func send(_ body: [UInt8], using client: HTTPClient = .shared) async -> Delivery {
        let payload: [UInt8]
        if gzip {
            do {
                payload = try Gzip.compress(body)
            } catch {
                return Delivery(delivered: false, attempts: 0, status: nil, detail: "\(error)", unavailable: false)
            }
        } else {
            payload = body
        }
        return await HTTPPoster.post(payload, to: url, retry: retry, using: client) { attempt in
            var headers = [
                ("Content-Type", "application/json"), ("Authorization", authorization),
                ("User-Agent", "cairn/\(SegmentMapper.exporterVersion)"),
            ]
            if gzip { headers.append(("Content-Encoding", "gzip")) }
            if attempt > 1 { headers.append(("X-Retry-Count", String(attempt - 1))) }
            return headers
        }
    }
}

/// What became of one POST (a Segment batch, a trigger's webhook).
public struct DeliveryOutcome: Sendable {
    public var delivered: Bool
    public var attempts: Int
    /// The last HTTP status, or nil when the last attempt got no response.
    public var status: Int?
    /// The last response body (at most 2 KB) or network error.
    public var detail: String
    /// Whether giving up was for a retryable reason: the destination is unavailable, so
    /// later batches would fare no better.
    public var unavailable: Bool
    /// The last response's headers (an S3 part's `ETag`).
    public var headers: [(String, String)] = []
}

/// The one delivery loop of Segment batches, trigger webhooks and object-store requests: send,
/// and on a network error, `408`, `429` or `5xx`, wait as ``RetryPolicy`` says and send again.
enum HTTPPoster {
    /// `headers` gives each attempt's headers (numbered from 1): a signature can be fresh.
    static func post(
        _ payload: [UInt8],
        to url: String,
        method: HTTPMethod = .POST,
        retry: RetryPolicy,
        using client: HTTPClient,
        headers: (Int) -> [(String, String)]
    ) async -> DeliveryOutcome {
        var attempt = 0
        while true {
            attempt += 1
            var request = HTTPClientRequest(url: url)
            request.method = method
            for (name, value) in headers(attempt) { request.headers.add(name: name, value: value) }
            request.body = .bytes(ByteBuffer(bytes: payload))
            var retryAfter: Duration?
            var outcome: DeliveryOutcome
            do {
                let response = try await client.execute(request, timeout: TimeAmount(retry.attemptTimeout))
                let status = Int(response.status.code)
                let text = String(buffer: try await response.body.collect(upTo: 1 << 20)).prefix(2048)
                if (200...299).contains(status) {
                    return DeliveryOutcome(
                        delivered: true,
                        attempts: attempt,
                        status: status,
                        detail: String(text),
                        unavailable: false,
                        headers: response.headers.map { ($0.name, $0.value) }
                    )
                }
                outcome = DeliveryOutcome(
                    delivered: false,
                    attempts: attempt,
                    status: status,
                    detail: String(text),
                    unavailable: RetryPolicy.isRetryable(status: status)
                )
                guard RetryPolicy.isRetryable(status: status) else { return outcome }
                retryAfter = response.headers.first(name: "Retry-After").flatMap { Int64($0.trimmingCharacters(in: .whitespaces)) }.map {
                    .seconds(max(0, $0))
                }
            } catch {
                outcome = DeliveryOutcome(delivered: false, attempts: attempt, status: nil, detail: "\(error)", unavailable: true)
            }
            guard attempt < retry.maximumAttempts else { return outcome }
            try? await Task.sleep(for: retry.delay(afterAttempt: attempt, retryAfter: retryAfter))
            if Task.isCancelled { return outcome }
        }
    }
}

extension String {
    fileprivate func trimmingSuffix(_ suffix: String) -> String {
        var text = self
        while text.hasSuffix(suffix) { text.removeLast(suffix.count) }
        return text
    }
}

/// Sends an export's messages to a ``SegmentHTTPDestination`` in ``BatchAssembler`` batches,
/// keeping what became of each batch that was not accepted.
struct HTTPBatchSender: SegmentSink {
    let destination: SegmentHTTPDestination
    private var assembler = BatchAssembler()
    private(set) var batchesSent = 0
    private(set) var messagesDelivered = 0
    private(set) var failures: [JSON] = []

    init(destination: SegmentHTTPDestination) {
        self.destination = destination
    }

    mutating func send(_ message: [UInt8]) async throws -> Bool {
        var keepGoing = true
        if !assembler.fits(message) { keepGoing = await ship() }
        assembler.append(message)
        return keepGoing
    }

    mutating func finish() async throws -> Bool {
        assembler.isEmpty ? true : await ship()
    }

    /// Sends the pending batch; false when the destination is unavailable and the export should stop.
    private mutating func ship() async -> Bool {
        let (body, messages) = assembler.take(sentAt: .now())
        batchesSent += 1
        let delivery = await destination.send(body)
        if delivery.delivered {
            messagesDelivered += messages
            return true
        }
        failures.append([
            "batch": .int(Int64(batchesSent)), "messages": .int(Int64(messages)), "attempts": .int(Int64(delivery.attempts)),
            "status": delivery.status.map { .int(Int64($0)) } ?? .null, "response": .string(delivery.detail),
        ])
        return !delivery.unavailable
    }
}
