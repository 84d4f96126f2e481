import CairnCore
import CairnTesting
import Foundation
import Testing

/// The S3 destination against a real local S3 server (moto), its objects read back with boto3.
@Suite struct ObjectStoreTests {
    static let python = TestStack.repositoryRoot + "/.build/python-clients/bin/python"
    static let script = TestStack.repositoryRoot + "/Tests/Clients/s3_store.py"

    /// moto's server on a free port, stopped when `body` returns.
    static func withStore(_ body: (Int) async throws -> Void) async throws {
        var lastError = ""
        for _ in 0..<5 {
            let port = Int.random(in: 20_000...40_000)
            let log = "/tmp/cairn-moto-\(getpid())-\(port).log"
            let server = try HelperProcess(python, [script, "serve", String(port)], logPath: log)
            defer {
                server.stop()
                try? FileManager.default.removeItem(atPath: log)
            }
            guard try await server.wait(upTo: .seconds(30), until: { server.log.contains("ready") }) else {
                lastError = server.log
                continue
            }
            try await body(port)
            return
        }
        throw TestStackError("moto_server did not start: \(lastError)")
    }

    static func store(_ arguments: String...) async throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [script] + arguments
        let out = "/tmp/cairn-s3-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: out) }
        _ = FileManager.default.createFile(atPath: out, contents: nil)
        process.standardOutput = FileHandle(forWritingAtPath: out)
        process.standardError = FileHandle(forWritingAtPath: out + ".err")
        defer { try? FileManager.default.removeItem(atPath: out + ".err") }
        try process.run()
        let status = await process.waitForExit()
        guard status == 0 else {
            throw TestStackError("s3_store.py \(arguments): \((try? String(contentsOfFile: out + ".err", encoding: .utf8)) ?? "")")
        }
        return (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
    }

    /// Every object in the bucket: key, lines and parts.
    static func objects(port: Int, bucket: String) async throws -> [(key: String, lines: [String], parts: Int)] {
        try await store("read", String(port), bucket).split(separator: "\n").map { line in
            let object = try JSONParser.parse(Array(line.utf8))
            return (
                object["key"]?.stringValue ?? "", (object["lines"]?.arrayValue ?? []).compactMap(\.stringValue),
                Int(object["parts"]?.intValue ?? 0)
            )
        }
    }

    static func settings(port: Int, maximumObjectBytes: Int) -> JSON {
        func destination(_ name: String, _ format: String) -> JSON {
            [
                "name": .string(name), "app": "acme", "type": "s3", "endpoint": .string("http://127.0.0.1:\(port)"), "bucket": "events",
                "prefix": .string("cairn-\(format)"), "format": .string(format), "access_key_id_env": "CAIRN_TEST_S3_KEY",
                "secret_access_key_env": "CAIRN_TEST_S3_SECRET", "max_object_age_s": 1, "max_object_bytes": .int(Int64(maximumObjectBytes)),
                "poll_interval_ms": 100, "retry": ["max_attempts": 3, "initial_backoff_ms": 50, "max_backoff_ms": 200],
            ]
        }
        return ["destinations": [destination("lake", "canonical"), destination("segment-lake", "segment")]]
    }

