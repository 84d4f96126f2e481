import AsyncHTTPClient
import CairnCore
import CairnTesting
import Foundation
import NIOCore
import NIOHTTP1
import Testing

/// The web console against the real stack: in Debian's headless Chromium (every page loads
/// without a console error, each chart has one mark per row, the numbers are the API's, the
/// live tail shows an event within 2 s), and over plain HTTP as a hostile client would use it.
@Suite(.serialized) struct ConsoleTests {
    static let period = "since=2024-04-20&until=2024-05-10"

    /// Events whose names and ids try to break out of the page: escaped, they are text; if
    /// not, the strict Content-Security-Policy makes the browser log an error, which fails the test.
    static func sendHostileEvents(app: String, writeKey: String, on stack: TestStack) async throws {
        let batch: JSON = [
            "batch": [
                [
                    "type": "track", "userId": "\"><img src=x onerror=alert(1)>", "event": "<script>alert('event')</script>",
                    "properties": ["plan": "</svg><script>alert(2)</script>"], "messageId": "m-hostile-1", "timestamp": "2024-05-03T10:00:00Z",
                ],
                [
                    "type": "identify", "userId": "\"><img src=x onerror=alert(1)>", "traits": ["name": "<b onmouseover=alert(3)>x</b>"],
                    "messageId": "m-hostile-2", "timestamp": "2024-05-03T10:01:00Z",
                ],
            ]
        ]
        let answer = try await HTTPIngestTests.post(try await stack.httpURL() + "/v1/batch", json: batch, key: writeKey)
        #expect(answer.status == 200, "\(answer.body)")
        try await stack.waitForEmptySpool()
    }

