import CairnCore
import CairnPostgres
import CairnTesting
import Foundation
import NIOHTTP1
import Testing

/// `/cairn.js` in Debian's headless Chromium: a page on another origin loads it from ingest,
/// calls `userengage` (User.com) and replays a Userlike callback sequence; every event is
/// stored with its registered types, the page never sees an exception, and an event queued
/// just before its tab closes still arrives (by the pagehide beacon).
@Suite(.serialized) struct BrowserScriptTests {
    @Test func aPageSendsUserComAndUserlikeEventsThroughTheScript() async throws {
        let python = TestStack.repositoryRoot + "/.build/python-clients/bin/python"
        guard FileManager.default.isExecutableFile(atPath: python), FileManager.default.isExecutableFile(atPath: "/usr/bin/chromium") else {
            throw TestStackError(
                "chromium or selenium is missing: `make test` installs them (scripts/ensure-browser.sh, scripts/ensure-python-clients.sh)"
            )
        }
        try await TestStack.with { stack in
            let key = try await HTTPIngestTests.createApp("shop", on: stack)
            for (name, type) in [("price", "number"), ("express", "boolean")] {
                #expect(try await stack.cli(["attributes", "set", "--app", "shop", "--name", name, "--type", type]).status == 0)
            }
            let run = try await HTTPIngestTests.run(
                python,
                [TestStack.repositoryRoot + "/Tests/Browser/browser_script_check.py", try await stack.httpURL(), key, "ada"]
            )
            #expect(run.status == 0, "\(run.output)")
            let report = try JSONParser.parse(Array(run.output.split(separator: "\n").last.map(String.init)?.utf8 ?? "".utf8))
            #expect(report["loaded"] == true, "\(report)")
            #expect(report["thrown"]?.arrayValue == [], "calls threw into the page: \(report["thrown"] ?? .null)")
            #expect(report["page_errors"]?.arrayValue == [], "\(report["page_errors"] ?? .null)")
            #expect(report["closing_errors"]?.arrayValue == [], "\(report["closing_errors"] ?? .null)")
            #expect(report["console"]?.arrayValue == [], "\(report["console"] ?? .null)")
            // The page's own callback still runs, once per event, after Cairn's.
            #expect(
                report["page_userlike_calls"] == ["button_displayed", "chat_requested", "chat_started", "rating_submit", .null],
                "\(report["page_userlike_calls"] ?? .null)"
            )
            // The hostile calls are refused in the page with a warning, not sent.
            let warnings = (report["warnings"]?.arrayValue ?? []).compactMap(\.stringValue).joined(separator: "\n")
            #expect(warnings.contains("needs an event name"), "\(warnings)")
            #expect(warnings.contains("cannot be sent as JSON"), "\(warnings)")
            #expect(warnings.contains("over 32 KB"), "\(warnings)")

            // User.com: each of three tabs' stub call, 6 calls in the first, 151 in the closing one; 4 Userlike.
            _ = try await stack.waitForCount(app: "shop", 3 + 6 + 151 + 4, timeout: .seconds(60))
            try await stack.waitForEmptySpool()
            let connection = try PostgresConnection(conninfo: stack.databaseConninfo)
            let rows = try connection.execute(
                """
                SELECT e.origin, e.event_name, COALESCE(e.user_id, ''), COALESCE(e.anonymous_id, ''), COALESCE(e.session, ''), e.metadata::text
                FROM events e JOIN apps a ON a.token = e.app_token WHERE a.name = 'shop' ORDER BY e.origin, e.event_name
                """
            ).rows
            let stored = rows.map { row in (row.map { $0 ?? "" }) }
            let byName = Dictionary(stored.map { ($0[1], $0) }, uniquingKeysWith: { first, _ in first })
            #expect(stored.count == 164, "\(stored.map { $0[0] + " " + $0[1] })")
            // Every one of the closing tab's 150, each once.
            let bulk = try stored.filter { $0[1] == "bulk" }.compactMap { try JSONParser.parse(Array($0[5].utf8))["n"]?.stringValue }
            #expect(bulk.count == 150 && Set(bulk).count == 150, "\(bulk.count) bulk events, \(Set(bulk).count) distinct")
            #expect(report["reopened_errors"]?.arrayValue == [], "\(report["reopened_errors"] ?? .null)")
            let steps = try stored.filter { $0[1] == "step" }.compactMap { try JSONParser.parse(Array($0[5].utf8))["step"]?.stringValue }
            #expect(steps.sorted() == ["1", "2"], "\(steps)")
            #expect(stored.contains { $0[1] == "cart_viewed" && $0[5].contains("\"sku\"") })
            #expect(Set(stored.filter { $0[0] == "usercom" }.map { $0[2] }) == ["ada"])
            func metadata(_ name: String) throws -> JSON {
                try JSONParser.parse(Array((byName[name]?[5] ?? "null").utf8))
            }
            // Registered: number and boolean, coerced from the page's strings; unregistered: strings.
            let purchase = try metadata("purchase")
            #expect(purchase["price"] == .double(39.5), "\(purchase)")
            #expect(purchase["express"] == true, "\(purchase)")
            #expect(purchase["sku"] == "7" && purchase["size"] == "39" && purchase["color"] == "teal", "\(purchase)")
            let created = try metadata("app_created")
            #expect(created["price"]?.doubleValue == 39 && created["sku"] == "7", "\(created)")
            let opened = try stored.filter { $0[1] == "page_opened" }.map { try JSONParser.parse(Array($0[5].utf8))["page"] }
            #expect(Set(opened.compactMap { $0?.stringValue }) == ["main", "closing", "reopened"], "\(opened)")
            #expect(byName["no_attributes"] != nil)
            // Queued one second before its batch was due, then the tab closed: the beacon carried it.
            let last = try metadata("last_before_close")
            #expect(last["price"]?.doubleValue == 12 && last["sku"] == "last", "\(last)")
            for name in ["button_displayed", "chat_requested", "chat_started", "rating_submit"] {
                #expect(byName[name]?[0] == "userlike" && byName[name]?[3] == "visitor-1", "\(name): \(byName[name] ?? [])")
                #expect(try metadata(name)["widget_id"] == 42, "\(name)")
            }
            #expect(byName["chat_started"]?[4] == "s-1")
            #expect(try metadata("chat_started")["operator_id"] == 7)
            // `userlikeTrackingEvent()` with nothing sent a record without a name: a dead letter, named.
            let letters = try await stack.call("ingest", "ingest.deadletters.list", ["app": "shop"])
            let kept = letters["rows"]?.arrayValue ?? []
            #expect(kept.count == 1 && kept.first?["field"] == "event_name", "\(letters.serializedString())")
        }
    }

    /// The script as served: cacheable, revalidated by its ETag, gzipped when asked, and
    /// refused for methods other than GET and HEAD.
    @Test func theScriptIsServedCacheably() async throws {
        try await TestStack.with { stack in
            let base = try await stack.httpURL()
            var answer = try await ConsoleTests.request(.GET, base + "/cairn.js")
            #expect(answer.status == 200)
            #expect(answer.headers.first(name: "Content-Type") == "text/javascript; charset=utf-8")
            #expect(answer.headers.first(name: "Cache-Control") == "public, max-age=3600")
            #expect(answer.body.contains("userlikeTrackingEvent") && answer.body.contains("sendBeacon"))
            #expect(answer.body.utf8.count < 14_000, "\(answer.body.utf8.count) bytes")
            let etag = try #require(answer.headers.first(name: "ETag"))
            answer = try await ConsoleTests.request(.GET, base + "/cairn.js", headers: [("If-None-Match", etag)])
            #expect(answer.status == 304 && answer.body.isEmpty)
            answer = try await ConsoleTests.request(.GET, base + "/cairn.js", headers: [("Accept-Encoding", "gzip")])
            #expect(answer.status == 200 && answer.headers.first(name: "Content-Encoding") == "gzip")
            // A few kilobytes on the wire, with a validator of its own.
            #expect((Int(answer.headers.first(name: "Content-Length") ?? "") ?? .max) < 5_000, "\(answer.headers)")
            let gzipTag = try #require(answer.headers.first(name: "ETag"))
            #expect(gzipTag != etag)
            answer = try await ConsoleTests.request(
                .GET,
                base + "/cairn.js",
                headers: [("Accept-Encoding", "gzip"), ("If-None-Match", "W/" + gzipTag)]
            )
            #expect(answer.status == 304)
            answer = try await ConsoleTests.request(.GET, base + "/cairn.js", headers: [("Accept-Encoding", "gzip;q=0, identity")])
            #expect(answer.status == 200 && answer.headers.first(name: "Content-Encoding") == nil)
            // Behind a path prefix, as a proxy that keeps it would pass it.
            answer = try await ConsoleTests.request(.GET, base + "/collect/cairn.js")
            #expect(answer.status == 200)
            answer = try await ConsoleTests.request(.POST, base + "/cairn.js")
            #expect(answer.status == 405 && answer.headers.first(name: "Allow") == "GET")
        }
    }
}
