import AsyncHTTPClient
import CairnCore
import CairnTesting
import Foundation
import NIOCore
import NIOHTTP1
import Testing

/// The HTTP report API against the real stack: every report answers what `cairn report …
/// --format json` prints for the same flags, read keys guard it, and bad parameters are named.
@Suite(.serialized) struct ReportAPITests {
    struct Answer {
        var status: Int
        var body: String
        var headers: HTTPHeaders
        var json: JSON? { try? JSONParser.parse(Array(body.utf8)) }
    }

    static func get(_ url: String, key: String? = nil, headers: [(String, String)] = []) async throws -> Answer {
        var request = HTTPClientRequest(url: url)
        if let key { request.headers.add(name: "Authorization", value: "Bearer " + key) }
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
        let text = String(buffer: try await response.body.collect(upTo: 1 << 24))
        return Answer(status: Int(response.status.code), body: text, headers: response.headers)
    }

    /// `--flag value` pairs as the query the API takes: the flag without its dashes, percent-encoded.
    static func query(_ flags: [String]) -> String {
        var parts: [String] = []
        var index = 0
        while index + 1 < flags.count {
            let name = String(flags[index].dropFirst(2))
            let value = flags[index + 1].addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
            parts.append("\(name)=\(value)")
            index += 2
        }
        return parts.joined(separator: "&")
    }

