import CairnCore
import CairnGzip
import CairnMethods
import CairnMetrics
import CairnService
import CairnWire
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// Ingest over HTTP/1.1: Segment's HTTP Tracking API, as the official client libraries send
/// it, one route per vendor format, `GET /health` and `GET /metrics`.
///
/// Every route answers only after the events are durable in the spool, through the same
/// ``Ingestor`` as the CLI's socket, and so through the same group commit.
public struct HTTPIngest: Sendable {
    /// Segment's limits, in bytes of uncompressed JSON: the normaliser's.
    public static let maximumMessageBytes = EventNormalizer.maximumRecordBytes
    public static let maximumBatchBytes = EventNormalizer.maximumBatchBytes
    public static let maximumBatchMessages = 2_500

    let ingestor: Ingestor
    /// Why ingest is degraded, or nil; `/metrics` shows it as `cairn_ingest_degraded`.
    let degradation: @Sendable () async -> String?

    /// How long reading one request's body may take.
    let bodyTimeout: Duration
    /// Who may read `/metrics`, which names every app and its counts.
    let metricsAccess: MetricsAccess
    /// Ingest's gauges, refreshed for each `/metrics` and `system.metrics`.
    let gauges: IngestGauges

    /// Serves through `ingestor`, whose apps, spool, metrics and backpressure it shares.
    public init(
        ingestor: Ingestor,
        degradation: @escaping @Sendable () async -> String? = { nil },
        bodyTimeout: Duration = .seconds(10),
        metricsAccess: MetricsAccess = MetricsAccess(token: nil)
    ) {
        self.ingestor = ingestor
        self.degradation = degradation
        self.bodyTimeout = bodyTimeout
        self.metricsAccess = metricsAccess
        gauges = IngestGauges(spool: ingestor.spool, backpressure: ingestor.backpressure, degradation: degradation)
    }

    private var apps: AppDirectory { ingestor.apps }
    private var spool: Spool { ingestor.spool }

    /// What a path asks for. Segment's routes match at the end of the path, so a client
    /// configured with a path prefix (`host="http://h/prefix"`) reaches them too.
    enum Route: Equatable {
        case batch
        /// One message; the route sets its type.
        case single(type: String)
        case vendor(EventNormalizer.FormatChoice)
        case health
        case metrics
        /// The browser script (``BrowserScript``).
        case script

        static let singleTypes = [
            "track": "track", "identify": "identify", "group": "group", "page": "page", "screen": "screen", "alias": "alias",
            "t": "track", "i": "identify", "g": "group", "p": "page", "s": "screen", "a": "alias",
        ]
        static let vendors: [String: EventNormalizer.FormatChoice] = [
            "userguiding": .userguiding, "userlike": .userlike, "userpilot": .userpilot, "usercom": .usercom,
        ]

        init?(path: String) {
            let parts = path.split(separator: "/").map(String.init)
            guard let last = parts.last else { return nil }
            let parent = parts.count >= 2 ? parts[parts.count - 2] : nil
            if parent == "v1", ["batch", "import", "b"].contains(last) {
                self = .batch
            } else if parent == "v1", let type = Self.singleTypes[last] {
                self = .single(type: type)
            } else if let format = Self.vendors[last], parent != "v1" {
                // At the end of the path, as Segment's: /cairn.js loaded through a prefix posts under it.
                self = .vendor(format)
            } else if parts == ["health"] {
                self = .health
            } else if last == "cairn.js" {
                self = .script
            } else if path == "/metrics" {
                // Exactly this path: a proxy that blocks `/metrics` must not be passed by `/metrics/` or `//metrics`.
                self = .metrics
            } else {
                return nil
            }
        }

        /// The label `/metrics` counts requests under: the route, never the raw path.
        var label: String {
            switch self {
            case .batch: "/v1/batch"
            case .single(let type): "/v1/\(type)"
            case .vendor(let format): "/\(format.rawValue)"
            case .health: "/health"
            case .metrics: "/metrics"
            case .script: "/cairn.js"
            }
        }
    }

    /// A request refused: the status, a stable code and a message that says what was expected.
    struct Refusal: Error {
        var status: HTTPResponse.Status
        var code: ErrorCode
        var message: String
        var headers: HTTPFields = [:]
    }

