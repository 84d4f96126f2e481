import CairnCore
import CairnGzip
import CairnPostgres
import CairnStorage
import CairnTesting
import CairnWire
import Foundation
import Logging
import Testing

@testable import CairnExport

@Suite struct ExportTests {
    func event(
        _ type: EventType,
        _ name: String = "",
        user: String? = "u1",
        metadata: JSONObject = [:],
        at: String = "2024-05-01T09:05:00.123456Z",
        origin: InputFormat = .userpilot
    ) -> CanonicalEvent {
        CanonicalEvent(
            appToken: "acme",
            eventType: type,
            eventName: name,
            userId: user,
            companyId: "c-1",
            source: "web-client",
            insertedAt: Timestamp(parsing: at)!,
            hostname: "app.acme.io",
            pathname: "/cart",
            userAgent: "UA",
            browserLanguage: "en-US",
            metadata: metadata,
            receivedAt: Timestamp(parsing: at)!,
            origin: origin
        )
    }

    @Test(arguments: [
        ("Guide Started", "guide_started"), ("accountType", "account_type"), ("URL Clicked", "url_clicked"),
        ("something.com", "something_com"), ("$something%", "something"), ("samPLE text", "sam_ple_text"),
        ("userID", "user_id"), ("CStringRef", "cstring_ref"), ("2FA Enabled", "2fa_enabled"), ("already_snake", "already_snake"),
        ("Résumé Viewed", "r_sum_viewed"),
    ])
    func snakeCaseMatchesGoSnakecase(input: String, expected: String) {
        #expect(SnakeCase.convert(input) == expected)
    }

    @Test func mapsEachEventType() throws {
        // Keys pass through as they are: none collapse, no letter is dropped.
        let track = SegmentMapper.message(for: event(.track, "Added to cart", metadata: ["unitPrice": 39, "unit_price": 40, "Größe": "L"]))
        #expect(track["type"] == "track")
        #expect(track["event"] == "Added to cart")
        #expect(track["properties"] == ["unitPrice": 39, "unit_price": 40, "Größe": "L"])
        // Microseconds survive; a time on the millisecond is written as Segment's libraries write it.
        #expect(track["timestamp"] == "2024-05-01T09:05:00.123456Z")
        #expect(SegmentMapper.message(for: event(.track, "A", at: "2024-05-01T09:05:00.123Z"))["timestamp"] == "2024-05-01T09:05:00.123Z")
        #expect(track["messageId"] == .string("cairn-acme-" + event(.track, "Added to cart").internalEventIdHex))
        #expect(track["context"]?["integration"]?["name"] == "cairn")
        #expect(track["context"]?["page"]?["path"] == "/cart")
        #expect(track["context"]?["userAgent"] == "UA")
        #expect(track["context"]?["locale"] == "en-US")

        let interaction = SegmentMapper.message(for: event(.interaction, "experience:493:DISMISSED", metadata: ["status": "DISMISSED"]))
        #expect(interaction["event"] == "Experience Dismissed")
        #expect(interaction["properties"]?["experience_id"] == "493")

        #expect(SegmentMapper.message(for: event(.identifyUser, metadata: ["plan": "pro"]))["type"] == "identify")
        let group = SegmentMapper.message(for: event(.identifyCompany, user: nil))
        #expect(group["type"] == "group")
        #expect(group["groupId"] == "c-1")
        // No invented ids: a company-only event goes out with none, as it came.
        #expect(group["anonymousId"] == nil && group["userId"] == nil)
        #expect(SegmentMapper.message(for: event(.pageView))["type"] == "page")
        #expect(SegmentMapper.message(for: event(.trackFeature, "tag-1"))["event"] == "Feature Used")
        #expect(SegmentMapper.message(for: event(.sessionStart))["event"] == "Session Started")
    }