    @Test func everyPageInARealBrowser() async throws {
        let python = TestStack.repositoryRoot + "/.build/python-clients/bin/python"
        guard FileManager.default.isExecutableFile(atPath: python), FileManager.default.isExecutableFile(atPath: "/usr/bin/chromium") else {
            throw TestStackError(
                "chromium or selenium is missing: `make test` installs them (scripts/ensure-browser.sh, scripts/ensure-python-clients.sh)"
            )
        }
        try await TestStack.with { stack in
            let keys = try await ReportAPITests.loadedApp("acme", on: stack)
            try await Self.sendHostileEvents(app: "acme", writeKey: keys.write, on: stack)
            let shots = TestStack.repositoryRoot + "/.build/screenshots"
            try FileManager.default.createDirectory(atPath: shots, withIntermediateDirectories: true)
            let p = Self.period
            let pages = [
                "/apps/acme/overview?\(p)", "/apps/acme/events?\(p)", "/apps/acme/events?\(p)&by=day&type=track",
                "/apps/acme/events?\(p)&event=purchase&breakdown=price", "/apps/acme/events?\(p)&breakdown=plan",
                "/apps/acme/funnel?\(p)&step=Signup+Started&step=Signup+Completed",
                "/apps/acme/retention?\(p)&start-event=Signup+Completed&return-event=Signup+Completed&by=day&periods=3",
                "/apps/acme/sessions?\(p)", "/apps/acme/engagement?\(p)&entity=flow", "/apps/acme/engagement?\(p)&entity=checklist",
                "/apps/acme/engagement?\(p)&entity=survey", "/apps/acme/engagement?\(p)&entity=survey&id=1", "/apps/acme/engagement?\(p)&entity=nps",
                "/apps/acme/engagement?\(p)&entity=experiment", "/apps/acme/engagement?\(p)&entity=chat",
                "/apps/acme/people?\(p)&did=purchase", "/apps/acme/people?\(p)&did=%3Cscript%3Ealert(%27event%27)%3C%2Fscript%3E",
                "/apps/acme/people/ada?\(p)", "/apps/acme/people/%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E?\(p)",
                "/apps/acme/companies?\(p)", "/apps/acme/companies/acme-inc?\(p)", "/apps/acme/pipeline",
            ]
            let run = try await HTTPIngestTests.run(
                python,
                [
                    TestStack.repositoryRoot + "/Tests/Browser/console_check.py", try await stack.consoleURL(), "acme", keys.read,
                    try await stack.httpURL(), keys.write, shots,
                ] + pages
            )
            #expect(run.status == 0, "\(run.output)")
            let report = try JSONParser.parse(Array(try Data(contentsOf: URL(fileURLWithPath: shots + "/report.json"))))
            #expect(report["login"]?.stringValue?.contains("/apps/acme/overview?since=") == true, "\(report["login"] ?? .null)")
            let visited = report["pages"]?.arrayValue ?? []
            #expect(visited.count == pages.count)
            var figures = 0
            for page in visited {
                let path = page["path"]?.stringValue ?? "?"
                #expect(page["errors"]?.arrayValue == [], "\(path): \(page["errors"] ?? .null)")
                #expect(page["title"]?.stringValue?.hasSuffix("acme · Cairn") == true, "\(path): \(page["title"] ?? .null)")
                for figure in page["figures"]?.arrayValue ?? [] {
                    figures += 1
                    let api = figure["api"]?.stringValue ?? "?"
                    #expect(
                        figure["marks"] == figure["api_rows"],
                        "\(path) \(api): marks \(figure["marks"] ?? .null) for \(figure["api_rows"] ?? .null) rows"
                    )
                    #expect(figure["table_rows"] == figure["api_rows"], "\(path) \(api)")
                    #expect(figure["numbers_match"] == true, "\(path) \(api): \(figure["first_difference"] ?? .null)")
                }
            }
            // Charts with rows, not empty frames: the comparison above means something.
            #expect(figures >= 18, "only \(figures) charts")
            let rowsShown = visited.flatMap { $0["figures"]?.arrayValue ?? [] }.reduce(Int64(0)) { $0 + ($1["api_rows"]?.intValue ?? 0) }
            #expect(rowsShown >= 60, "the charts showed only \(rowsShown) rows")
            #expect(report["dark_errors"]?.arrayValue == [], "\(report["dark_errors"] ?? .null)")
            let live = report["live"]
            #expect(live?["errors"]?.arrayValue == [], "\(live ?? .null)")
            let shown = try #require(live?["shown_after_s"]?.doubleValue, "the live tail never showed the event: \(live ?? .null)")
            #expect(shown < 2, "the live tail showed the event \(shown) s after its acknowledgement")
            for index in pages.indices {
                let prefix = String(format: "%02d-", index)
                let files = (try? FileManager.default.contentsOfDirectory(atPath: shots)) ?? []
                #expect(files.contains { $0.hasPrefix(prefix) && $0.hasSuffix(".png") }, "no screenshot for \(pages[index])")
            }
        }
    }

    /// One request, redirects not followed, with a client of its own.
    static func request(
        _ method: HTTPMethod,
        _ url: String,
        cookie: String? = nil,
        headers: [(String, String)] = [],
        form: [(String, String)]? = nil
    ) async throws -> ReportAPITests.Answer {
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(redirectConfiguration: .disallow))
        do {
            let answer = try await send(method, url, cookie: cookie, headers: headers, form: form, client: client)
            try await client.shutdown()
            return answer
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    static func send(
        _ method: HTTPMethod,
        _ url: String,
        cookie: String?,
        headers: [(String, String)],
        form: [(String, String)]?,
        client: HTTPClient
    ) async throws -> ReportAPITests.Answer {
        var request = HTTPClientRequest(url: url)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let cookie { request.headers.add(name: "Cookie", value: cookie) }
        if let form {
            request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
            let body = form.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")" }.joined(separator: "&")
            request.body = .bytes(ByteBuffer(string: body))
        }
        let response = try await client.execute(request, timeout: .seconds(30))
        let text = String(buffer: try await response.body.collect(upTo: 1 << 24))
        return ReportAPITests.Answer(status: Int(response.status.code), body: text, headers: response.headers)
    }

    /// The `cairn_session=…` pair of a login's Set-Cookie.
    static func session(_ answer: ReportAPITests.Answer) -> String? {
        answer.headers.first(name: "Set-Cookie")?.split(separator: ";").first.map(String.init)
    }

    @Test func sessionsCSRFAndEscapingHoldAgainstAHostileClient() async throws {
        try await TestStack.with { stack in
            let acme = try await ReportAPITests.loadedApp("acme", on: stack)
            let other = try await stack.call("storage", "apps.create", ["name": "other"])
            try await Self.sendHostileEvents(app: "acme", writeKey: acme.write, on: stack)
            let base = try await stack.consoleURL()

            // No session: to the login page, which comes back here.
            var answer = try await Self.request(.GET, base + "/apps/acme/overview?\(Self.period)")
            #expect(answer.status == 303)
            #expect(answer.headers.first(name: "Location") == "/login?next=%2Fapps%2Facme%2Foverview%3Fsince%3D2024-04-20%26until%3D2024-05-10")
            // A write key does not log in; a read key does, with a cookie scripts cannot read and other sites cannot send.
            answer = try await Self.request(.POST, base + "/login", form: [("key", acme.write), ("next", "")])
            #expect(answer.status == 401)
            #expect(answer.body.contains("write key"))
            #expect(answer.headers.first(name: "Set-Cookie") == nil)
            answer = try await Self.request(.POST, base + "/login", form: [("key", acme.read), ("next", "//evil.example/apps/acme/")])
            #expect(answer.status == 303)
            #expect(answer.headers.first(name: "Location") == "/apps/acme/overview", "an open redirect: \(answer.headers)")
            let setCookie = try #require(answer.headers.first(name: "Set-Cookie"))
            #expect(setCookie.contains("HttpOnly") && setCookie.contains("SameSite=Strict") && setCookie.contains("Path=/"))
            let cookie = try #require(Self.session(answer))
            #expect(!setCookie.contains(acme.read) && !setCookie.contains(WriteKey.hash(acme.read)))

            // A page: the whole query in its URL, a strict CSP, and client text only as text.
            answer = try await Self.request(.GET, base + "/apps/acme/overview", cookie: cookie)
            #expect(answer.status == 303)
            #expect(answer.headers.first(name: "Location")?.hasPrefix("/apps/acme/overview?since=") == true)
            answer = try await Self.request(.GET, base + "/apps/acme/events?\(Self.period)&breakdown=plan", cookie: cookie)
            #expect(answer.status == 200)
            let policy = try #require(answer.headers.first(name: "Content-Security-Policy"))
            #expect(policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'") && !policy.contains("unsafe-inline"))
            #expect(answer.headers.first(name: "X-Content-Type-Options") == "nosniff")
            #expect(answer.body.contains("&lt;/svg&gt;&lt;script&gt;alert(2)&lt;/script&gt;"), "the hostile value is missing or unescaped")
            #expect(!answer.body.contains("<script>alert"))
            answer = try await Self.request(.GET, base + "/apps/acme/events?\(Self.period)", cookie: cookie)
            #expect(answer.body.contains("&lt;script&gt;alert(&#39;event&#39;)&lt;/script&gt;"))
            #expect(!answer.body.contains("<script>alert") && !answer.body.contains("<img src=x"))

            // Another app's page with this session: refused. A forged or altered cookie: back to the login page.
            answer = try await Self.request(.GET, base + "/apps/other/overview?\(Self.period)", cookie: cookie)
            #expect(answer.status == 403)
            #expect(try await Self.request(.GET, base + "/api/v1/apps/other/reports/events", cookie: cookie).status == 403)
            let otherToken = Data("other".utf8).base64EncodedString().replacingOccurrences(of: "=", with: "")
            let parts = cookie.dropFirst("cairn_session=".count).split(separator: ".")
            let forged = "cairn_session=" + ([otherToken] + parts.dropFirst().map(String.init)).joined(separator: ".")
            answer = try await Self.request(.GET, base + "/apps/other/overview?\(Self.period)", cookie: forged)
            #expect(answer.status == 303 && answer.headers.first(name: "Location")?.hasPrefix("/login") == true)
            // The API takes the session too (the CSV links), and refuses the forged one.
            #expect(try await Self.request(.GET, base + "/api/v1/apps/acme/reports/events?format=csv", cookie: cookie).status == 200)
            #expect(try await Self.request(.GET, base + "/api/v1/apps/other/reports/events", cookie: forged).status == 401)

            // The people page's box opens a profile by id, the period kept; a malformed page query is an HTML page, not JSON.
            answer = try await Self.request(.GET, base + "/apps/acme/people?\(Self.period)&user=a%2Fb%20c", cookie: cookie)
            #expect(answer.status == 303)
            #expect(answer.headers.first(name: "Location") == "/apps/acme/people/a%2Fb%20c?since=2024-04-20&until=2024-05-10")
            answer = try await Self.request(.GET, base + "/apps/acme/overview?\(Self.period)&since=2024-01-01", cookie: cookie)
            #expect(answer.status == 400 && answer.headers.first(name: "Content-Type")?.hasPrefix("text/html") == true)

            // Replaying dead letters: a POST with the session's CSRF token and the app's write key.
            // One of them holds terminal escapes: the page shows none of its control characters.
            let escapes = stack.directory + "/escapes.jsonl"
            try Data(Array(#"{"type":"track","event":""#.utf8) + [0x1B, 0x07, 0x00] + Array(#"","userId":"u"}"#.utf8) + [0x0A])
                .write(to: URL(fileURLWithPath: escapes))
            #expect(try await stack.cli(["ingest", escapes, "--app", "acme"]).status == 2)
            let pipeline = try await Self.request(.GET, base + "/apps/acme/pipeline", cookie: cookie)
            #expect(pipeline.status == 200)
            #expect(!pipeline.body.unicodeScalars.contains { $0.value < 0x09 || $0.value == 0x1B }, "control characters on the page")
            let listedCount = try await stack.call("ingest", "ingest.deadletters.list", ["app": "acme"])["rows"]?.arrayValue?.count ?? 0
            #expect(pipeline.body.contains("The newest \(listedCount) records ingest refused"), "\(pipeline.body.prefix(3000))")
            let csrf = try #require(
                pipeline.body.components(separatedBy: "name=\"csrf\" value=\"").dropFirst().first?.split(separator: "\"").first.map(String.init)
            )
            let replay = base + "/apps/acme/deadletters/replay"
            #expect(try await Self.request(.POST, replay, cookie: cookie, form: [("write_key", acme.write)]).status == 403)
            #expect(try await Self.request(.POST, replay, cookie: cookie, form: [("csrf", "forged"), ("write_key", acme.write)]).status == 403)
            #expect(try await Self.request(.POST, replay, form: [("csrf", csrf), ("write_key", acme.write)]).status == 303)
            let otherWrite = try #require(other["write_key"]?.stringValue)
            answer = try await Self.request(.POST, replay, cookie: cookie, form: [("csrf", csrf), ("write_key", acme.read)])
            #expect(answer.status == 403)
            #expect(try await Self.request(.POST, replay, cookie: cookie, form: [("csrf", csrf), ("write_key", otherWrite)]).status == 403)
            let letters = try await stack.call("ingest", "ingest.deadletters.list", ["app": "acme"])["rows"]?.arrayValue?.count ?? 0
            #expect(letters > 0, "the fixtures left no dead letters to replay")
            answer = try await Self.request(.POST, replay, cookie: cookie, form: [("csrf", csrf), ("write_key", acme.write)])
            #expect(answer.status == 200, "\(answer.body)")
            #expect(answer.body.contains("Replayed \(letters) dead letters: 0 accepted"), "\(answer.body)")
            // GET never changes anything: the replay route takes POST only.
            #expect(try await Self.request(.GET, replay, cookie: cookie).status != 200)

            // Logging out needs the token too, and ends the cookie.
            #expect(try await Self.request(.POST, base + "/logout", cookie: cookie, form: []).status == 403)
            // A form posted from another site is refused, whatever it carries (login CSRF among others).
            answer = try await Self.request(
                .POST,
                base + "/login",
                headers: [("Sec-Fetch-Site", "cross-site")],
                form: [("key", acme.read), ("next", "")]
            )
            #expect(answer.status == 403 && answer.headers.first(name: "Set-Cookie") == nil)
            // A second session, to see that rotating the key ends it.
            let second = try #require(Self.session(try await Self.request(.POST, base + "/login", form: [("key", acme.read), ("next", "")])))
            answer = try await Self.request(.POST, base + "/logout", cookie: cookie, form: [("csrf", csrf)])
            #expect(answer.status == 303)
            #expect(answer.headers.first(name: "Set-Cookie")?.contains("Max-Age=0") == true)
            // Logging out ends the cookie itself, not only in this browser.
            answer = try await Self.request(.GET, base + "/apps/acme/overview?\(Self.period)", cookie: cookie)
            #expect(answer.status == 303 && answer.headers.first(name: "Location")?.hasPrefix("/login") == true)
            #expect(try await Self.request(.GET, base + "/api/v1/apps/acme/reports/events", cookie: cookie).status == 401)
            #expect(try await Self.request(.GET, base + "/apps/acme/overview?\(Self.period)", cookie: second).status == 200)
            // Rotating the read key ends every session it opened.
            _ = try await stack.cli(["apps", "rotate-key", "--app", "acme", "--read"])
            answer = try await Self.request(.GET, base + "/apps/acme/overview?\(Self.period)", cookie: second)
            #expect(answer.status == 303 && answer.headers.first(name: "Location")?.hasPrefix("/login") == true)
        }
    }
}