    /// - Parameter peer: the client's address, which `/metrics` checks.
    public func respond(to request: Request, peer: SocketAddress? = nil) async -> Response {
        let started = ContinuousClock.now
        let route = Route(path: request.uri.path)
        var response: Response
        var app: String?
        do {
            response = try await handle(request, route: route, peer: peer, app: &app)
        } catch let refusal as Refusal {
            response = Self.json(
                refusal.status,
                ["code": .string(refusal.code.rawValue), "message": .string(refusal.message)],
                headers: refusal.headers
            )
        } catch {
            response = Self.json(.internalServerError, ["code": "internal", "message": .string("\(error)")])
        }
        // Browsers (analytics.js, /cairn.js) read the answer cross-origin, and /cairn.js its Retry-After.
        response.headers[.accessControlAllowOrigin] = "*"
        response.headers[.accessControlExposeHeaders] = "Retry-After"
        let elapsed = ContinuousClock.now - started
        let label = route?.label ?? "other"
        CairnMetric.httpRequests.increment(label, String(response.status.code), app ?? "")
        CairnMetric.httpDuration.record(elapsed, label)
        return response
    }

    /// - Parameter app: set to the app's token once the write key named one.
    private func handle(_ request: Request, route: Route?, peer: SocketAddress?, app: inout String?) async throws -> Response {
        if request.method == .options {
            var headers = HTTPFields()
            headers[.accessControlAllowMethods] = "GET, POST, OPTIONS"
            headers[.accessControlAllowHeaders] = "Authorization, Content-Type, Content-Encoding"
            headers[.accessControlMaxAge] = "86400"
            return Response(status: .noContent, headers: headers)
        }
        guard let route else {
            throw Refusal(
                status: .notFound,
                code: .notFound,
                message: "no route \(request.uri.path); POST to /v1/batch, /v1/track, …, /userguiding, /userlike, /userpilot or /usercom"
            )
        }
        switch route {
        case .health:
            guard request.method == .get || request.method == .head else { throw Self.methodNotAllowed("GET") }
            return Self.json(.ok, ["status": "ok"])
        case .metrics:
            guard request.method == .get else { throw Self.methodNotAllowed("GET") }
            if let denial = metricsAccess.denial(authorization: request.headers[.authorization], peer: peer) {
                throw Refusal(
                    status: HTTPResponse.Status(code: denial.status),
                    code: denial.code,
                    message: denial.message,
                    headers: denial.status == 401 ? [.wwwAuthenticate: "Bearer"] : [:]
                )
            }
            return Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: await renderMetrics()))
            )
        case .script:
            guard request.method == .get || request.method == .head else { throw Self.methodNotAllowed("GET") }
            return Self.script(for: request)
        case .batch, .single, .vendor:
            guard request.method == .post else { throw Self.methodNotAllowed("POST") }
            return try await ingest(request, route: route, app: &app)
        }
    }

    private func ingest(_ request: Request, route: Route, app appToken: inout String?) async throws -> Response {
        do {
            try await ingestor.backpressure.admit()
        } catch {
            throw Refusal(
                status: .tooManyRequests,
                code: .overloaded,
                message: error.description,
                headers: [.retryAfter: "2", HTTPField.Name("X-RateLimit-Reset")!: "2"]
            )
        }
        let body = try await Self.body(of: request, within: bodyTimeout)
        let value: JSON
        do {
            value = try JSONParser.parse(body, maximumDepth: EventNormalizer.maximumDepth)
        } catch {
            // The same codes as a record the CLI sends: nesting and encoding are named as such.
            let code: ErrorCode = error.isDepthExceeded ? .tooDeep : error.isInvalidUTF8 ? .invalidUTF8 : .invalidJSON
            throw Refusal(status: .badRequest, code: code, message: "the body is not valid JSON: \(error)")
        }
        var key = HTTPAuthorization.basicUsername(request.headers[.authorization])
        let records: [JSON]
        let format: EventNormalizer.FormatChoice
        switch route {
        case .batch:
            guard case .object(var envelope) = value, case .array(var messages)? = envelope["batch"] else {
                throw Refusal(
                    status: .badRequest,
                    code: .invalidBatch,
                    message: "expected an object {\"batch\": [messages]}, found \(value.typeName)"
                )
            }
            guard messages.count <= Self.maximumBatchMessages else {
                throw Refusal(
                    status: .badRequest,
                    code: .tooManyMessages,
                    message: "the batch holds \(messages.count) messages; the limit is \(Self.maximumBatchMessages) per batch"
                )
            }
            let bodyKey = Self.takeWriteKey(from: &envelope)
            key = key ?? bodyKey
            // The envelope's context and integrations reach each message in SegmentAdapter.messages(in:).
            for index in messages.indices {
                guard case .object(var message) = messages[index] else { continue }  // refused per message, as a dead letter
                try Self.checkSize(JSON.object(message), "batch[\(index)]")
                _ = Self.takeWriteKey(from: &message)
                messages[index] = .object(message)
            }
            envelope["batch"] = .array(messages)
            records = [.object(envelope)]
            format = .segment
        case .single(let type):
            guard case .object(var message) = value else {
                throw Refusal(status: .badRequest, code: .invalidMessage, message: "expected one message object, found \(value.typeName)")
            }
            try Self.checkSize(value, "the message")
            let bodyKey = Self.takeWriteKey(from: &message)
            key = key ?? bodyKey
            message["type"] = .string(type)
            records = [.object(message)]
            format = .segment
        case .vendor(let vendor):
            let list: [JSON]
            switch value {
            case .array(let items): list = items
            case .object: list = [value]
            default:
                throw Refusal(
                    status: .badRequest,
                    code: .invalidRecord,
                    message: "expected a record object or an array of them, found \(value.typeName)"
                )
            }
            guard list.count <= Self.maximumBatchMessages else {
                throw Refusal(
                    status: .badRequest,
                    code: .tooManyMessages,
                    message: "the request holds \(list.count) records; the limit is \(Self.maximumBatchMessages)"
                )
            }
            var cleaned: [JSON] = []
            for (index, item) in list.enumerated() {
                try Self.checkSize(item, list.count == 1 ? "the record" : "record \(index)")
                guard case .object(var record) = item else {
                    cleaned.append(item)
                    continue
                }
                let bodyKey = Self.takeWriteKey(from: &record)
                key = key ?? bodyKey
                cleaned.append(.object(record))
            }
            records = cleaned
            format = vendor
        case .health, .metrics, .script:
            throw Refusal(status: .notFound, code: .notFound, message: "not an ingest route")
        }
        key = key ?? request.uri.queryParameters["writeKey"].map(String.init) ?? request.uri.queryParameters["write_key"].map(String.init)
        guard let key, !key.isEmpty else {
            throw Refusal(
                status: .unauthorized,
                code: .missingWriteKey,
                message: "send the app's write key as the Basic auth username (Authorization: Basic base64(key:)) or as writeKey in the body"
            )
        }
        let app: AppDirectory.App
        do {
            app = try await apps.resolve(writeKey: key)
        } catch  where error.applicationCode == .unknownWriteKey {
            throw Refusal(
                status: .unauthorized,
                code: .unknownWriteKey,
                message: "no app has this write key; `cairn apps list` shows the apps, `cairn apps rotate-key` issues a new key"
            )
        } catch {
            throw Refusal(status: .serviceUnavailable, code: .storageUnavailable, message: error.message, headers: [.retryAfter: "5"])
        }
        appToken = app.token
        let accepted: Ingestor.Accepted
        do {
            accepted = try await ingestor.accept(
                records,
                app: app,
                format: format,
                formatName: format.rawValue,
                source: "http \(route.label)",
                sizesChecked: true
            )
        } catch {
            guard let answer = RPCError(converting: error) else { throw error }
            throw Refusal(
                status: .serviceUnavailable,
                code: answer.applicationCode ?? .spoolFailed,
                message: answer.message,
                headers: [.retryAfter: "5"]
            )
        }
        var answer: JSONObject = ["success": true]
        if accepted.rejected > 0 {
            // Kept as dead letters (`cairn deadletters list`); still 200, as Segment answers.
            answer["rejected"] = .int(Int64(accepted.rejected))
            answer["errors"] = .array(accepted.errors)
        }
        return Self.json(.ok, answer)
    }

    /// The request body, gunzipped when it says so, within Segment's 500 KB per request, read
    /// within `deadline` (a body that never arrives must not hold the connection for ever).
    static func body(of request: Request, within deadline: Duration) async throws -> [UInt8] {
        let limit = maximumBatchBytes
        let tooLarge = Refusal(
            status: .badRequest,
            code: .requestTooLarge,
            message: "the body is over \(limit) bytes of JSON, Segment's limit per batch request"
        )
        var buffer: ByteBuffer
        do {
            buffer = try await withThrowingTaskGroup(of: ByteBuffer?.self) { group in
                group.addTask { try await request.body.collect(upTo: limit) }
                group.addTask {
                    try await Task.sleep(for: deadline)
                    return nil
                }
                defer { group.cancelAll() }
                guard let first = try await group.next(), let body = first else {
                    throw Refusal(
                        status: .requestTimeout,
                        code: .bodyTimeout,
                        message: "the body did not arrive within \(deadline.components.seconds) s",
                        headers: [.connection: "close"]
                    )
                }
                return body
            }
        } catch is NIOTooManyBytesError {
            throw tooLarge
        }
        let bytes = buffer.readBytes(length: buffer.readableBytes) ?? []
        guard let encoding = request.headers[.contentEncoding]?.lowercased(), encoding != "identity" else { return bytes }
        guard encoding == "gzip" || encoding == "x-gzip" else {
            throw Refusal(
                status: .unsupportedMediaType,
                code: .unsupportedEncoding,
                message: "Content-Encoding \(encoding) is not supported; send gzip or nothing"
            )
        }
        do {
            return try Gzip.decompress(bytes, limit: limit)
        } catch  where error.exceedsLimit {
            throw tooLarge
        } catch {
            throw Refusal(status: .badRequest, code: .invalidGzip, message: "the body says Content-Encoding: gzip but does not gunzip: \(error)")
        }
    }

    /// The body's `writeKey`, removed so that the key is never stored (not even in a dead letter).
    static func takeWriteKey(from object: inout JSONObject) -> String? {
        defer { object["writeKey"] = nil }
        return object["writeKey"]?.stringValue
    }

    static func checkSize(_ value: JSON, _ what: String) throws(Refusal) {
        let size = value.serializedByteCount
        guard size <= maximumMessageBytes else {
            throw Refusal(
                status: .badRequest,
                code: .messageTooLarge,
                message: "\(what) is \(size) bytes; the limit is \(maximumMessageBytes) bytes (32 KB) per message"
            )
        }
    }

    static func methodNotAllowed(_ allowed: String) -> Refusal {
        Refusal(status: .methodNotAllowed, code: .methodNotAllowed, message: "use \(allowed)", headers: [.allow: allowed])
    }

    static func json(_ status: HTTPResponse.Status, _ object: JSONObject, headers: HTTPFields = [:]) -> Response {
        var headers = headers
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: JSON.object(object).serialized())))
    }

    /// `GET /cairn.js`: cacheable for an hour and revalidated by its ETag (each encoding its
    /// own), gzipped for a client that takes it.
    static func script(for request: Request) -> Response {
        let gzip = (request.headers[.acceptEncoding] ?? "").lowercased().split(separator: ",").contains { item in
            let parts = item.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
            let refused = parts.dropFirst().contains {
                $0.replacingOccurrences(of: " ", with: "").hasPrefix("q=0") && Double($0.split(separator: "=").last ?? "") == 0
            }
            return (parts.first == "gzip" || parts.first == "x-gzip") && !refused
        }
        let etag = gzip ? BrowserScript.gzippedETag : BrowserScript.etag
        var headers: HTTPFields = [
            .contentType: "text/javascript; charset=utf-8", .cacheControl: "public, max-age=3600",
            .eTag: etag, HTTPField.Name("X-Content-Type-Options")!: "nosniff", .vary: "Accept-Encoding",
        ]
        // Weak comparison (RFC 9110 13.1.2): W/"x" matches "x".
        if let tags = request.headers[.ifNoneMatch],
            tags.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }).contains(where: { tag in
                tag == "*" || (tag.hasPrefix("W/") ? String(tag.dropFirst(2)) : tag) == etag
            })
        {
            return Response(status: .notModified, headers: headers)
        }
        let body = gzip ? BrowserScript.gzipped : BrowserScript.bytes
        if gzip { headers[.contentEncoding] = "gzip" }
        headers[.contentLength] = String(body.count)
        return Response(
            status: .ok,
            headers: headers,
            body: request.method == .head ? ResponseBody() : ResponseBody(byteBuffer: ByteBuffer(bytes: body))
        )
    }

    /// Ingest's own metrics (the supervisor's address serves the whole stack's).
    private func renderMetrics() async -> String {
        await gauges.refresh()
        return MetricsRegistry.exposition()
    }
}