    /// UserGuiding's Segment guide: `Guide Started` carries `guide_id` (int), `guide_name` and `page_url` (str),
    /// and `user_id`; an id that is not a number stays a string.
    @Test func userGuidingEventsKeepTheSegmentSourceNamesAndTypes() {
        let guide = SegmentMapper.message(
            for: event(
                .track,
                "Guide Started",
                metadata: ["guide_id": "12", "guide_name": "Tour", "page_url": "https://a.io/x"],
                origin: .userguiding
            )
        )
        #expect(guide["event"] == "Guide Started")
        #expect(guide["properties"] == ["guide_id": 12, "guide_name": "Tour", "page_url": "https://a.io/x", "user_id": "u1"])
        let answer = SegmentMapper.message(
            for: event(.track, "Survey Question Answer", metadata: ["survey_id": "s-9", "question_id": "7", "score": 9], origin: .userguiding)
        )
        #expect(answer["properties"]?["survey_id"] == "s-9")
        #expect(answer["properties"]?["question_id"] == "7")  // UserGuiding's Segment guide types it str
        #expect(answer["properties"]?["score"] == 9)
        // Any other track event keeps its values as they are, even one of another origin named like a UserGuiding event.
        #expect(SegmentMapper.message(for: event(.track, "Clicked", metadata: ["guide_id": "12"]))["properties"]?["guide_id"] == "12")
        #expect(SegmentMapper.message(for: event(.track, "Guide Started", metadata: ["guide_id": "12"]))["properties"] == ["guide_id": "12"])
    }

    @Test func cutsDownOversizedMessagesByTheDocumentedRule() throws {
        let long = String(repeating: "x", count: 40_000)
        let fitted = try #require(SegmentMapper.fitted(SegmentMapper.message(for: event(.track, "Big", metadata: ["blob": .string(long)]))))
        #expect(fitted.truncated)
        #expect(fitted.bytes.count <= SegmentMapper.maximumMessageBytes)
        let message = try JSONParser.parse(fitted.bytes)
        #expect(message["properties"]?["blob"]?.stringValue?.count == SegmentMapper.truncatedStringLength)
        #expect(message["context"]?["cairn_truncated"] == .bool(true))
        // Too many keys to save by shortening strings: properties are dropped.
        var many = JSONObject()
        for n in 0..<3000 { many["key_\(n)"] = .int(Int64(n)) }
        let dropped = try #require(SegmentMapper.fitted(SegmentMapper.message(for: event(.track, "Wide", metadata: many))))
        #expect(try JSONParser.parse(dropped.bytes)["properties"] == .object(JSONObject()))
        // An event whose name alone is too big cannot be sent.
        #expect(SegmentMapper.fitted(SegmentMapper.message(for: event(.track, long))) == nil)
    }

