import CairnCore
import CairnMethods
import CairnReporting
import Crypto
import Foundation
import Testing

@testable import CairnConsole

/// The console's parts that need no server: query decoding, parameter mapping, escaping, charts
/// and signed sessions.
@Suite struct ConsolePartsTests {
    @Test func queriesDecodeAsFormsDoAndRefuseWhatNoValueCanHold() throws {
        let query = try QueryParameters(query: "step=Signup+Started&step=a%2Bb&where=price%20%3E%20150&empty=&flag")
        #expect(query.pairs.map(\.name) == ["step", "step", "where", "empty", "flag"])
        #expect(query.pairs.map(\.value) == ["Signup Started", "a+b", "price > 150", "", ""])
        #expect(try QueryParameters(query: "caf%C3%A9=%E2%9C%93").pairs.first! == ("café", "✓"))
        for bad in ["event=a%00b", "event=%FF", "event=%G1", "event=%4", "%00=x"] {
            #expect(throws: APIRefusal.self, "\(bad)") { try QueryParameters(query: bad) }
        }
        do {
            _ = try QueryParameters(query: "event=a%00b")
        } catch {
            #expect(error.parameter == "event")
            #expect(error.code == .invalidParameter)
        }
        #expect(throws: APIRefusal.self) { try QueryParameters(query: "format=json&format=csv").single("format") }
    }

