import CairnCore
import CairnPostgres
import CairnTesting
import CairnWire
import Foundation
import NIOHTTP1
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Security and supervision checks against the real stack: secrets stay out of logs and
/// status, an unsafe socket directory is refused, and a crash loop is visible and explained.
@Suite(.serialized) struct HardeningTests {
    /// Write keys travel in Basic auth, in the body and in the query; none may reach a log
    /// line, `cairn status`, `cairn apps list` or `/metrics`. The database holds only hashes.
    @Test func writeKeysNeverReachLogsOrStatus() async throws {
        try await TestStack.with { stack in
            let created = try await stack.cli(["apps", "create", "secretive"])
            let key = try #require(
                created.stdout.split(separator: "\n").first { $0.hasPrefix("write key:") }?.split(separator: " ").last.map(String.init)
            )
            #expect(key.count >= 24)
            let url = try await stack.httpURL()
            let message: JSON = ["type": "track", "event": "Signed In", "userId": "u1", "messageId": "s-1"]
            #expect(try await HTTPIngestTests.post(url + "/v1/track", json: message, key: key).status == 200)
            let inBody: JSON = ["type": "track", "event": "Signed In", "userId": "u1", "messageId": "s-2", "writeKey": .string(key)]
            #expect(try await HTTPIngestTests.post(url + "/v1/track", json: inBody).status == 200)
            #expect(
                try await HTTPIngestTests.post(
                    url + "/v1/track?writeKey=\(key)",
                    json: ["type": "track", "event": "x", "userId": "u1", "messageId": "s-3"]
                ).status == 200
            )
            // A wrong key is refused without being echoed either.
            let wrong = "wrong" + String(key.dropFirst(5))
            let refused = try await HTTPIngestTests.post(url + "/v1/track", json: message, key: wrong)
            #expect(refused.status == 401 && !refused.body.contains(wrong))
            let rotated = try await stack.cli(["apps", "rotate-key", "--app", "secretive"])
            let newKey = try #require(rotated.stdout.split(separator: " ").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) })
            _ = try await stack.waitForCount(app: "secretive", 3)