    @Test func batchFilesRespectSegmentLimitsOnTheBytesWritten() throws {
        let directory = "/tmp/cairn-export-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var writer = try BatchFileWriter(directory: directory)
        let small = Array(#"{"type":"track","event":"A","userId":"u"}"#.utf8)
        for _ in 0..<6000 { try writer.append(small) }
        let big = Array((#"{"type":"track","event":""# + String(repeating: "b", count: 30_000) + #"","userId":"u"}"#).utf8)
        for _ in 0..<40 { try writer.append(big) }
        try writer.flush()
        let files = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".json") }.sorted()
        var total = 0
        for file in files {
            let data = try #require(FileManager.default.contents(atPath: directory + "/" + file))
            #expect(data.count <= BatchFileWriter.maximumBatchBytes)
            let body = try JSONParser.parse(Array(data))
            let batch = try #require(body["batch"]?.arrayValue)
            #expect(batch.count <= BatchFileWriter.maximumMessages)
            // Files are sent later: the sender sets sentAt, or clock-skew correction would move every event.
            #expect(body["sentAt"] == nil)
            total += batch.count
        }
        #expect(total == 6040)
        #expect(files.first == "batch-000001.json")
        #expect(files.count == writer.filesWritten)
    }

    @Test func readsStoredEventsBackInTimeOrder() throws {
        let connection = try PostgresConnection(conninfo: try TestPostgres.freshDatabase())
        try Schema.migrate(connection)
        _ = try AppRegistry.create(["name": "acme"], on: connection)
        let events = (0..<12).map { event(.track, "E\($0)", metadata: ["n": .int(Int64($0))], at: "2024-05-\(10 + $0)T00:00:00Z") }
        _ = try EventWriter().write(events: events.reversed(), users: .array([]), companies: .array([]), on: connection)
        var reader = StoredEvents(app: "acme", since: Timestamp(parsing: "2024-05-11"), until: Timestamp(parsing: "2024-05-21"))
        reader.pageSize = 4
        var seen: [CanonicalEvent] = []
        try reader.forEachPage(on: connection) {
            seen += $0
        } corrupt: { id, error in
            Issue.record("corrupt \(id): \(error)")
        }
        #expect(seen.map(\.eventName) == (1...10).map { "E\($0)" })
        #expect(seen.first?.metadata["n"] == .int(1))
        #expect(seen == Array(events[1...10]))
    }
    /// device-A browses at 09:00 and is identified as ada at 09:10 (the identify carries both
    /// ids, so that link needs no message of its own); ada-work is merged into ada at 09:15,
    /// and ada buys at 09:20: the merge goes out as an alias between the identify and the
    /// purchase, the same message on every export.
    @Test func aliasesGoOutAsAliasMessagesInTimeOrder() async throws {
        let conninfo = try TestPostgres.freshDatabase()
        let connection = try PostgresConnection(conninfo: conninfo)
        try Schema.migrate(connection)
        _ = try AppRegistry.create(["name": "acme"], on: connection)
        func at(_ time: String) -> Timestamp { Timestamp(parsing: "2024-05-01T\(time):00Z")! }
        let events = [
            CanonicalEvent(
                appToken: "acme",
                eventType: .pageView,
                eventName: "",
                userId: nil,
                companyId: nil,
                anonymousId: "device-A",
                source: "web-client",
                insertedAt: at("09:00"),
                pathname: "/",
                receivedAt: at("09:00"),
                origin: .segment
            ),
            CanonicalEvent(
                appToken: "acme",
                eventType: .identifyUser,
                eventName: "",
                userId: "ada",
                companyId: nil,
                anonymousId: "device-A",
                source: "web-client",
                insertedAt: at("09:10"),
                receivedAt: at("09:10"),
                origin: .segment
            ),
            CanonicalEvent(
                appToken: "acme",
                eventType: .track,
                eventName: "Purchased",
                userId: "ada",
                companyId: nil,
                source: "web-client",
                insertedAt: at("09:20"),
                receivedAt: at("09:20"),
                origin: .segment
            ),
        ]
        _ = try EventWriter().write(
            events: events,
            users: [["app_token": "acme", "user_id": "ada", "first_seen": "2024-05-01T09:10:00Z", "last_seen": "2024-05-01T09:20:00Z"]],
            companies: .array([]),
            aliases: [["app_token": "acme", "alias_id": "device-A", "user_id": "ada", "aliased_at": "2024-05-01T09:10:00Z"]],
            on: connection
        )
        try connection.execute(
            """
            INSERT INTO identity_aliases (app_token, alias_kind, alias_id, user_id, aliased_at, reason)
            VALUES ('acme', 'user', 'ada-work', 'ada', '2024-05-01T09:15:00Z', 'merge')
            """
        )
        let pool = PostgresPool(conninfo: conninfo)
        func export() async throws -> [JSON] {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-alias-\(UInt64.random(in: 0...UInt64.max))").path
            defer { try? FileManager.default.removeItem(atPath: directory) }
            var writer = try BatchFileWriter(directory: directory)
            let result = try await ExportService.exportSegment(
                try .init(params: ["app": "acme"]),
                pool: pool,
                into: &writer,
                logger: .init(label: "test")
            )
            #expect(result["messages"] == 4)
            let file = try #require(FileManager.default.contents(atPath: directory + "/batch-000001.json"))
            return try JSONParser.parse(Array(file))["batch"]?.arrayValue ?? []
        }
        let batch = try await export()
        #expect(batch.map { $0["type"]?.stringValue ?? "" } == ["page", "identify", "alias", "track"])
        let alias = batch[2]
        #expect(alias["previousId"] == "ada-work")
        #expect(alias["userId"] == "ada")
        #expect(alias["timestamp"] == "2024-05-01T09:15:00.000Z")
        let messageId = try #require(alias["messageId"]?.stringValue)
        #expect(messageId.hasPrefix("cairn-acme-alias-") && messageId.count < 100)
        // A second export carries the same messageIds, so downstream deduplicates it.
        #expect(try await export().map { $0["messageId"] } == batch.map { $0["messageId"] })
    }
}

/// Delivery to a real HTTP endpoint (``TestReceiver``), and Segment's retry rules.
@Suite struct HTTPDeliveryTests {
    /// Fast retries, so that a test of five attempts takes milliseconds.
    static var quick: RetryPolicy {
        var policy = RetryPolicy()
        policy.maximumAttempts = 4
        policy.initialBackoff = .milliseconds(5)
        policy.maximumBackoff = .milliseconds(20)
        // The receivers answer at once; a loaded machine (make test) must not turn a slow answer into a retry.
        policy.attemptTimeout = .seconds(10)
        return policy
    }

