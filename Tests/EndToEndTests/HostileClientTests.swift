import AsyncHTTPClient
import CairnCore
import CairnPostgres
import CairnTesting
import Foundation
import NIOCore
import NIOHTTP1
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// What a client holding a write key (or a CLI user) can try against the services themselves.
@Suite(.serialized) struct HostileClientTests {
    /// Every service answers the supervisor's status round, and `cairn status` says all is well. A
    /// wedged service shows as unreachable once its 3 s status deadline passes; the bound on the
    /// round leaves room for a loaded, parallel test run.
    static func expectStatusAnswered(_ stack: TestStack) async throws {
        let clock = ContinuousClock()
        let started = clock.now
        let status = try await stack.call("supervisor", "supervisor.status")
        #expect(clock.now - started < .seconds(15))
        #expect(
            status["services"]?.arrayValue?.allSatisfy { $0["name"] == "postgres" || $0["status"]?["health"] == "ok" } == true,
            "\(status.serializedString().prefix(500))"
        )
        #expect(try await stack.cli(["status"]).status == 0)
    }

    /// Deep conditions are refused with a clear error before parsing recurses, reporting and
    /// export stay up, and a hostile condition stored before the bound is marked broken rather
    /// than crashing export; `triggers remove` works.
    @Test func deepConditionsAreRefusedAndAStoredOneIsMarkedBroken() async throws {
        try await TestStack.with { stack in
            #expect(try await stack.cli(["apps", "create", "shop"]).status == 0)
            let deep = String(repeating: "(", count: 4000) + "price > 1" + String(repeating: ")", count: 4000)
            let nots = String(repeating: "not ", count: 30_000) + "price > 1"
            let chain = (0..<8000).map { "p\($0) = 1" }.joined(separator: " or ")
            for condition in [deep, nots, chain] {
                let report = try await stack.cli(["report", "users", "--app", "shop", "--did", "E", "--where", condition])
                #expect(report.status != 0)
                #expect(report.stderr.contains("at position"), "\(report.stderr.prefix(300))")
                let trigger = try await stack.cli([
                    "triggers", "add", "--app", "shop", "--name", "deep", "--event", "E", "--where", condition, "--url", "http://127.0.0.1:9/x",
                ])
                #expect(trigger.status != 0)
            }
            try await Self.expectStatusAnswered(stack)

            // Stored before conditions were bounded: export marks it broken and goes on.
            let connection = try PostgresConnection(conninfo: stack.databaseConninfo)
            try connection.execute(
                """
                INSERT INTO triggers (app_token, name, event, condition, url, max_attempts, timeout_ms, after_xid)
                VALUES ('shop', 'old-deep', 'E', $1, 'http://127.0.0.1:9/x', 3, 1000, 0)
                """,
                [chain]
            )
            var state: String?
            for _ in 0..<50 where state != "disabled" {
                try await Task.sleep(for: .milliseconds(200))
                state = try connection.execute("SELECT state FROM triggers WHERE name = 'old-deep'").rows.first?[0] ?? nil
            }
            #expect(state == "disabled")
            let reason = try connection.execute("SELECT state_reason FROM triggers WHERE name = 'old-deep'").rows.first?[0] ?? nil
            #expect(reason?.contains("broken") == true, "\(reason ?? "")")
            #expect(try await stack.servicePID("export") != nil)
            #expect(try await stack.cli(["status"]).status == 0)
            let removed = try await stack.cli(["triggers", "remove", "--app", "shop", "--name", "old-deep"])
            #expect(removed.status == 0, "\(removed.stderr)")
        }
    }

    /// A hung storage does not hang HTTP: a known key is served from the cache once ingest's 1 s
    /// deadline on storage passes. A rotated key is refused at once, even while storage is away.
    /// Storage stays stopped until every answer is in, so an answer at all proves the deadline; the
    /// bound only tells it from the client's own 30 s timeout, leaving room for a loaded CI run
    /// (one answered in 6.3 s there, with the fault suite beside it).
    @Test func aHungStorageNeitherHangsHTTPNorRevivesARotatedKey() async throws {
        try await TestStack.with { stack in
            let key = try await HTTPIngestTests.createApp("web", on: stack)
            let base = try await stack.httpURL()
            let event = Array(#"{"type":"track","event":"E","userId":"u1","timestamp":"2024-05-01T09:00:00Z"}"#.utf8)
            #expect(try await HTTPIngestTests.post(base + "/v1/track", event, key: key).status == 200)
            let storage = try #require(try await stack.servicePID("storage"))
            kill(storage, SIGSTOP)
            let clock = ContinuousClock()
            for _ in 0..<3 {
                try await Task.sleep(for: .seconds(1))
                let started = clock.now
                let answer = try await HTTPIngestTests.post(base + "/v1/track", event, key: key)
                #expect(answer.status == 200, "\(answer.body)")
                #expect(clock.now - started < .seconds(20))
            }
            kill(storage, SIGCONT)

            // Rotation reaches ingest before the command returns: the old key is refused from then on.
            let rotated = try await stack.cli(["apps", "rotate-key", "--app", "web"])
            #expect(rotated.status == 0, "\(rotated.stderr)")
            kill(storage, SIGSTOP)
            var accepted = 0
            for _ in 0..<10 where try await HTTPIngestTests.post(base + "/v1/track", event, key: key).status == 200 { accepted += 1 }
            #expect(accepted == 0)
            kill(storage, SIGCONT)
            #expect(try await HTTPIngestTests.post(base + "/v1/track", event, key: key).status == 401)
        }
    }

    /// Deleting the spool while ingest runs (`make clean` in the wrong terminal): ingest notices,
    /// acknowledges nothing more into a file nobody will open again, and says so in status.
    @Test func aVanishedSpoolIsNoticedAndNothingMoreIsAcknowledged() async throws {
        try await TestStack.with { stack in
            let key = try await HTTPIngestTests.createApp("web", on: stack)
            let base = try await stack.httpURL()
            let event = Array(#"{"type":"track","event":"E","userId":"u1","timestamp":"2024-05-01T09:00:00Z"}"#.utf8)
            #expect(try await HTTPIngestTests.post(base + "/v1/track", event, key: key).status == 200)
            let spool = stack.directory + "/var/spool"
            for name in try FileManager.default.contentsOfDirectory(atPath: spool) where name.hasPrefix("ingest.sqlite") {
                try FileManager.default.removeItem(atPath: spool + "/" + name)
            }
            let refused = try await HTTPIngestTests.post(base + "/v1/track", event, key: key)
            #expect(refused.status == 503 && refused.body.contains("spool_lost"), "\(refused.body)")
            let status = try await stack.cli(["status"])
            #expect(status.status == 1)
            #expect(status.stdout.contains("was removed while ingest ran"), "\(status.stdout)")
        }
    }

    /// The partition bomb: a message for every month of 1000-1899 is refused by the app's
    /// window, and one for every month of 1970-2025 is stored in one partition per year.
    @Test func thePartitionBombMakesAPartitionPerYear() async throws {
        try await TestStack.with { stack in
            let key = try await HTTPIngestTests.createApp("bomb", on: stack)
            let base = try await stack.httpURL()
            func batch(_ years: ClosedRange<Int>) -> [UInt8] {
                let messages = years.flatMap { year in
                    (1...12).map { month in
                        #"{"type":"track","event":"M","userId":"u","messageId":"\#(year)-\#(month)","timestamp":"\#(year)-\#(month < 10 ? "0" : "")\#(month)-15T00:00:00Z"}"#
                    }
                }
                return Array(#"{"batch":[\#(messages.joined(separator: ","))]}"#.utf8)
            }
            let ancient = try await HTTPIngestTests.post(base + "/v1/batch", batch(1000...1199), key: key)
            #expect(ancient.status == 200 && ancient.body.contains("\"rejected\":2400"), "\(ancient.body.prefix(300))")
            for years in [1970...1997, 1998...2025] {
                #expect(try await HTTPIngestTests.post(base + "/v1/batch", batch(years), key: key).status == 200)
            }
            #expect(try await stack.waitForCount(app: "bomb", 672, timeout: .seconds(60)) == 672)
            let connection = try PostgresConnection(conninfo: stack.databaseConninfo)
            let partitions =
                Int(try connection.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass").rows[0][0] ?? "") ?? 0
            #expect(partitions <= 56 + 15, "\(partitions) partitions")
            let clock = ContinuousClock()
            let started = clock.now
            #expect(try await stack.cli(["users", "delete", "--app", "bomb", "--user", "u"]).status == 0)
            #expect(clock.now - started < .seconds(10))
            try await Self.expectStatusAnswered(stack)
        }
    }

    /// Ingest's HTTP listener bounds its connections: a slowloris client is cut off at the idle
    /// timeout, a body that never arrives at the body timeout, a client past its share of
    /// connections at once; and the service answers `cairn status` throughout.
    @Test func slowAndGreedyConnectionsAreBounded() async throws {
        let settings: JSON = ["max_connections_per_client": 8, "idle_timeout_s": 2, "body_timeout_s": 2, "max_connections": 64]
        try await TestStack.with(stack: try TestStack.defaultStack(settings: settings, for: "ingest")) { stack in
            let key = try await HTTPIngestTests.createApp("web", on: stack)
            let url = try await stack.httpURL()
            let address = url.dropFirst("http://".count)
            let port = try #require(Int(address.split(separator: ":").last ?? ""))
            // Slowloris: headers a byte at a time, never finished.
            let slow = try RawTCP(host: "127.0.0.1", port: port)
            try await slow.send("POST /v1/batch HTTP/1.1\r\nHost: x\r\n")
            for _ in 0..<2 {
                try await Task.sleep(for: .milliseconds(500))
                try await slow.send("X")
            }
            #expect(try await slow.closedByPeer(within: .seconds(6)).closed)
            // A Content-Length that never arrives: answered and closed at the body deadline.
            let starved = try RawTCP(host: "127.0.0.1", port: port)
            let credentials = Data("\(key):".utf8).base64EncodedString()
            try await starved.send(
                "POST /v1/batch HTTP/1.1\r\nHost: x\r\nAuthorization: Basic \(credentials)\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n{}"
            )
            let answer = try await starved.closedByPeer(within: .seconds(8))
            #expect(answer.closed, "\(answer.received)")
            // One client past its share: the ninth and later connections are closed at once.
            let held = try (0..<8).map { _ in try RawTCP(host: "127.0.0.1", port: port, source: "127.0.0.9") }
            let extra = try RawTCP(host: "127.0.0.1", port: port, source: "127.0.0.9")
            #expect(try await extra.closedByPeer(within: .seconds(3)).closed)
            // Many clients' idle connections: status still answers at once, and other clients are served.
            let crowd = try (10..<40).flatMap { client in
                try (0..<2).map { _ in try RawTCP(host: "127.0.0.1", port: port, source: "127.0.1.\(client)") }
            }
            try await Self.expectStatusAnswered(stack)
            let event = Array(#"{"type":"track","event":"E","userId":"u1","timestamp":"2024-05-01T09:00:00Z"}"#.utf8)
            #expect(try await HTTPIngestTests.post(url + "/v1/track", event, key: key).status == 200)
            withExtendedLifetime((held, crowd)) {}
        }
    }

    /// With a metrics token, `/metrics` answers only the scraper that sends it.
    @Test func metricsNeedTheTokenWhenOneIsSet() async throws {
        try await TestStack.with(stack: try TestStack.defaultStack(settings: ["metrics_token": "s3cret"], for: "ingest")) { stack in
            let url = try await stack.httpURL() + "/metrics"
            let anonymous = try await HTTPIngestTests.post(url, [], method: .GET)
            #expect(
                anonymous.status == 401 && !anonymous.body.contains("cairn_spool_depth"),
                "\(url): \(anonymous.status) \(anonymous.headers) \(anonymous.body.prefix(300))"
            )
            var request = HTTPClientRequest(url: url)
            request.headers.add(name: "Authorization", value: "Bearer s3cret")
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
            #expect(response.status.code == 200)
            #expect(String(buffer: try await response.body.collect(upTo: 1 << 20)).contains("cairn_spool_depth"))
        }
    }
}
