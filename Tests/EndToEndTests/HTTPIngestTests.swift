import AsyncHTTPClient
import CairnCore
import CairnGzip
import CairnPostgres
import CairnTesting
import CairnWire
import Foundation
import NIOCore
import NIOHTTP1
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// HTTP ingest against the real stack: Segment's routes and limits, write keys, vendor
/// routes, backpressure, `/metrics`, and the real Segment and RudderStack Python clients.
@Suite(.serialized) struct HTTPIngestTests {
    struct Answer {
        var status: Int
        var body: String
        var headers: HTTPHeaders
        var json: JSON? { try? JSONParser.parse(Array(body.utf8)) }
    }

    static func post(
        _ url: String,
        _ body: [UInt8],
        key: String? = nil,
        gzip: Bool = false,
        contentType: String = "application/json",
        method: HTTPMethod = .POST,
        bearer: String? = nil
    ) async throws -> Answer {
        var request = HTTPClientRequest(url: url)
        request.method = method
        request.headers.add(name: "Content-Type", value: contentType)
        if let key { request.headers.add(name: "Authorization", value: "Basic " + Data((key + ":").utf8).base64EncodedString()) }
        if let bearer { request.headers.add(name: "Authorization", value: "Bearer " + bearer) }
        if gzip { request.headers.add(name: "Content-Encoding", value: "gzip") }
        if method == .POST { request.body = .bytes(ByteBuffer(bytes: gzip ? try Gzip.compress(body) : body)) }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let text = String(buffer: try await response.body.collect(upTo: 1 << 22))
        return Answer(status: Int(response.status.code), body: text, headers: response.headers)
    }

    static func post(_ url: String, json: JSON, key: String? = nil, gzip: Bool = false) async throws -> Answer {
        try await post(url, json.serialized(), key: key, gzip: gzip)
    }

    static func createApp(_ name: String, on stack: TestStack) async throws -> String {
        let created = try await stack.call("storage", "apps.create", ["name": .string(name)])
        return try #require(created["write_key"]?.stringValue)
    }