    @Test func retriesServerErrorsAndRateLimitsThenDelivers() async throws {
        let receiver = try await TestReceiver(script: [.init(status: 500), .init(status: 429, headers: [("Retry-After", "0")]), .init(status: 503)])
        let destination = try SegmentHTTPDestination(url: receiver.url, writeKey: "abc123", gzip: true, retry: Self.quick)
        let body = Array(#"{"batch":[{"type":"track","event":"A","userId":"u"}],"sentAt":"2024-05-01T00:00:00.000Z"}"#.utf8)
        let delivery = await destination.send(body)
        try await receiver.shutdown()
        #expect(delivery.delivered)
        #expect(delivery.attempts == 4)
        let requests = receiver.requests
        #expect(requests.count == 4)
        // Segment's documented example: the key abc123 with its trailing colon.
        #expect(requests.allSatisfy { $0.header("Authorization") == "Basic YWJjMTIzOg==" })
        #expect(requests.allSatisfy { $0.method == "POST" && $0.uri == "/v1/batch" && $0.header("Content-Encoding") == "gzip" })
        #expect(try requests.map { try $0.decodedBody() }.allSatisfy { $0 == body })
        #expect(requests.map { $0.header("X-Retry-Count") } == [nil, "1", "2", "3"])
    }

    @Test func aClientErrorIsFinalAndKeepsTheResponse() async throws {
        let receiver = try await TestReceiver(script: [.init(status: 400, body: #"{"code":"invalid","message":"batch too large"}"#)])
        let destination = try SegmentHTTPDestination(url: receiver.url + "/custom/batch", writeKey: "k", retry: Self.quick)
        let delivery = await destination.send(Array(#"{"batch":[]}"#.utf8))
        try await receiver.shutdown()
        #expect(!delivery.delivered)
        #expect(!delivery.unavailable)
        #expect(delivery.attempts == 1)
        #expect(delivery.status == 400)
        #expect(delivery.detail.contains("batch too large"))
        #expect(receiver.requests.map(\.uri) == ["/custom/batch"])
    }

    @Test func anUnreachableEndpointIsRetriedThenReportedUnavailable() async throws {
        let receiver = try await TestReceiver()
        let url = receiver.url
        try await receiver.shutdown()  // nothing listens on the port any more
        // The HTTP client keeps trying to connect to a refusing port until the attempt's timeout.
        var brief = Self.quick
        brief.attemptTimeout = .milliseconds(300)
        let delivery = await (try SegmentHTTPDestination(url: url, writeKey: "k", retry: brief)).send(Array("{}".utf8))
        #expect(!delivery.delivered)
        #expect(delivery.unavailable)
        #expect(delivery.status == nil)
        #expect(delivery.attempts == 4)
    }

    @Test func backoffGrowsWithJitterAndHonoursRetryAfter() {
        var policy = RetryPolicy()
        policy.initialBackoff = .milliseconds(500)
        policy.maximumBackoff = .seconds(60)
        for attempt in 1...12 {
            let ceiling = min(60_000, 500 << (attempt - 1))
            let delay = policy.delay(afterAttempt: attempt, retryAfter: nil)
            #expect(delay >= .milliseconds(ceiling / 2) && delay <= .milliseconds(ceiling), "attempt \(attempt): \(delay)")
        }
        #expect(policy.delay(afterAttempt: 1, retryAfter: .seconds(7)) == .seconds(7))
        #expect(policy.delay(afterAttempt: 1, retryAfter: .seconds(10_000)) == .seconds(300))
        #expect([408, 429, 500, 502, 503, 504].allSatisfy(RetryPolicy.isRetryable))
        #expect(![400, 401, 403, 404, 413, 422].contains(where: RetryPolicy.isRetryable))
    }

    @Test func refusesADestinationThatIsNotHTTP() {
        #expect(throws: ExportError.self) { try SegmentHTTPDestination(url: "ftp://example.com", writeKey: "k") }
        #expect(throws: ExportError.self) { try SegmentHTTPDestination(url: "http://example.com", writeKey: "") }
        #expect((try? SegmentHTTPDestination(url: "https://api.segment.io", writeKey: "k"))?.url == "https://api.segment.io/v1/batch")
    }

    /// The stored events of an app go out whole over HTTP: every message once, in batches
    /// within Segment's limits; a batch refused with 400 is reported and the rest delivered.
    @Test func anExportDeliversEveryMessageAndReportsARefusedBatch() async throws {
        let conninfo = try TestPostgres.freshDatabase()
        let connection = try PostgresConnection(conninfo: conninfo)
        try Schema.migrate(connection)
        _ = try AppRegistry.create(["name": "acme"], on: connection)
        // 3,000 events: more than one batch of 2,500 messages.
        let events = (0..<3000).map { index in
            CanonicalEvent(
                appToken: "acme",
                eventType: .track,
                eventName: "Clicked",
                userId: "u\(index % 50)",
                companyId: nil,
                source: "web-client",
                insertedAt: Timestamp(microseconds: Timestamp(parsing: "2024-05-01T00:00:00Z")!.microseconds + Int64(index) * 1_000_000),
                metadata: ["n": .int(Int64(index))],
                receivedAt: .now(),
                origin: .segment
            )
        }
        _ = try EventWriter().write(events: events, users: .array([]), companies: .array([]), on: connection)
        let pool = PostgresPool(conninfo: conninfo)

        let patient = Self.quick
        let receiver = try await TestReceiver()
        var sender = HTTPBatchSender(destination: try SegmentHTTPDestination(url: receiver.url, writeKey: "k", retry: patient))
        let request = try ExportService.ExportRequest(params: ["app": "acme"])
        let summary = try await ExportService.exportSegment(request, pool: pool, into: &sender, logger: Logger(label: "test"))
        #expect(summary["messages"] == 3000)
        #expect(sender.messagesDelivered == 3000)
        #expect(sender.batchesSent == 2)
        var messageIds: [String] = []
        for received in receiver.requests {
            let body = try JSONParser.parse(try received.decodedBody())
            let batch = try #require(body["batch"]?.arrayValue)
            #expect(batch.count <= BatchAssembler.maximumMessages)
            #expect(received.body.count <= BatchAssembler.maximumBatchBytes)
            messageIds += batch.compactMap { $0["messageId"]?.stringValue }
        }
        #expect(messageIds.count == 3000 && Set(messageIds).count == 3000)
        try await receiver.shutdown()

        // The first batch is refused for good: it is reported, and the second still goes.
        let refusing = try await TestReceiver(script: [.init(status: 400, body: #"{"code":"bad","message":"no"}"#)])
        var second = HTTPBatchSender(destination: try SegmentHTTPDestination(url: refusing.url, writeKey: "k", retry: patient))
        let partial = try await ExportService.exportSegment(request, pool: pool, into: &second, logger: Logger(label: "test"))
        try await refusing.shutdown()
        #expect(partial["stopped"] == false)
        #expect(refusing.requests.count == 2)
        #expect(second.failures.count == 1)
        #expect(second.failures.first?["status"] == 400)
        #expect(second.failures.first?["response"]?.stringValue?.contains("no") == true)
        // The refused batch is the first request's; everything after it was delivered.
        let refused = try JSONParser.parse(try refusing.requests[0].decodedBody())["batch"]?.arrayValue?.count ?? 0
        #expect(refused > 0 && second.failures.first?["messages"] == .int(Int64(refused)))
        #expect(second.messagesDelivered == 3000 - refused)
    }
}

@Suite struct GzipTests {
    @Test func roundTripsAndRefusesBadOrHugeInput() throws {
        let text = Array(String(repeating: "cairn ", count: 10_000).utf8)
        let packed = try Gzip.compress(text)
        #expect(packed.count < text.count / 10)
        #expect(Array(packed.prefix(2)) == [0x1F, 0x8B])  // a gzip member, as Content-Encoding: gzip means
        #expect(try Gzip.decompress(packed, limit: text.count) == text)
        // Two members back to back read as one body (RFC 1952 allows it).
        #expect(try Gzip.decompress(packed + (try Gzip.compress(Array("!".utf8))), limit: text.count + 1) == text + Array("!".utf8))
        #expect(throws: Gzip.Failure.self) { try Gzip.decompress(packed, limit: text.count - 1) }
        #expect(throws: Gzip.Failure.self) { try Gzip.decompress(Array(packed.prefix(packed.count / 2)), limit: text.count) }
        #expect(throws: Gzip.Failure.self) { try Gzip.decompress(Array("not gzip".utf8), limit: 100) }
    }
}