    @Test func reportParametersAreTheCLIsFlagsTyped() throws {
        let funnel = ReportQuery(try #require(ReportCatalog.entry(named: "funnel")))
        #expect(funnel.parameters.map(\.name) == ["since", "until", "tz", "timeout-s", "step", "within", "by-trait"])
        #expect(funnel.parameters.first { $0.name == "step" }?.required == true)
        let params = try funnel.params(
            app: "acme",
            query: QueryParameters(query: "step=A&steps=B&by_trait=plan&timeout-s=5")
        )
        #expect(params == ["app": "acme", "steps": ["A", "B"], "by_trait": "plan", "timeout_s": 5])
        #expect(funnel.name(ofField: "by_trait") == "by-trait")
        #expect(funnel.name(ofField: "steps") == "step")
        #expect(throws: APIRefusal.self) { try funnel.params(app: "acme", query: QueryParameters(query: "app=other")) }
        #expect(throws: APIRefusal.self) { try funnel.params(app: "acme", query: QueryParameters(query: "within=1d&within=2d")) }
        let retention = ReportQuery(try #require(ReportCatalog.entry(named: "retention")))
        #expect(throws: APIRefusal.self) { try retention.params(app: "acme", query: QueryParameters(query: "periods=1.5")) }
        #expect(throws: APIRefusal.self) { try retention.params(app: "acme", query: QueryParameters(query: "periods=99999999999999999999")) }
    }

    @Test func everythingAClientSentIsEscaped() {
        #expect(HTML.escape("<script>alert('x')</script>") == "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;")
        #expect(HTML.escape("\"><img src=x onerror=alert(1)>") == "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;")
        #expect(HTML.escape("a\u{0}b\u{1B}c\td") == "a\u{FFFD}b\u{FFFD}c\td")
        #expect(HTML.escape("café ✓ &amp;") == "café ✓ &amp;amp;")
        let svg = Chart.bars([ChartPoint(label: "</text><script>x</script>", value: 3)], title: "<t>")
        #expect(!svg.contains("<script>") && !svg.contains("<t>"))
        #expect(svg.contains("&lt;/text&gt;&lt;script&gt;"))
    }

    @Test func everyChartHasOneMarkPerRow() {
        func marks(_ svg: String) -> Int { svg.components(separatedBy: "class=\"mark ").count - 1 }
        let points = (0..<37).map { ChartPoint(label: "2024-05-\($0)", value: Double($0 % 5)) }
        #expect(marks(Chart.columns(points, title: "t")) == 37)
        #expect(marks(Chart.bars(Array(points.prefix(9)), title: "t")) == 9)
        #expect(marks(Chart.columns([], title: "t")) == 0)
        let grid = Chart.grid(cohorts: [("a", 3, [100, 50, nil]), ("b", 2, [100, nil, nil])], title: "t")
        #expect(grid.components(separatedBy: "class=\"mark\"").count - 1 == 2)
        #expect(grid.contains("heat-10") && grid.contains("heat-5"))
        #expect(marks(Chart.gauge(ChartPoint(label: "nps", value: -40), index: 0)) == 1)
        #expect(Chart.niceMaximum(0) == 4 && Chart.niceMaximum(3) == 4 && Chart.niceMaximum(7) == 10)
        #expect(Chart.niceMaximum(101) == 200 && Chart.niceMaximum(4_900) == 5_000)
    }

    @Test func csvCellsThatASpreadsheetWouldRunAreDefused() {
        let csv = TableText.csv(
            columns: ["name", "n"],
            rows: [["name": "=HYPERLINK(\"http://x\")", "n": -3], ["name": "+cmd|calc", "n": 1], ["name": "plain", "n": .double(158.426)]]
        )
        #expect(csv == "name,n\n\"'=HYPERLINK(\"\"http://x\"\")\",-3\n'+cmd|calc,1\nplain,158.43")
        #expect(TableText.cell(.number("158.42600000000002")) == "158.43")
    }

    /// One app's slow reports wait their turn, and past the wait are refused: other apps go on.
    @Test func oneAppCannotTakeEveryReportThread() async throws {
        let limiter = ReportLimiter(perApp: 1, wait: .milliseconds(100))
        let (held, holding) = AsyncStream<Void>.makeStream()
        let (release, releasing) = AsyncStream<Void>.makeStream()
        try await withThrowingTaskGroup(of: String.self) { group in
            group.addTask {
                try await limiter.run(app: "a") {
                    holding.yield()
                    for await _ in release { break }
                    return "slow"
                }
            }
            // The slow report holds app a's only slot from here until it is released.
            for await _ in held { break }
            let second: String
            do {
                second = try await limiter.run(app: "a") { "second" }
            } catch let refusal as APIRefusal {
                second = refusal.json["code"]?.stringValue ?? "?"
            }
            #expect(second == "overloaded")
            #expect(try await limiter.run(app: "b") { "other app" } == "other app")
            releasing.yield()
            #expect(try await group.next() == "slow")
        }
        #expect(try await limiter.run(app: "a") { "free again" } == "free again")
    }

    @Test func durationsReadAsPeopleSayThem() {
        #expect(ConsolePage.duration(44.6) == "45 s")
        #expect(ConsolePage.duration(1_260) == "21 min")
        #expect(ConsolePage.duration(12_600) == "3.5 h")
        #expect(ConsolePage.duration(896_220) == "10.37 d")
    }

    @Test func sessionsAreSignedExpireAndDieWithTheirKey() throws {
        let signer = SessionSigner(key: SymmetricKey(size: .bits256), revoked: RevokedSessions(path: nil))
        let reader = Reader(token: "acme.token", name: "acme", keyHash: WriteKey.hash("rk_secret"))
        let now = Timestamp(microseconds: 1_700_000_000_000_000)
        let cookie = signer.cookie(for: reader, now: now)
        #expect(!cookie.contains("rk_secret") && !cookie.contains(reader.keyHash))
        let session = try #require(signer.verify(cookie, now: now))
        #expect(session.token == "acme.token")
        #expect(session.keyTag == signer.keyTag(reader.keyHash))
        #expect(!cookie.contains(reader.keyHash.prefix(16)))
        // Expired, tampered, or signed by another key: refused.
        #expect(signer.verify(cookie, now: Timestamp(microseconds: now.microseconds + 13 * 3_600_000_000)) == nil)
        var parts = cookie.split(separator: ".").map(String.init)
        parts[0] = Base64URL.encode(Array("other".utf8))
        #expect(signer.verify(parts.joined(separator: "."), now: now) == nil)
        parts = cookie.split(separator: ".").map(String.init)
        parts[2] = String(Int64(parts[2])! + 86_400)
        #expect(signer.verify(parts.joined(separator: "."), now: now) == nil)
        #expect(SessionSigner(key: SymmetricKey(size: .bits256)).verify(cookie, now: now) == nil)
        #expect(signer.verify("garbage", now: now) == nil && signer.verify("a.b.c.d.e.f", now: now) == nil)
        #expect(signer.cookie(for: reader, now: now) != cookie, "two logins in one second are two sessions")
        // Logged out: refused from then on, by this process and by the next (the file).
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("revoked-\(UInt32.random(in: 0...UInt32.max))").path
        let persisted = SessionSigner(key: signer.key, revoked: RevokedSessions(path: path))
        let current = persisted.cookie(for: reader, now: .now())
        let pieces = current.split(separator: ".")
        persisted.revoked.revoke(String(pieces[4]), until: Int64(pieces[2])!)
        #expect(persisted.verify(current, now: .now()) == nil)
        #expect(SessionSigner(key: signer.key, revoked: RevokedSessions(path: path)).verify(current, now: .now()) == nil)
        #expect(signer.verify(current, now: .now()) != nil)
        try? FileManager.default.removeItem(atPath: path)
        // The CSRF token belongs to its session.
        #expect(signer.csrfToken(forCookie: cookie) != signer.csrfToken(forCookie: signer.cookie(for: reader, now: Timestamp(microseconds: 1))))
    }

    @Test func keysAreReadFromBearerBasicAndCookies() {
        #expect(ReadKeys.presentedKey("Bearer rk_abc") == "rk_abc")
        #expect(ReadKeys.presentedKey("bearer   rk_abc  ") == "rk_abc")
        #expect(ReadKeys.presentedKey("Basic " + Data("rk_abc:".utf8).base64EncodedString()) == "rk_abc")
        #expect(ReadKeys.presentedKey("Basic " + Data(":".utf8).base64EncodedString()) == nil)
        #expect(ReadKeys.presentedKey("Bearer ") == nil && ReadKeys.presentedKey("Token x") == nil && ReadKeys.presentedKey(nil) == nil)
        #expect(ReadKeys.cookie("cairn_session", in: ["a=1; cairn_session=v.w.x.y", "b=2"]) == "v.w.x.y")
        #expect(ReadKeys.cookie("cairn_session", in: ["xcairn_session=1"]) == nil)
        #expect(Console.encode("a b/ü?&=") == "a%20b%2F%C3%BC%3F%26%3D")
    }
}