    @Test func speaksSegmentsAPIWithWriteKeysAndLimits() async throws {
        try await TestStack.with { stack in
            let base = try await stack.httpURL()
            let key = try await Self.createApp("web", on: stack)
            let batch: JSON = [
                "batch": [
                    [
                        "type": "identify", "userId": "u1", "anonymousId": .null, "traits": ["plan": "pro"], "messageId": "m-identify",
                        "timestamp": "2024-05-01T12:00:00.071+00:00",
                    ],
                    [
                        "type": "track", "userId": "u1", "event": "Signup Completed", "properties": ["plan": "pro", "seats": 3],
                        "messageId": "m-track",
                        "timestamp": "2024-05-01T12:00:01.5+02:00",
                        "context": ["page": ["path": "/signup", "url": "https://app.example.com/signup"]],
                        "integrations": ["Salesforce": false],
                    ],
                    ["type": "page", "anonymousId": "a1", "name": "Pricing", "properties": ["path": "/pricing"], "messageId": "m-page"],
                    ["type": "group", "userId": "u1", "groupId": "acme-inc", "traits": ["name": "Acme"], "messageId": "m-group"],
                    ["type": "alias", "previousId": "a1", "userId": "u1", "messageId": "m-alias"],
                ],
                "context": ["library": ["name": "analytics-python", "version": "2.4.0"], "locale": "de-DE"],
                "integrations": ["All": true],
                "sentAt": "2024-05-01T12:00:05.123Z",
            ]
            // Basic auth and gzip: exactly 200 {"success":true}, only once the events are durable.
            var answer = try await Self.post(base + "/v1/batch", json: batch, key: key, gzip: true)
            #expect(answer.status == 200 && answer.body == #"{"success":true}"#, "\(answer.body)")
            // The same batch again: deduplicated on messageId, still 200.
            answer = try await Self.post(base + "/v1/batch", json: batch, key: key)
            #expect(answer.status == 200)
            // The browser's short route, text/plain, with the key in the body.
            answer = try await Self.post(
                base + "/v1/t",
                Array(#"{"event":"Clicked","userId":"u2","writeKey":"\#(key)"}"#.utf8),
                contentType: "text/plain"
            )
            #expect(answer.status == 200, "\(answer.body)")
            // A path prefix, and a key without the trailing colon.
            var request = HTTPClientRequest(url: base + "/collect/v1/track")
            request.method = .POST
            request.headers.add(name: "Authorization", value: "Basic " + Data(key.utf8).base64EncodedString())
            request.body = .bytes(ByteBuffer(string: #"{"event":"Prefixed","userId":"u3"}"#))
            #expect(try await HTTPClient.shared.execute(request, timeout: .seconds(30)).status.code == 200)
            // A vendor route: Userlike callbacks, one record or an array.
            let userlike = try String(contentsOfFile: TestStack.repositoryRoot + "/Tests/Fixtures/userlike.jsonl", encoding: .utf8)
                .split(separator: "\n").prefix(2).map { try JSONParser.parse(Array($0.utf8)) }
            answer = try await Self.post(base + "/userlike", json: .array(userlike), key: key)
            #expect(answer.status == 200, "\(answer.body)")

            // Keys: none, or one no app has.
            answer = try await Self.post(base + "/v1/batch", json: batch)
            #expect(answer.status == 401 && answer.json?["code"] == "missing_write_key")
            answer = try await Self.post(base + "/v1/batch", json: batch, key: "not-a-key")
            #expect(answer.status == 401 && answer.json?["code"] == "unknown_write_key")

            // Limits and malformed bodies: 400 with the limit named.
            answer = try await Self.post(base + "/v1/batch", Array(#"{"batch":[{"type":"track""#.utf8), key: key)
            #expect(answer.status == 400 && answer.json?["code"] == "invalid_json")
            let deep =
                #"{"batch":[{"type":"track","event":"E","userId":"u","properties":"# + String(repeating: "[", count: 40)
                + String(repeating: "]", count: 40) + "}]}"
            answer = try await Self.post(base + "/v1/batch", Array(deep.utf8), key: key)
            #expect(answer.status == 400 && answer.json?["code"] == "too_deep", "\(answer.body)")
            answer = try await Self.post(base + "/v1/track", Array(#"{"event":"Caf"#.utf8) + [0xE9] + Array(#"","userId":"u"}"#.utf8), key: key)
            #expect(answer.status == 400 && answer.json?["code"] == "invalid_utf8", "\(answer.body)")
            answer = try await Self.post(base + "/v1/batch", [0x1F, 0x8B, 1, 2, 3], key: key, contentType: "application/json")
            #expect(answer.status == 400)
            var gzipped = HTTPClientRequest(url: base + "/v1/batch")
            gzipped.method = .POST
            gzipped.headers.add(name: "Content-Encoding", value: "gzip")
            gzipped.headers.add(name: "Authorization", value: "Basic " + Data((key + ":").utf8).base64EncodedString())
            gzipped.body = .bytes(ByteBuffer(bytes: [0x1F, 0x8B, 8, 0, 1, 2, 3]))
            let badGzip = try await HTTPClient.shared.execute(gzipped, timeout: .seconds(30))
            #expect(badGzip.status.code == 400)
            let many: JSON = ["batch": .array((0..<2501).map { ["type": "track", "event": "E", "userId": .string("u\($0)")] })]
            answer = try await Self.post(base + "/v1/batch", json: many, key: key)
            #expect(answer.status == 400 && answer.json?["code"] == "too_many_messages" && answer.body.contains("2500"), "\(answer.body)")
            let huge: JSON = [
                "batch": [["type": "track", "event": "E", "userId": "u", "properties": ["text": .string(String(repeating: "x", count: 33_000))]]]
            ]
            answer = try await Self.post(base + "/v1/batch", json: huge, key: key)
            #expect(answer.status == 400 && answer.json?["code"] == "message_too_large" && answer.body.contains("batch[0]"), "\(answer.body)")
            let tooBig: JSON = [
                "batch": .array(
                    (0..<40).map { _ in
                        ["type": "track", "event": "E", "userId": "u", "properties": ["text": .string(String(repeating: "y", count: 14_000))]]
                    }
                )
            ]
            answer = try await Self.post(base + "/v1/batch", json: tooBig, key: key, gzip: true)
            #expect(answer.status == 400 && answer.json?["code"] == "request_too_large", "\(answer.body)")

            // Partial success: the good message is kept, the bad one is a dead letter, and the answer counts it.
            let mixed: JSON = ["batch": [["type": "track", "event": "Kept", "userId": "u4"], ["type": "track", "userId": "u4"]]]
            answer = try await Self.post(base + "/v1/batch", json: mixed, key: key)
            #expect(answer.status == 200 && answer.json?["success"] == true && answer.json?["rejected"] == 1, "\(answer.body)")
            let letters = try await stack.call("ingest", "ingest.deadletters.list", ["app": "web"])
            #expect(
                letters["rows"]?.arrayValue?.contains { $0["field"] == "event" && $0["code"] == "missing_field" } == true,
                "\(letters.serializedString())"
            )

            // Service routes.
            answer = try await Self.post(base + "/health", [], method: .GET)
            #expect(answer.status == 200)
            answer = try await Self.post(base + "/v1/batch", [], method: .GET)
            #expect(answer.status == 405)
            answer = try await Self.post(base + "/nowhere", [], key: key)
            #expect(answer.status == 404)

            try await stack.waitForEmptySpool()
            let metrics = try await Self.post(base + "/metrics", [], method: .GET)
            #expect(metrics.status == 200)
            // 5 + 1 + 1 + 2 + 1 new events; the repeated batch's 5 deduplicated; 1 dead letter.
            #expect(metrics.body.contains(#"cairn_app_events_total{service="ingest",app="web",outcome="accepted"} 10"#), "\(metrics.body)")
            #expect(metrics.body.contains(#"cairn_app_events_total{service="ingest",app="web",outcome="duplicate"} 5"#))
            #expect(metrics.body.contains(#"cairn_app_events_total{service="ingest",app="web",outcome="rejected"} 1"#))
            #expect(metrics.body.contains(#"cairn_dead_letters_total{service="ingest",reason="missing_field"} 1"#), "\(metrics.body)")
            #expect(metrics.body.contains(#"cairn_http_requests_total{service="ingest",route="/v1/batch",status="401",app=""} 2"#))
            #expect(
                metrics.body.contains(#"cairn_http_requests_total{service="ingest",route="/v1/batch",status="200",app="web"} 3"#),
                "\(metrics.body)"
            )
            #expect(metrics.body.contains(#"cairn_spool_depth{service="ingest"} 0.0"#))
            #expect(metrics.body.contains(#"cairn_spool_oldest_age_seconds{service="ingest"} 0.0"#))
            #expect(metrics.body.contains("# TYPE cairn_http_request_duration_seconds histogram"))

            // In PostgreSQL with the right fields.
            #expect(try await stack.waitForCount(app: "web", 10) == 10)
            let connection = try PostgresConnection(conninfo: stack.databaseConninfo)
            let track = try connection.execute(
                """
                SELECT user_id, event_type, metadata->>'plan', metadata->>'seats', pathname, browser_language, message_id,
                       round(extract(epoch FROM received_at - inserted_at), 3)
                FROM events WHERE app_token = 'web' AND event_name = 'Signup Completed'
                """
            ).rows
            // Segment's clock-skew correction: receivedAt − (sentAt − timestamp), and the envelope's sentAt stands for the
            // message's: the device's clock ran 2 h 3.623 s ahead of the event time when it sent the batch.
            #expect(track == [["u1", "track", "pro", "3", "/signup", "de-DE", "m-track", "7203.623"]])
            let types = try connection.execute("SELECT event_type, count(*) FROM events WHERE app_token = 'web' GROUP BY 1 ORDER BY 1").rows
            #expect(types == [["identify_company", "1"], ["identify_user", "2"], ["page_view", "1"], ["track", "6"]], "\(types)")
            let report = try await stack.cli(["report", "events", "--app", "web", "--format", "json"])
            #expect(report.stdout.contains("Signup Completed") && report.stdout.contains("Prefixed") && report.stdout.contains("Kept"))
            #expect(!stack.log.contains(key), "the write key must never be logged")
        }
    }

    /// Over the spool's high-water mark, requests get 429 with Retry-After, and nothing is
    /// lost: once the pipeline drains, the retried request is accepted.
    @Test func answers429OverTheHighWaterMarkAndDropsNothing() async throws {
        try await TestStack.with(environment: ["CAIRN_SPOOL_HIGH_WATER_MARK": "5"]) { stack in
            let base = try await stack.httpURL()
            let key = try await Self.createApp("busy", on: stack)
            // With writes to the log held back, the forwarder cannot drain the spool.
            let paused = try stack.pauseEventWrites()
            func batch(_ name: String) -> JSON {
                ["batch": .array((0..<10).map { ["type": "track", "event": .string(name), "userId": .string("u\($0)")] })]
            }
            var answer = try await Self.post(base + "/v1/batch", json: batch("First"), key: key)
            #expect(answer.status == 200)
            try await Task.sleep(for: .milliseconds(150))  // past the depth cache
            answer = try await Self.post(base + "/v1/batch", json: batch("Second"), key: key)
            #expect(answer.status == 429 && answer.json?["code"] == "overloaded", "\(answer.body)")
            #expect(answer.headers.first(name: "Retry-After") != nil)
            let metrics = try await Self.post(base + "/metrics", [], method: .GET).body
            #expect(metrics.contains(#"cairn_app_spool_depth{service="ingest",app="busy"} 10.0"#), "\(metrics)")
            #expect(metrics.contains(#"cairn_http_requests_total{service="ingest",route="/v1/batch",status="429",app=""} 1"#))
            try stack.resumeEventWrites(paused)
            try await stack.waitForEmptySpool()
            try await Task.sleep(for: .milliseconds(150))
            answer = try await Self.post(base + "/v1/batch", json: batch("Second"), key: key)
            #expect(answer.status == 200, "\(answer.body)")
            #expect(try await stack.waitForCount(app: "busy", 20) == 20)
        }
    }

    /// segment-analytics-python 2.3.4 (key in the body) and rudder-sdk-python 2.1.9 (key as
    /// Basic auth), with and without gzip, pointed at the stack unchanged.
    @Test func realClientLibrariesDeliverEveryCall() async throws {
        let python = TestStack.repositoryRoot + "/.build/python-clients/bin/python"
        guard FileManager.default.isExecutableFile(atPath: python) else {
            throw TestStackError("\(python) is missing: `make test` installs the Python client libraries (scripts/ensure-python-clients.sh)")
        }
        try await TestStack.with { stack in
            let base = try await stack.httpURL()
            let key = try await Self.createApp("clients", on: stack)
            let runs = [("segment", "plain"), ("segment", "gzip"), ("rudder", "gzip"), ("rudder", "plain")]
            for (library, compression) in runs {
                let result = try await Self.run(
                    python,
                    [TestStack.repositoryRoot + "/Tests/Clients/send_with_client.py", library, base, key, compression, "\(library)-\(compression)"]
                )
                #expect(result.status == 0, "\(library) \(compression): \(result.output)")
            }
            try await stack.waitForEmptySpool()
            #expect(try await stack.waitForCount(app: "clients", 20) == 20)
            let connection = try PostgresConnection(conninfo: stack.databaseConninfo)
            for (library, compression) in runs {
                let tag = "\(library)-\(compression)"
                let rows = try connection.execute(
                    """
                    SELECT event_type, event_name, user_id, anonymous_id, company_id, metadata->>'revenue', metadata->>'order_id', pathname, metadata->>'plan'
                    FROM events WHERE app_token = 'clients' AND (user_id LIKE $1 OR anonymous_id LIKE $1 OR company_id LIKE $1)
                    ORDER BY event_type, event_name, anonymous_id NULLS FIRST
                    """,
                    [tag + "-%"]
                ).rows
                #expect(
                    rows == [
                        ["identify_company", "", "\(tag)-user", nil, "\(tag)-co", nil, nil, nil, "enterprise"],
                        ["identify_user", "", "\(tag)-user", "\(tag)-anon", nil, nil, nil, nil, "pro"],
                        ["identify_user", "alias", "\(tag)-user", "\(tag)-device", nil, nil, nil, nil, nil],
                        ["page_view", "", nil, "\(tag)-anon", nil, nil, nil, "/pricing", nil],
                        ["track", "Order Completed", "\(tag)-user", nil, nil, "19.99", tag, nil, nil],
                    ],
                    "\(tag): \(rows)"
                )
            }
            let report = try await stack.cli(["report", "events", "--app", "clients", "--format", "json"])
            let rows = try JSONParser.parse(Array(report.stdout.utf8))["rows"]?.arrayValue ?? []
            #expect(rows.first { $0["event_name"] == "Order Completed" }?["events"] == 4, "\(report.stdout)")
        }
    }

    static func run(_ executable: String, _ arguments: [String]) async throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-client-\(UInt32.random(in: 0...UInt32.max)).log").path
        _ = FileManager.default.createFile(atPath: output, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: output) }
        process.standardOutput = FileHandle(forWritingAtPath: output)
        process.standardError = FileHandle(forWritingAtPath: output)
        try process.run()
        let status = await process.waitForExit()
        return (status, (try? String(contentsOfFile: output, encoding: .utf8)) ?? "")
    }
}
