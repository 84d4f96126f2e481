import CairnCore
import CairnPostgres
import CairnTesting
import Foundation
import Testing

/// Several ingest instances in one stack (README, "Scale"): each with its own socket, spool
/// and HTTP port, all forwarding to the one identity service.
@Suite(.serialized) struct ScaleTests {
    /// `compose/default.json` plus a second ingest instance.
    static func twoIngestStack() throws -> JSON {
        try TestStack.defaultStack { services in
            services.append(["name": "ingest-2", "executable": "cairn-ingest", "depends_on": ["storage"], "restart": "always"])
        }
    }

    @Test func twoIngestInstancesShareOneStorageAndLoseNothing() async throws {
        try await TestStack.with(stack: try Self.twoIngestStack()) { stack in
            let key = try await HTTPIngestTests.createApp("acme", on: stack)
            // The same users through both instances at once: the events of user-N alternate
            // between the two files, so both forwarders write the same persons' sessions.
            let all = stack.directory + "/all.jsonl"
            try writeGeneratedEvents(count: 4000, to: all, app: "acme")
            let lines = try String(contentsOfFile: all, encoding: .utf8).split(separator: "\n")
            let even = stack.directory + "/even.jsonl"
            let odd = stack.directory + "/odd.jsonl"
            try lines.enumerated().filter { $0.offset % 2 == 0 }.map { $0.element + "\n" }.joined().write(
                toFile: even,
                atomically: true,
                encoding: .utf8
            )
            try lines.enumerated().filter { $0.offset % 2 == 1 }.map { $0.element + "\n" }.joined().write(
                toFile: odd,
                atomically: true,
                encoding: .utf8
            )
            async let first = stack.cli(["ingest", even, "--app", "acme", "--batch-size", "250"])
            async let second = stack.cli(["ingest", odd, "--app", "acme", "--batch-size", "250", "--ingest", "ingest-2"])
            let (a, b) = try await (first, second)
            #expect(a.status == 0 && a.stdout.contains("2000 new"), "\(a.stdout) \(a.stderr)")
            #expect(b.status == 0 && b.stdout.contains("2000 new"), "\(b.stdout) \(b.stderr)")

            // Each instance binds its own HTTP port and keeps its own spool.
            let firstStatus = try await stack.call("ingest", "system.status")
            let secondStatus = try await stack.call("ingest-2", "system.status")
            let firstAddress = try #require(firstStatus["http_address"]?.stringValue)
            let secondAddress = try #require(secondStatus["http_address"]?.stringValue)
            #expect(firstAddress != secondAddress)
            #expect(FileManager.default.fileExists(atPath: stack.directory + "/var/spool/ingest.sqlite"))
            #expect(FileManager.default.fileExists(atPath: stack.directory + "/var/spool/ingest-2.sqlite"))
            let batch: JSON = [
                "batch": [["type": "track", "userId": "user-1", "event": "Via HTTP", "messageId": "m-http-2", "timestamp": "2024-05-01T00:30:00Z"]]
            ]
            let answer = try await HTTPIngestTests.post("http://\(secondAddress)/v1/batch", json: batch, key: key)
            #expect(answer.status == 200, "\(answer.body)")

            #expect(try await stack.waitForCount(app: "acme", 4001) == 4001)
            // Every person's sessions are those of their whole history, though its events came
            // through two instances: user-N's events are 997 s apart, so each has one session.
            let connection = try PostgresConnection(conninfo: stack.databaseConninfo)
            let sessions = try connection.execute(
                """
                SELECT count(*), count(DISTINCT person), sum(events) FROM user_sessions WHERE app_token = (SELECT token FROM apps WHERE name = 'acme')
                """
            ).rows
            #expect(sessions == [["997", "997", "4001"]], "\(sessions)")

            // `cairn status` shows both; dead letters are listed and replayed across both.
            let status = try await stack.cli(["status"])
            #expect(status.stdout.contains("ingest-2"))
            let bad = stack.directory + "/bad.jsonl"
            try #"{"event_type":"track","user_id":"u9","inserted_at":"2024-05-02T00:00:00Z"}"#.write(toFile: bad, atomically: true, encoding: .utf8)
            #expect(try await stack.cli(["ingest", bad, "--app", "acme"]).status == 2)
            #expect(try await stack.cli(["ingest", bad, "--app", "acme", "--ingest", "ingest-2"]).status == 2)
            let listed = try await stack.cli(["deadletters", "list", "--format", "json"])
            let rows = try JSONParser.parse(listed.stdout)["rows"]?.arrayValue ?? []
            #expect(Set(rows.compactMap { $0["ingest"]?.stringValue }) == ["ingest", "ingest-2"], "\(listed.stdout)")
            let ambiguous = try await stack.cli(["deadletters", "replay", "--id", "1"])
            #expect(ambiguous.status == 1 && ambiguous.stderr.contains("--ingest"), "\(ambiguous.stderr)")
            let replayed = try await stack.cli(["deadletters", "replay"])
            #expect(replayed.stdout.contains("replayed 2 dead letters"), "\(replayed.stdout)")

            // An erased user's later events are dropped by every instance, not just the first.
            let deleted = try await stack.cli(["users", "delete", "--app", "acme", "--user", "user-5"])
            #expect(deleted.status == 0, "\(deleted.stderr)")
            let later = stack.directory + "/later.jsonl"
            try #"{"event_type":"track","event_name":"After","user_id":"user-5","inserted_at":"2024-06-01T00:00:00Z"}"#.write(
                toFile: later,
                atomically: true,
                encoding: .utf8
            )
            let dropped = try await stack.cli(["ingest", later, "--app", "acme", "--ingest", "ingest-2"])
            #expect(dropped.stdout.contains("1 suppressed") || dropped.stdout.contains("suppressed 1"), "\(dropped.stdout)")
        }
    }
}