    /// An app with the README's fixtures in it, and its keys.
    static func loadedApp(_ name: String, on stack: TestStack) async throws -> (write: String, read: String) {
        let created = try await stack.call("storage", "apps.create", ["name": .string(name)])
        let keys = (try #require(created["write_key"]?.stringValue), try #require(created["read_key"]?.stringValue))
        #expect(keys.1.hasPrefix("rk_"))
        for fixture in [
            "userpilot-sample", "userguiding", "userlike", "segment", "mixed", "usercom", "identity", "userpilot-interactions",
            "userpilot-with-errors",
        ] {
            let result = try await stack.cli(["ingest", "Tests/Fixtures/\(fixture).jsonl", "--app", name])
            #expect(result.status == 0 || result.status == 2, "\(fixture): \(result.stderr)")
        }
        try await stack.waitForEmptySpool()
        return keys
    }

    @Test func everyReportOverHTTPEqualsTheCLIsJSON() async throws {
        try await TestStack.with { stack in
            let keys = try await Self.loadedApp("acme", on: stack)
            let base = try await stack.consoleURL() + "/api/v1/apps/acme"
            // The README's reports, flag for flag.
            let reports: [[String]] = [
                ["events"],
                ["events", "--by", "day", "--since", "2024-05-01", "--until", "2024-05-04"],
                ["events", "--by", "hour", "--since", "2024-05-01", "--until", "2024-05-02", "--tz", "Europe/Berlin"],
                ["events", "--type", "interaction"],
                ["events", "--top", "3"],
                ["uniques", "--by", "day", "--since", "2024-05-01", "--until", "2024-05-04"],
                ["uniques", "--by", "month"],
                ["stats", "--event", "purchase", "--attr", "price"],
                ["users", "--did", "purchase", "--where", "price > 150"],
                ["users", "--trait", "plan = 'pro'"],
                ["timeline", "--user", "u-1"],
                ["timeline", "--user", "ada", "--limit", "3"],
                ["funnel", "--step", "Signup Started", "--step", "Signup Completed"],
                ["funnel", "--step", "Signup Started", "--step", "Signup Completed", "--within", "1h"],
                ["retention", "--start-event", "Signup Completed", "--return-event", "Signup Completed", "--by", "day", "--periods", "3"],
                ["sessions"],
                ["engagement", "--entity", "flow"],
                ["engagement", "--entity", "nps"],
                ["engagement", "--entity", "chat"],
                ["engagement", "--entity", "survey"],
                ["companies"],
            ]
            var nonEmpty = 0
            for arguments in reports {
                let cli = try await stack.cli(["report"] + arguments + ["--app", "acme", "--format", "json"])
                #expect(cli.status == 0, "\(arguments): \(cli.stderr)")
                let expected = try JSONParser.parse(Array(cli.stdout.utf8))
                let answer = try await Self.get("\(base)/reports/\(arguments[0])?\(Self.query(Array(arguments.dropFirst())))", key: keys.read)
                #expect(answer.status == 200, "\(arguments): \(answer.body)")
                #expect(answer.headers.first(name: "Content-Type") == "application/json")
                #expect(answer.json == expected, "\(arguments): HTTP \(answer.body) vs CLI \(cli.stdout)")
                if (expected["rows"]?.arrayValue?.count ?? 0) > 0 { nonEmpty += 1 }
            }
            // The comparison means something only when the reports found rows.
            #expect(nonEmpty >= reports.count - 2, "only \(nonEmpty) of \(reports.count) reports had rows")

            // CSV: the CLI's --format csv, byte for byte.
            let csv = try await stack.cli([
                "report", "events", "--app", "acme", "--by", "day", "--since", "2024-05-01", "--until", "2024-05-04", "--format", "csv",
            ])
            let csvAnswer = try await Self.get("\(base)/reports/events?by=day&since=2024-05-01&until=2024-05-04&format=csv", key: keys.read)
            #expect(csvAnswer.status == 200)
            #expect(csvAnswer.headers.first(name: "Content-Type") == "text/csv; charset=utf-8")
            #expect(csvAnswer.body == csv.stdout)

            // Users, companies and timelines by path.
            for (path, arguments) in [
                ("users/ada", ["users", "show", "--user", "ada"]), ("companies/acme-inc", ["companies", "show", "--company", "acme-inc"]),
            ] {
                let cli = try await stack.cli(arguments + ["--app", "acme", "--format", "json"])
                #expect(cli.status == 0, "\(arguments): \(cli.stderr)")
                let answer = try await Self.get("\(base)/\(path)", key: keys.read)
                #expect(answer.status == 200, "\(path): \(answer.body)")
                #expect(answer.json == (try JSONParser.parse(Array(cli.stdout.utf8))), "\(path)")
            }
            let timeline = try await stack.cli(["report", "timeline", "--app", "acme", "--user", "ada", "--limit", "5", "--format", "json"])
            let timelineAnswer = try await Self.get("\(base)/users/ada/timeline?limit=5", key: keys.read)
            #expect(timelineAnswer.json == (try JSONParser.parse(Array(timeline.stdout.utf8))))
            #expect((try await Self.get("\(base)/users/nobody-at-all", key: keys.read)).status == 404)
        }
    }

    @Test func readKeysGuardTheAPIAndBadParametersAreNamed() async throws {
        try await TestStack.with { stack in
            let acme = try await Self.loadedApp("acme", on: stack)
            let other = try await stack.call("storage", "apps.create", ["name": "other"])
            let otherRead = try #require(other["read_key"]?.stringValue)
            let base = try await stack.consoleURL()
            let events = base + "/api/v1/apps/acme/reports/events"

            func refusal(_ answer: Answer) -> (Int, String?, String?) {
                (answer.status, answer.json?["code"]?.stringValue, answer.json?["parameter"]?.stringValue)
            }
            #expect(refusal(try await Self.get(events)).0 == 401)
            #expect(refusal(try await Self.get(events)).1 == "missing_read_key")
            #expect(refusal(try await Self.get(events, key: "rk_not-a-key")).1 == "unknown_read_key")
            // A write key never reads, by either way of sending it.
            #expect(refusal(try await Self.get(events, key: acme.write)).0 == 401)
            let basic = "Basic " + Data((acme.write + ":").utf8).base64EncodedString()
            #expect(refusal(try await Self.get(events, headers: [("Authorization", basic)])).0 == 401)
            // Another app's read key: 403, for the app by name and by token.
            #expect(refusal(try await Self.get(events, key: otherRead)).0 == 403)
            #expect(refusal(try await Self.get(events, key: otherRead)).1 == "forbidden_app")
            #expect(try await Self.get(base + "/api/v1/apps/other/reports/events", key: otherRead).status == 200)
            // The read key by Basic auth too, as Segment's clients send keys.
            let readBasic = "Basic " + Data((acme.read + ":").utf8).base64EncodedString()
            #expect(try await Self.get(events, headers: [("Authorization", readBasic)]).status == 200)

            // A read key never writes.
            let write = try await HTTPIngestTests.post(
                try await stack.httpURL() + "/v1/track",
                json: ["userId": "u", "event": "x", "messageId": "m-read-key"],
                key: acme.read
            )
            #expect(write.status == 401)
            #expect(write.json?["code"]?.stringValue == "unknown_write_key")

            // Bad parameters: 400, naming the parameter as the request spelled it.
            let cases: [(String, String, String)] = [
                ("events?bogus=1", "unknown_parameter", "bogus"),
                ("events?top=many", "invalid_parameter", "top"),
                ("events?top=1&top=2", "invalid_parameter", "top"),
                ("events?by=year", "invalid_bucket", "by"),
                ("events?since=yesterday-ish", "invalid_time", "since"),
                ("events?tz=Mars%2FOlympus", "invalid_time_zone", "tz"),
                ("events?format=xml", "invalid_parameter", "format"),
                ("funnel?step=only-one", "missing_option", "step"),
                ("retention?start-event=a", "missing_option", "return-event"),
                ("retention?start-event=a&return-event=b&periods=999", "invalid_periods", "periods"),
                ("users?did=purchase&where=price+%3E%3E+1", "invalid_condition", "where"),
                ("stats?event=purchase", "missing_option", "attr"),
                ("engagement?entity=rocket", "invalid_entity", "entity"),
                ("events?since=%FF", "invalid_parameter", "since"),
                // NUL would reach libpq as the end of the value: "a\0b" would ask for "a".
                ("events?event=a%00b", "invalid_parameter", "event"),
                ("events?event=%00", "invalid_parameter", "event"),
                ("events?by=day&since=1900-01-01", "too_many_buckets", "by"),
                ("events?by=hour&since=0001-01-02&until=9999-01-01", "too_many_buckets", "by"),
                ("events?since=0000-01-01", "invalid_time", "since"),
                ("events?since=0001-01-01T00:00:00%2B14:00", "invalid_time", "since"),
                ("retention?start-event=nope&return-event=Signup+Completed", "unknown_event", "start-event"),
                ("stats?event=purchase&attr=nope", "unknown_attribute", "attr"),
                ("funnel?step=Signup+Started&step=", "invalid_event", "step"),
            ]
            for (path, code, parameter) in cases {
                let answer = try await Self.get(base + "/api/v1/apps/acme/reports/" + path, key: acme.read)
                #expect(answer.status == 400, "\(path): \(answer.body)")
                #expect(answer.json?["code"]?.stringValue == code, "\(path): \(answer.body)")
                if !parameter.isEmpty {
                    #expect(answer.json?["parameter"]?.stringValue == parameter, "\(path): \(answer.body)")
                    #expect(answer.json?["message"]?.stringValue?.hasPrefix(parameter) == true, "\(path): \(answer.body)")
                }
            }
            let nowhere = try await Self.get(base + "/api/v1/apps/acme/reports/nonsense", key: acme.read)
            #expect(nowhere.status == 404 && nowhere.json?["code"] == "not_found", "\(nowhere.body)")
            #expect(try await Self.get(events, key: acme.read).headers.first(name: "Cache-Control") == "no-store")

            // Rotating the read key: the old one stops reading at once, the new one reads.
            let rotated = try await stack.cli(["apps", "rotate-key", "--app", "acme", "--read"])
            #expect(rotated.status == 0, "\(rotated.stderr)")
            let newKey = try #require(rotated.stdout.split(separator: " ").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) })
            #expect(newKey.hasPrefix("rk_") && newKey != acme.read)
            #expect(try await Self.get(events, key: acme.read).status == 401)
            #expect(try await Self.get(events, key: newKey).status == 200)
            // The key is never logged, nor its hash.
            #expect(!stack.log.contains(newKey) && !stack.log.contains(acme.read))
            #expect(!stack.log.contains(WriteKey.hash(acme.read)))
        }
    }

    @Test func theOpenAPIDocumentIsServedAndMatchesTheRoutes() async throws {
        try await TestStack.with { stack in
            let acme = try await Self.loadedApp("acme", on: stack)
            let base = try await stack.consoleURL()
            let served = try await Self.get(base + "/api/v1/openapi.json")
            #expect(served.status == 200)
            let document = try #require(served.json)
            let committed = try JSONParser.parse(Array(try Data(contentsOf: URL(fileURLWithPath: TestStack.repositoryRoot + "/docs/openapi.json"))))
            let current = document == committed
            #expect(current, "docs/openapi.json is stale: run `make openapi`")
            // Every documented route answers (with its required parameters), and nothing else under the API does.
            let reports = "/api/v1/apps/{app}/reports/"
            let required: [String: String] = [
                reports + "uniques": "by=day", reports + "stats": "event=purchase&attr=price", reports + "users": "did=purchase",
                reports + "timeline": "user=ada", reports + "funnel": "step=Signup+Started&step=Signup+Completed",
                reports + "retention": "start-event=Signup+Completed&return-event=Signup+Completed", reports + "engagement": "entity=flow",
            ]
            let paths = try #require(document["paths"]?.objectValue)
            #expect(paths.count == 14)
            for (path, item) in paths {
                #expect(item["get"] != nil, "\(path)")
                let concrete = path.replacingOccurrences(of: "{app}", with: "acme").replacingOccurrences(of: "{user}", with: "ada")
                    .replacingOccurrences(of: "{company}", with: "acme-inc")
                let answer = try await Self.get(base + concrete + "?" + (required[path] ?? ""), key: acme.read)
                // The document marks exactly these parameters required.
                let marked = (item["get"]?["parameters"]?.arrayValue ?? []).filter { $0["in"] == "query" && $0["required"] == true }
                    .compactMap { $0["name"]?.stringValue }
                let given = (required[path] ?? "").split(separator: "&").compactMap { $0.split(separator: "=").first.map(String.init) }
                #expect(Set(marked) == Set(given).subtracting(path.hasSuffix("/users") ? ["did"] : []), "\(path)")
                #expect(answer.status == 200, "\(path): \(answer.body)")
                // Each documented query parameter is one the route takes: unknown ones are refused.
                for parameter in item["get"]?["parameters"]?.arrayValue ?? [] where parameter["in"]?.stringValue == "query" {
                    let name = try #require(parameter["name"]?.stringValue)
                    let probe = try await Self.get(base + concrete + "?" + name + "=1", key: acme.read)
                    #expect(probe.json?["code"]?.stringValue != "unknown_parameter", "\(path) \(name): \(probe.body)")
                }
            }
            #expect(try await Self.get(base + "/api/v1/apps/acme/nowhere", key: acme.read).status == 404)
        }
    }
}
