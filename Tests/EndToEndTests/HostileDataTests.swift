import CairnCore
import CairnPostgres
import CairnTesting
import Foundation
import NIOHTTP1
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// What a careless or hostile client sends, among good events of two apps, over the CLI and
/// HTTP: every acknowledged event is stored exactly once, every refused one is a dead letter
/// naming its field and reason, and nothing waits behind a bad row.
@Suite(.serialized) struct HostileDataTests {
    /// The dead letters of `app`, as `cairn deadletters list --format json` gives them.
    static func deadLetters(_ app: String, on stack: TestStack) async throws -> [JSON] {
        let listed = try await stack.cli(["deadletters", "list", "--app", app, "--limit", "1000", "--format", "json"])
        #expect(listed.status == 0, "\(listed.stderr)")
        return try JSONParser.parse(Array(listed.stdout.utf8))["rows"]?.arrayValue ?? []
    }

    static func write(_ lines: [String], to path: String) throws {
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
    }

    /// Issue 17's four messages: two anonymous visitors and one user's two purchases, each pair in
    /// the same second, each message with its own id. They are four events; a redelivery stores none.
    @Test func fourDifferentMessagesAreFourEventsAndTheirRedeliveryNone() async throws {
        try await TestStack.with { stack in
            #expect(try await stack.cli(["apps", "create", "shop"]).status == 0)
            let file = stack.directory + "/four.jsonl"
            try Self.write(
                [
                    #"{"type":"track","event":"Viewed","anonymousId":"anon-1","timestamp":"2024-05-01T09:00:00Z","messageId":"m-1"}"#,
                    #"{"type":"track","event":"Viewed","anonymousId":"anon-2","timestamp":"2024-05-01T09:00:00Z","messageId":"m-2"}"#,
                    #"{"type":"track","event":"Purchased","userId":"u-1","properties":{"price":10},"timestamp":"2024-05-01T09:00:00Z","messageId":"m-3"}"#,
                    #"{"type":"track","event":"Purchased","userId":"u-1","properties":{"price":20},"timestamp":"2024-05-01T09:00:00Z","messageId":"m-4"}"#,
                ],
                to: file
            )
            let first = try await stack.cli(["ingest", file, "--app", "shop"])
            #expect(first.stdout.contains("4 new, 0 duplicates, 0 rejected"), "\(first.stdout) \(first.stderr)")
            let again = try await stack.cli(["ingest", file, "--app", "shop"])
            #expect(again.stdout.contains("0 new, 4 duplicates, 0 rejected"), "\(again.stdout)")
            // The same messages without ids: the whole record is the identity, so still four, and a redelivery none.
            let bare = stack.directory + "/bare.jsonl"
            try Self.write(
                try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n").map {
                    $0.replacingOccurrences(of: #","messageId":"m-\d""#, with: "", options: .regularExpression).replacingOccurrences(
                        of: "09:00:00",
                        with: "09:30:00"
                    )
                },
                to: bare
            )
            #expect(try await stack.cli(["ingest", bare, "--app", "shop"]).stdout.contains("4 new, 0 duplicates"))
            #expect(try await stack.cli(["ingest", bare, "--app", "shop"]).stdout.contains("0 new, 4 duplicates"))
            #expect(try await stack.waitForCount(app: "shop", 8) == 8)
            let connection = try PostgresConnection(conninfo: stack.databaseConninfo)
            let prices = try connection.execute(
                "SELECT metadata->>'price' FROM events WHERE app_token = 'shop' AND event_name = 'Purchased' ORDER BY 1"
            ).rows
            #expect(prices == [["10"], ["10"], ["20"], ["20"]])
        }
    }

    /// A line whose bytes are not UTF-8 is a dead letter that keeps those bytes exactly; replaying
    /// it refuses it again instead of storing an event altered by a lossy decoding.
    @Test func aLineThatIsNotUTF8IsKeptAsItWasAndNeverStoredAltered() async throws {
        try await TestStack.with { stack in
            #expect(try await stack.cli(["apps", "create", "shop"]).status == 0)
            let good = Array(#"{"type":"track","event":"Good","userId":"u1","timestamp":"2024-05-01T09:00:00Z"}"#.utf8)
            let broken =
                Array(#"{"type":"track","event":"Caf"#.utf8) + [0xE9, 0xFF] + Array(#"","userId":"u2","timestamp":"2024-05-01T09:00:00Z"}"#.utf8)
            let file = stack.directory + "/latin1.jsonl"
            try Data(good + [0x0A] + broken + [0x0A]).write(to: URL(fileURLWithPath: file))
            let ingested = try await stack.cli(["ingest", file, "--app", "shop"])
            #expect(ingested.status == 2 && ingested.stdout.contains("1 new, 0 duplicates, 1 rejected"), "\(ingested.stdout)")
            #expect(ingested.stderr.contains(":2:") && ingested.stderr.contains("invalid_utf8"), "\(ingested.stderr)")
            let letters = try await Self.deadLetters("shop", on: stack)
            #expect(letters.count == 1 && letters.first?["record"] == 2 && letters.first?["code"] == "invalid_utf8", "\(letters)")
            let original = letters.first?["raw_base64"]?.stringValue.flatMap { Data(base64Encoded: $0) }.map { Array($0) }
            #expect(original == broken, "\(letters)")
            let replayed = try await stack.cli(["deadletters", "replay", "--app", "shop"])
            #expect(replayed.status == 2 && replayed.stdout.contains("0 new, 0 duplicates; 1 still rejected"), "\(replayed.stdout)")
            #expect(replayed.stderr.contains("invalid_utf8"), "\(replayed.stderr)")
            #expect(try await Self.deadLetters("shop", on: stack).count == 1)
            #expect(try await stack.waitForCount(app: "shop", 1) == 1)
            let connection = try PostgresConnection(conninfo: stack.databaseConninfo)
            #expect(try connection.execute("SELECT event_name FROM events WHERE app_token = 'shop'").rows == [["Good"]])

            // What a crash-truncated log holds: 3 MiB of NUL bytes between good lines. Written as a
            // JSON string it is 18 MiB, over one frame: refused alone, the lines around it sent.
            let around = (0..<10).map { #"{"type":"track","event":"Around","userId":"u\#($0)","timestamp":"2024-05-01T09:00:00Z"}"# }
            let truncated = stack.directory + "/truncated.jsonl"
            let nul = [UInt8](repeating: 0, count: 3 << 20)
            try Data(
                Array((around[..<5].joined(separator: "\n") + "\n").utf8) + nul + Array(("\n" + around[5...].joined(separator: "\n") + "\n").utf8)
            )
            .write(to: URL(fileURLWithPath: truncated))
            let cut = try await stack.cli(["ingest", truncated, "--app", "shop"])
            #expect(cut.status == 2 && cut.stdout.contains("10 new, 0 duplicates, 1 rejected"), "\(cut.stdout) \(cut.stderr)")
            #expect(cut.stderr.contains(":6:") && cut.stderr.contains("written as a JSON string"), "\(cut.stderr)")
            #expect(try await stack.waitForCount(app: "shop", 11) == 11)

            // A dead letter holding terminal escapes is listed with them made harmless.
            let escapes = stack.directory + "/escapes.jsonl"
            try Data(Array(#"{"type":"track","event":""#.utf8) + [0x1B] + Array("]2;owned".utf8) + [0x07] + Array(#"","userId":"u"}"#.utf8) + [0x0A])
                .write(to: URL(fileURLWithPath: escapes))
            let escaped = try await stack.cli(["ingest", escapes, "--app", "shop"])
            #expect(escaped.status == 2 && !escaped.stderr.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x07 }, "\(escaped.stderr)")
            let table = try await stack.cli(["deadletters", "list", "--app", "shop"])
            #expect(table.status == 0 && table.stdout.contains("?]2;owned?"), "\(table.stdout)")
            #expect(!table.stdout.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x07 })
        }
    }

    @Test func hostileEventsAmongGoodOnesOfTwoApps() async throws {
        try await TestStack.with { stack in
            let goodKey = try await HTTPIngestTests.createApp("good", on: stack)
            let badKey = try await HTTPIngestTests.createApp("bad", on: stack)
            // What the edge may still miss: PostgreSQL refuses this name (a check violation, SQLSTATE 23514).
            let connection = try PostgresConnection(conninfo: stack.databaseConninfo)
            try connection.execute("ALTER TABLE events ADD CONSTRAINT hostile_test_poison CHECK (event_name NOT LIKE 'poison%')")
            let time = #""timestamp":"2024-05-01T09:00:00Z""#
            let long = String(repeating: "x", count: 5000)
            let file = stack.directory + "/hostile.jsonl"
            try Self.write(
                [
                    #"{"type":"track","event":"ok-1","userId":"u1","messageId":"b-1",\#(time)}"#,
                    #"{"type":"track","event":"nul","userId":"u1","properties":{"note":"a\u0000b"},\#(time)}"#,
                    #"{"type":"track","event":"nul-key","userId":"u1","properties":{"a\u0000":1},\#(time)}"#,
                    #"{"type":"track","event":"nul-user","userId":"u\u0000",\#(time)}"#,
                    #"{"type":"track","event":"\#(long)","userId":"u1",\#(time)}"#,
                    #"{"type":"track","event":"long-user","userId":"\#(String(repeating: "u", count: 3000))",\#(time)}"#,
                    #"{"type":"track","event":"year-0","userId":"u1","timestamp":"0000-01-01T00:00:00Z"}"#,
                    #"{"type":"track","event":"year-9999","userId":"u1","timestamp":"9999-12-31T23:59:59Z"}"#,
                    #"{"type":"track","event":"infinite","userId":"u1","properties":{"x":1e400},\#(time)}"#,
                    #"{"type":"track","event":"surrogate","userId":"u1","properties":{"x":"\ud800"},\#(time)}"#,
                    #"{"type":"track","event":"big","userId":"u1","properties":{"big":12345678901234567890},\#(time)}"#,
                    #"{"type":"track","event":"repeated","userId":"u1","properties":{"price":1,"price":2},\#(time)}"#,
                    #"{"type":"track","event":"poison-cli","userId":"u1",\#(time)}"#,
                    #"{"type":"track","event":"collides","userId":"u9","messageId":"b-1",\#(time)}"#,
                    #"{"type":"track","event":"ok-2","userId":"u1",\#(time)}"#,
                ],
                to: file
            )
            let ingested = try await stack.cli(["ingest", file, "--app", "bad"])
            #expect(ingested.status == 2)
            #expect(ingested.stdout.contains("5 new, 1 duplicates, 9 rejected"), "\(ingested.stdout) \(ingested.stderr)")
            // Each refusal names the line, the field and what was expected.
            for (line, field, code) in [
                (2, "properties.note", "forbidden_character"), (3, "properties.a?", "forbidden_character"),
                (4, "userId", "forbidden_character"), (5, "event_name", "field_too_long"), (6, "user_id", "field_too_long"),
                (8, "timestamp", "time_out_of_range"), (9, nil, "invalid_json"), (10, nil, "invalid_json"),
            ] as [(Int, String?, String)] {
                let prefix = "hostile.jsonl:\(line): \(code)"
                #expect(ingested.stderr.contains(prefix), "line \(line): \(ingested.stderr)")
                if let field { #expect(ingested.stderr.contains("\(prefix): field '\(field)'"), "line \(line): \(ingested.stderr)") }
            }
            #expect(ingested.stderr.contains("hostile.jsonl:7: "), "\(ingested.stderr)")

            // Over HTTP, a batch mixing good and bad messages: 200, the bad ones named and kept.
            let base = try await stack.httpURL()
            let batch =
                #"{"batch":[{"type":"track","event":"http-ok-1","userId":"u2",\#(time)},{"type":"track","event":"http-nul","userId":"u2","properties":{"n":"\u0000"},\#(time)},{"type":"track","event":"http-future","userId":"u2","timestamp":"2999-01-01T00:00:00Z"},{"type":"track","event":"poison-http","userId":"u2","messageId":"p-bad",\#(time)},{"type":"track","event":"http-ok-2","userId":"u2",\#(time)}]}"#
            let answer = try await HTTPIngestTests.post(base + "/v1/batch", Array(batch.utf8), key: badKey)
            #expect(answer.status == 200, "\(answer.body)")
            let body = try JSONParser.parse(Array(answer.body.utf8))
            #expect(body["rejected"] == 2, "\(answer.body)")
            #expect(
                body["errors"]?.arrayValue?.compactMap { $0["field"]?.stringValue }.sorted() == ["batch[1].properties.n", "timestamp"]
                    || body["errors"]?.arrayValue?.compactMap { $0["field"]?.stringValue }.sorted() == ["properties.n", "timestamp"],
                "\(answer.body)"
            )

            // The other app's events go through at once: nothing waits behind the refused ones.
            let goodFile = stack.directory + "/good.jsonl"
            try Self.write((0..<50).map { #"{"type":"track","event":"fine","userId":"g\#($0)",\#(time)}"# }, to: goodFile)
            #expect(try await stack.cli(["ingest", goodFile, "--app", "good"]).stdout.contains("50 new"))
            let good = #"{"batch":[{"type":"track","event":"fine-http","userId":"g",\#(time)}]}"#
            #expect(try await HTTPIngestTests.post(base + "/v1/batch", Array(good.utf8), key: goodKey).status == 200)
            #expect(try await stack.waitForCount(app: "good", 51, timeout: .seconds(15)) == 51)

            // Every acknowledged event of the bad app is stored once; the two poisoned ones are storage's dead letters.
            #expect(try await stack.waitForCount(app: "bad", 6, timeout: .seconds(15)) == 6)
            try await stack.waitForEmptySpool(timeout: .seconds(15))
            let names = try connection.execute("SELECT event_name, count(*) FROM events WHERE app_token = 'bad' GROUP BY 1 ORDER BY 1").rows
            #expect(
                names == [["big", "1"], ["http-ok-1", "1"], ["http-ok-2", "1"], ["ok-1", "1"], ["ok-2", "1"], ["repeated", "1"]],
                "\(names)"
            )
            // Integers keep every digit; a repeated key keeps its last value, as JSON.parse and jsonb do.
            #expect(
                try connection.execute("SELECT metadata->>'big' FROM events WHERE app_token = 'bad' AND event_name = 'big'").rows == [
                    ["12345678901234567890"]
                ]
            )
            #expect(
                try connection.execute("SELECT metadata->>'price' FROM events WHERE app_token = 'bad' AND event_name = 'repeated'").rows == [["2"]]
            )
            let letters = try await Self.deadLetters("bad", on: stack)
            #expect(letters.count == 13, "\(letters.map { $0["code"] ?? .null })")
            let refusedByStorage = letters.filter { $0["source"] == "storage" }
            #expect(refusedByStorage.count == 2)
            for letter in refusedByStorage {
                #expect(letter["code"] == "storage_refused")
                #expect(letter["error"]?.stringValue?.contains("23514") == true, "\(letter)")
                #expect(letter["raw"]?.stringValue?.contains("poison") == true)
            }
            #expect(try await Self.deadLetters("good", on: stack).isEmpty)
            // A refused event's ids are forgotten: the sender's corrected resend is new, not a duplicate.
            let corrected = #"{"batch":[{"type":"track","event":"fixed-http","userId":"u2","messageId":"p-bad",\#(time)}]}"#
            #expect(try await HTTPIngestTests.post(base + "/v1/batch", Array(corrected.utf8), key: badKey).status == 200)
            #expect(try await stack.waitForCount(app: "bad", 7, timeout: .seconds(15)) == 7)
            // Once what refused them is gone, storage's dead letters replay as the events they were.
            try connection.execute("ALTER TABLE events DROP CONSTRAINT hostile_test_poison")
            let replayed = try await stack.cli(["deadletters", "replay", "--app", "bad"])
            // The CLI's poisoned event is new; the HTTP one is the same event as its corrected resend (one messageId).
            #expect(replayed.stdout.contains("1 new, 1 duplicates"), "\(replayed.stdout) \(replayed.stderr)")
            #expect(try await stack.waitForCount(app: "bad", 8, timeout: .seconds(15)) == 8)
            #expect(
                try connection.execute("SELECT event_name FROM events WHERE app_token = 'bad' AND event_name LIKE 'poison%'").rows == [["poison-cli"]]
            )
            // The stack is healthy again: status exits 0.
            let status = try await stack.cli(["status"])
            #expect(status.status == 0, "\(status.stdout)")
        }
    }

    /// A backlog of valid events with long ids (1,024 bytes each), built while writes to the log
    /// are held back: every batch the forwarder sends stays inside one frame, and every event is
    /// stored and folded.
    @Test func aBacklogOfLongIdsIsNeverTooLargeToForward() async throws {
        try await TestStack.with { stack in
            let key = try await HTTPIngestTests.createApp("long", on: stack)
            let base = try await stack.httpURL()
            let paused = try stack.pauseEventWrites()
            func id(_ prefix: String, _ n: Int) -> String {
                prefix + String(n) + String(repeating: "x", count: 1024 - prefix.count - String(n).count)
            }
            for request in 0..<13 {
                let messages = (0..<150).map { index -> String in
                    let n = request * 150 + index
                    return
                        #"{"type":"identify","userId":"\#(id("u", n))","anonymousId":"\#(id("a", n))","context":{"groupId":"\#(id("c", n))"},"traits":{"n":\#(n)},"timestamp":"2024-05-01T09:00:00Z"}"#
                }
                let answer = try await HTTPIngestTests.post(
                    base + "/v1/batch",
                    Array(#"{"batch":[\#(messages.joined(separator: ","))]}"#.utf8),
                    key: key
                )
                #expect(answer.status == 200, "\(answer.body)")
            }
            try stack.resumeEventWrites(paused)
            #expect(try await stack.waitForCount(app: "long", 1950, timeout: .seconds(120)) == 1950)
            try await stack.waitForEmptySpool(timeout: .seconds(30))
            #expect(try await Self.deadLetters("long", on: stack).isEmpty)
        }
    }

    /// A number beyond PostgreSQL's numeric ("1e999999") in a registered attribute or a trait is
    /// stored, and reads as not a number: no rollup, report or type registration overflows.
    @Test func aNumberBeyondNumericBreaksNothing() async throws {
        try await TestStack.with { stack in
            #expect(try await stack.cli(["apps", "create", "nums"]).status == 0)
            #expect(try await stack.cli(["attributes", "set", "--app", "nums", "--name", "price", "--type", "number"]).status == 0)
            let file = stack.directory + "/nums.jsonl"
            try Self.write(
                [
                    #"{"type":"track","event":"Paid","userId":"u1","properties":{"price":"1e999999","qty":"9e999999"},"timestamp":"2024-05-01T09:00:00Z"}"#,
                    #"{"type":"track","event":"Paid","userId":"u2","properties":{"price":200,"qty":3},"timestamp":"2024-05-01T09:00:01Z"}"#,
                    #"{"type":"identify","userId":"u1","traits":{"plan":"9e999999"},"timestamp":"2024-05-01T09:00:02Z"}"#,
                ],
                to: file
            )
            #expect(try await stack.cli(["ingest", file, "--app", "nums"]).stdout.contains("3 new"))
            #expect(try await stack.waitForCount(app: "nums", 3) == 3)
            #expect(try await Self.deadLetters("nums", on: stack).isEmpty)
            let users = try await stack.cli(["report", "users", "--app", "nums", "--did", "Paid", "--where", "price > 150", "--format", "csv"])
            #expect(users.status == 0 && users.stdout.contains("u2") && !users.stdout.contains("u1"), "\(users.stdout) \(users.stderr)")
            let stats = try await stack.cli(["report", "stats", "--app", "nums", "--event", "Paid", "--attr", "price"])
            #expect(stats.status == 0, "\(stats.stderr)")
            let traits = try await stack.cli(["report", "users", "--app", "nums", "--trait", "plan > 1"])
            #expect(traits.status == 0, "\(traits.stderr)")
            let typed = try await stack.cli(["attributes", "set", "--app", "nums", "--name", "qty", "--type", "number"])
            #expect(typed.status == 0, "\(typed.stderr)")
        }
    }

    /// Forwarding that cannot reach storage shows: `cairn status` says degraded and why, exits 1,
    /// and `/metrics` has `cairn_ingest_degraded 1`; once it recovers, status exits 0 again.
    @Test func aStuckSpoolIsVisibleAndStatusExitsNonZero() async throws {
        let stackFile = try TestStack.defaultStack(settings: ["spool_age_limit_s": 2], for: "ingest")
        try await TestStack.with(stack: stackFile) { stack in
            #expect(try await stack.cli(["apps", "create", "acme"]).status == 0)
            #expect(try await stack.cli(["status"]).status == 0)
            let paused = try stack.pauseEventWrites()
            let file = stack.directory + "/one.jsonl"
            try Self.write([#"{"type":"track","event":"Stuck","userId":"u1","timestamp":"2024-05-01T09:00:00Z"}"#], to: file)
            #expect(try await stack.cli(["ingest", file, "--app", "acme"]).status == 0)
            try await Task.sleep(for: .seconds(3))
            let stuck = try await stack.cli(["status"])
            #expect(stuck.status == 1)
            #expect(
                stuck.stdout.contains("stack is degraded") && stuck.stdout.contains("ingest: degraded, the oldest spooled event has waited"),
                "\(stuck.stdout)"
            )
            let metrics = try await HTTPIngestTests.post(try await stack.httpURL() + "/metrics", [], method: .GET)
            #expect(metrics.body.contains(#"cairn_ingest_degraded{service="ingest"} 1.0"#), "\(metrics.body)")
            try stack.resumeEventWrites(paused)
            #expect(try await stack.waitForCount(app: "acme", 1) == 1)
            var recovered: Int32 = -1
            for _ in 0..<50 where recovered != 0 {
                recovered = try await stack.cli(["status"]).status
                if recovered != 0 { try await Task.sleep(for: .milliseconds(200)) }
            }
            #expect(recovered == 0)
        }
    }

    /// `cairn attributes set` returns once ingest applies the type: the very next event is checked against it.
    @Test func aTypeTakesEffectAtOnce() async throws {
        try await TestStack.with { stack in
            #expect(try await stack.cli(["apps", "create", "typed"]).status == 0)
            let file = stack.directory + "/price.jsonl"
            try Self.write([#"{"event":"purchase","user_id":"u1","timestamp":"2024-05-01T09:00:00Z","attributes":{"price":"abc"}}"#], to: file)
            // Untyped: stored as a string (and the app's settings are now cached in ingest).
            #expect(try await stack.cli(["ingest", file, "--app", "typed"]).stdout.contains("1 new"))
            let set = try await stack.cli(["attributes", "set", "--app", "typed", "--name", "price", "--type", "number"])
            #expect(set.status == 0, "\(set.stderr)")
            try Self.write([#"{"event":"purchase","user_id":"u2","timestamp":"2024-05-01T09:00:01Z","attributes":{"price":"abc"}}"#], to: file)
            let typed = try await stack.cli(["ingest", file, "--app", "typed"])
            #expect(typed.stdout.contains("0 new, 0 duplicates, 1 rejected"), "\(typed.stdout)")
            #expect(typed.stderr.contains("attributes.price"), "\(typed.stderr)")
        }
    }
}