    /// Objects are gzip JSON lines under app, date and hour; read back, the canonical rows
    /// equal `cairn export jsonl` row for row, and the Segment messages carry one messageId per
    /// event; a SIGKILL of the export service mid-upload, twice, doubles and loses nothing.
    @Test func objectsHoldEveryEventExactlyOnceAcrossKills() async throws {
        try await Self.withStore { port in
            _ = try await Self.store("create", String(port), "events")
            try await TestStack.with(
                environment: ["CAIRN_TEST_S3_KEY": "cairn-test", "CAIRN_TEST_S3_SECRET": "cairn-test-secret"],
                stack: try TestStack.defaultStack(settings: Self.settings(port: port, maximumObjectBytes: 64 << 10), for: "export")
            ) { stack in
                #expect(try await stack.cli(["apps", "create", "acme"]).status == 0)
                let total = 20_000
                let file = stack.directory + "/load.jsonl"
                try writeGeneratedEvents(count: total, to: file, app: "acme")
                let ingested = try await stack.cli(["ingest", file, "--app", "acme"])
                #expect(ingested.status == 0, "\(ingested.stderr)")
                // Two kills while objects are being written.
                for _ in 0..<2 {
                    let deadline = ContinuousClock.now + .seconds(60)
                    while (try await Self.objects(port: port, bucket: "events")).isEmpty, ContinuousClock.now < deadline {
                        try await Task.sleep(for: .milliseconds(200))
                    }
                    let pid = try #require(try await stack.servicePID("export"))
                    #expect(kill(pid, SIGKILL) == 0)
                    // Back when a new export process answers its health check.
                    let back = ContinuousClock.now + .seconds(60)
                    while ContinuousClock.now < back {
                        if let now = try await stack.servicePID("export"), now != pid,
                            (try? await stack.call("export", "system.health"))?["status"] == "ok"
                        {
                            break
                        }
                        try await Task.sleep(for: .milliseconds(100))
                    }
                }
                #expect(try await stack.waitForCount(app: "acme", Int64(total)) == Int64(total))
                let export = stack.directory + "/stored.jsonl"
                let exported = try await stack.cli(["export", "jsonl", "--app", "acme", "--out", export])
                #expect(exported.status == 0, "\(exported.stderr)")
                let stored = try String(contentsOfFile: export, encoding: .utf8).split(separator: "\n").map(String.init)
                #expect(stored.count == total)
                var objects: [(key: String, lines: [String], parts: Int)] = []
                let deadline = ContinuousClock.now + .seconds(120)
                while ContinuousClock.now < deadline {
                    objects = try await Self.objects(port: port, bucket: "events")
                    let canonical = objects.filter { $0.key.hasPrefix("cairn-canonical/") }.reduce(0) { $0 + $1.lines.count }
                    if canonical >= total { break }
                    try await Task.sleep(for: .milliseconds(500))
                }
                let canonical = objects.filter { $0.key.hasPrefix("cairn-canonical/") }
                let segment = objects.filter { $0.key.hasPrefix("cairn-segment/") }
                // Exactly once: every stored row once, nothing else.
                let rows = canonical.flatMap(\.lines)
                #expect(rows.count == total, "\(rows.count) rows in \(canonical.count) objects")
                func id(_ line: String) -> String { (try? JSONParser.parse(Array(line.utf8)))?["internal_event_id"]?.stringValue ?? line }
                #expect(Set(rows.map(id)).count == total)
                let storedRows = Dictionary(stored.map { (id($0), $0) }, uniquingKeysWith: { first, _ in first })
                let mismatched = rows.filter { row in
                    (try? JSONParser.parse(Array(row.utf8))) != (try? JSONParser.parse(Array((storedRows[id(row)] ?? "").utf8)))
                }
                #expect(mismatched.isEmpty, "\(mismatched.prefix(2))")
                // Partitioned by app, date and hour of receipt; several objects, multipart.
                #expect(canonical.count > 3)
                let pattern = #/^cairn-canonical/app=acme/date=\d{4}-\d{2}-\d{2}/hour=\d{2}/lake-\d+-[0-9a-f]{16}\.jsonl\.gz$/#
                #expect(canonical.allSatisfy { $0.key.wholeMatch(of: pattern) != nil }, "\(canonical.prefix(3).map(\.key))")
                // Segment messages: one per event (the identity links ride along as alias messages).
                let segmentDeadline = ContinuousClock.now + .seconds(60)
                var messages = segment.flatMap(\.lines)
                while Set(messages.compactMap { (try? JSONParser.parse(Array($0.utf8)))?["messageId"]?.stringValue }).count < total,
                    ContinuousClock.now < segmentDeadline
                {
                    try await Task.sleep(for: .milliseconds(500))
                    messages = try await Self.objects(port: port, bucket: "events").filter { $0.key.hasPrefix("cairn-segment/") }.flatMap(\.lines)
                }
                let ids = messages.compactMap { (try? JSONParser.parse(Array($0.utf8)))?["messageId"]?.stringValue }
                #expect(ids.count == Set(ids).count, "a message written twice")
                #expect(Set(ids).count >= total)
                // The export service's status shows the destination caught up, and nothing is left half-uploaded.
                let status = try await stack.cli(["export", "status", "--format", "json"])
                #expect(status.stdout.contains("s3://events/cairn-canonical/"), "\(status.stdout)")
                #expect(try await Self.store("uploads", String(port), "events").trimmingCharacters(in: .whitespacesAndNewlines) == "0")
            }
        }
    }
}