            let status = try await stack.cli(["status", "--format", "json"]).stdout
            let list = try await stack.cli(["apps", "list", "--format", "json"]).stdout
            let metrics = try await HTTPIngestTests.post(url + "/metrics", [], method: .GET).body
            for secret in [key, wrong, newKey] where secret.count >= 24 {
                #expect(!stack.log.contains(secret), "a write key reached the log")
                #expect(!status.contains(secret) && !list.contains(secret) && !metrics.contains(secret))
            }
            let connection = try PostgresConnection(conninfo: stack.databaseConninfo)
            let stored = try connection.execute("SELECT write_key_hash FROM apps WHERE name = 'secretive'").rows.first?[0] ?? nil
            #expect(stored != nil && stored != newKey && stored?.count == 64, "only a SHA-256 hash is stored")
        }
    }

    /// A socket directory others can write to stops the stack before anything listens there.
    @Test func aWritableSocketDirectoryIsRefused() async throws {
        let stack = try await TestStack(
            waitUntilRunning: false,
            prepare: { data in
                try FileManager.default.createDirectory(atPath: data + "/run", withIntermediateDirectories: true)
                chmod(data + "/run", 0o777)
            }
        )
        try await stack.waitForSupervisorExit(within: .seconds(30))
        #expect(!stack.supervisor.isRunning)
        #expect(stack.supervisor.terminationStatus == 78, "EX_CONFIG: restarting cannot help")
        #expect(stack.log.contains("group- or world-writable"), "\(stack.log.suffix(1500))")
        #expect(!FileManager.default.fileExists(atPath: stack.runDirectory + "/supervisor.sock"))
        try await stack.stop()
    }

    /// A service that keeps dying is restarted with growing delays, `cairn status` calls it
    /// flapping, and the log says how each run ended.
    @Test func aCrashLoopIsBackedOffReportedAndExplained() async throws {
        try await TestStack.with { stack in
            for _ in 0..<3 {
                let pid = try #require(try await stack.servicePID("reporting"))
                kill(pid, SIGKILL)
                // Wait for the next run, so that each kill ends one.
                let deadline = ContinuousClock.now + .seconds(30)
                while ContinuousClock.now < deadline, (try? await stack.servicePID("reporting")).flatMap({ $0 }).map({ $0 == pid }) ?? true {
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
            let table = try await stack.cli(["status"]).stdout
            let row = try #require(table.split(separator: "\n").first { $0.hasPrefix("reporting") })
            #expect(row.contains("flapping"), "\(table)")
            let status = try await stack.call("supervisor", "supervisor.status")
            let reporting = try #require(status["services"]?.arrayValue?.first { $0["name"] == "reporting" })
            #expect(reporting["state"] == "flapping" && reporting["restarts"] == .int(3))
            #expect(reporting["last_exit"]?.stringValue == "signal 9 (Killed)")
            let restarts = stack.log.split(separator: "\n").filter { $0.contains("service=reporting") && $0.contains("restarting") }
            #expect(restarts.count == 3 && restarts.allSatisfy { $0.contains("exit=signal 9 (Killed)") }, "\(restarts)")
            // 250 ms, 500 ms, 1 s: each wait doubles.
            let delays = restarts.compactMap { line in line.split(separator: " ").first { $0.hasPrefix("restart.in=") } }
            #expect(delays == ["restart.in=0.25", "restart.in=0.5", "restart.in=1.0"], "\(delays)")
        }
    }

    /// SQL in every string a user controls (app names, attribute names, event names, attribute
    /// and trait keys and values, user ids, condition values) is stored or compared as text,
    /// never run: the tables survive, and each string comes back verbatim.
    @Test func sqlInEveryUserStringIsInert() async throws {
        let payloads = [
            "x'; DROP TABLE events; --", "\"; DELETE FROM users; --", "') OR ('1'='1", "$1; SELECT pg_sleep(5); --",
            "Robert'); DROP TABLE apps;--", "%' OR 1=1 --", "\\'; TRUNCATE app_attributes; --",
        ]
        try await TestStack.with { stack in
            for payload in payloads {
                let refused = try await stack.cli(["apps", "create", payload])
                #expect(refused.status != 0 && refused.stderr.contains("field 'app'"), "app name \(payload): \(refused.stderr)")
                #expect(
                    try await stack.cli(["attributes", "set", "--app", "inj", "--name", payload, "--type", "number"]).status != 0,
                    "no app yet: refused by lookup, not by SQL"
                )
            }
            #expect(try await stack.cli(["apps", "create", "inj"]).status == 0)
            for payload in payloads {
                #expect(try await stack.cli(["attributes", "set", "--app", "inj", "--name", payload, "--type", "number"]).status == 0)
            }
            var lines: [String] = []
            for (index, payload) in payloads.enumerated() {
                let time = "2024-05-0\(index + 1)T10:00:00.000000Z"
                lines.append(
                    JSON.object([
                        "event_type": "identify_user", "event_name": "", "user_id": .string(payload), "inserted_at": .string(time),
                        "metadata": .object([payload: .string(payload), "plan": .string(payload)]),
                    ]).serializedString()
                )
                lines.append(
                    JSON.object([
                        "event_type": "track", "event_name": .string(payload), "user_id": .string(payload), "inserted_at": .string(time),
                        "metadata": .object([payload: .int(Int64(100 + index)), "label": .string(payload)]),
                    ]).serializedString()
                )
            }
            let file = stack.directory + "/injection.jsonl"
            try (lines.joined(separator: "\n") + "\n").write(toFile: file, atomically: true, encoding: .utf8)
            let ingested = try await stack.cli(["ingest", file, "--app", "inj"])
            #expect(ingested.status == 0, "\(ingested.stderr)")
            #expect(try await stack.waitForCount(app: "inj", Int64(lines.count)) == Int64(lines.count))

            func report(_ arguments: [String]) async throws -> [JSON] {
                let answer = try await stack.cli(["report"] + arguments + ["--app", "inj", "--format", "json"])
                #expect(answer.status == 0, "\(arguments): \(answer.stderr)")
                return (try? JSONParser.parse(Array(answer.stdout.utf8)))?["rows"]?.arrayValue ?? []
            }
            let names = try await report(["events", "--type", "track"]).compactMap { $0["event_name"]?.stringValue }
            #expect(Set(names) == Set(payloads))
            for (index, payload) in payloads.enumerated() {
                let quoted = "'" + payload.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "''") + "'"
                #expect(try await report(["events", "--event", payload]).count == 1)
                let did = try await report(["users", "--did", payload]).compactMap { $0["user"]?.stringValue }
                #expect(did == [payload])
                let byTrait = try await report(["users", "--did", payload, "--trait", "plan = \(quoted)"]).compactMap { $0["user"]?.stringValue }
                #expect(byTrait == [payload], "trait condition with \(quoted)")
                let byAttribute = try await report(["users", "--did", payload, "--where", "label = \(quoted)"]).compactMap { $0["user"]?.stringValue }
                #expect(byAttribute == [payload], "attribute condition with \(quoted)")
                let stats = try await report(["stats", "--event", payload, "--attr", payload])
                #expect(stats.first?["count"] == .int(1) && stats.first?["max"]?.doubleValue == Double(100 + index), "\(stats)")
            }
            #expect(try await report(["funnel", "--step", payloads[0], "--step", payloads[1]]).count == 2)

            let connection = try PostgresConnection(conninfo: stack.databaseConninfo)
            #expect(try connection.execute("SELECT count(*) FROM events WHERE app_token = 'inj'").rows.first?[0] == "\(lines.count)")
            #expect(try connection.execute("SELECT count(*) FROM users WHERE app_token = 'inj'").rows.first?[0] == "\(payloads.count)")
            let attributes = try connection.execute("SELECT name FROM app_attributes WHERE app_token = 'inj'").rows.compactMap { $0[0] }
            #expect(Set(attributes) == Set(payloads))
            let traits = try connection.execute("SELECT user_id, traits->>'plan' FROM users WHERE app_token = 'inj'").rows
            #expect(traits.allSatisfy { $0[0] == $0[1] }, "traits stored verbatim")
            #expect(try connection.execute("SELECT count(*) FROM apps").rows.first?[0] == "1")
        }
    }

    /// Seeded fuzzing of the HTTP routes (see ``Fuzzer``): whatever the body, every route
    /// answers a status it documents with a JSON body, and ingest never falls over.
    @Test func everyHTTPRouteAnswersAnyBodyWithADocumentedStatus() async throws {
        try await TestStack.with { stack in
            let key = try await HTTPIngestTests.createApp("fuzzed", on: stack)
            let url = try await stack.httpURL()
            let before = try await stack.servicePID("ingest")
            let routes = [
                "/v1/batch", "/v1/import", "/v1/track", "/v1/i", "/v1/g", "/v1/p", "/v1/s", "/v1/alias", "/userguiding", "/userlike", "/userpilot",
                "/usercom",
            ]
            var fuzzer = Fuzzer(target: "http")
            var statuses: [Int: Int] = [:]
            var round = 0
            try await fuzzer.run { bytes in
                round += 1
                let route = routes[round % routes.count]
                let answer = try await HTTPIngestTests.post(url + route, bytes, key: round % 7 == 0 ? nil : key, gzip: round % 5 == 0)
                statuses[answer.status, default: 0] += 1
                guard [200, 400, 401, 413, 415, 429].contains(answer.status) else {
                    Issue.record("\(route) answered \(answer.status): \(answer.body.prefix(300))")
                    return
                }
                let body = answer.json
                if body?["success"] == nil && body?["code"]?.stringValue == nil {
                    Issue.record("\(route) answered \(answer.status) without a JSON success or code: \(answer.body.prefix(300))")
                }
            }
            print("fuzz http: statuses \(statuses.sorted { $0.key < $1.key })")
            #expect(statuses[200, default: 0] > 0 && statuses[400, default: 0] > 0, "the fuzzer reached both outcomes")
            #expect(try await stack.servicePID("ingest") == before, "ingest never restarted")
            #expect(try await stack.call("ingest", "system.health")["status"] == "ok")
        }
    }
}
