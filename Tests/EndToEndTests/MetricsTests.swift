import CairnCore
import CairnMetrics
import CairnTesting
import Foundation
import NIOHTTP1
import Testing

/// The supervisor's one scrape address serves every service's metrics, and every metric the
/// Grafana dashboard in docs/ names is among them.
@Suite struct MetricsTests {
    /// A scrape's metric families: name → kind, from the `# TYPE` lines (each must appear once).
    static func families(_ text: String) -> [String: String] {
        var families: [String: String] = [:]
        for line in text.split(separator: "\n") where line.hasPrefix("# TYPE ") {
            let parts = line.split(separator: " ")
            #expect(families[String(parts[2])] == nil, "\(parts[2]) has two TYPE lines")
            families[String(parts[2])] = String(parts[3])
        }
        return families
    }

    /// Every `cairn_…` name in the dashboard's queries, histogram suffixes taken off.
    static func dashboardMetrics() throws -> Set<String> {
        let data = try #require(FileManager.default.contents(atPath: TestStack.repositoryRoot + "/docs/grafana-dashboard.json"))
        let dashboard = try JSONParser.parse(Array(data))
        var expressions: [String] = []
        for panel in dashboard["panels"]?.arrayValue ?? [] {
            for target in panel["targets"]?.arrayValue ?? [] { expressions += [target["expr"]?.stringValue].compactMap { $0 } }
        }
        for variable in dashboard["templating"]?["list"]?.arrayValue ?? [] { expressions += [variable["query"]?.stringValue].compactMap { $0 } }
        var names = Set<String>()
        for expression in expressions {
            var rest = Substring(expression)
            while let start = rest.range(of: "cairn_") {
                let name = rest[start.lowerBound...].prefix { $0.isLetter || $0.isNumber || $0 == "_" }
                var metric = String(name)
                for suffix in ["_bucket", "_sum", "_count"] where metric.hasSuffix(suffix) {
                    let base = String(metric.dropLast(suffix.count))
                    if CairnMetric.all.contains(where: { $0.name == base && $0.kind == .histogram }) { metric = base }
                }
                names.insert(metric)
                rest = rest[name.endIndex...]
            }
        }
        return names
    }

    @Test func oneScrapeServesEveryServiceAndEveryDashboardMetricExists() async throws {
        let dashboard = try Self.dashboardMetrics()
        let catalog = Set(CairnMetric.all.map(\.name))
        #expect(dashboard.count >= 25)
        #expect(dashboard.subtracting(catalog).isEmpty, "the dashboard names metrics Cairn does not make: \(dashboard.subtracting(catalog))")
        #expect(catalog.subtracting(dashboard).isEmpty, "metrics the dashboard leaves out: \(catalog.subtracting(dashboard))")

        let receiver = try await TestReceiver()
        let hook = try await TestReceiver()
        let settings: JSON = [
            "destinations": [["name": "warehouse", "app": "acme", "url": .string(receiver.url), "write_key": "k", "poll_interval_ms": 100]]
        ]
        let token = "scrape-\(UInt32.random(in: 0...UInt32.max))"
        try await TestStack.with(
            environment: ["CAIRN_METRICS_TOKEN": token],
            stack: try TestStack.defaultStack(settings: settings, for: "export")
        ) { stack in
            #expect(try await stack.cli(["apps", "create", "acme"]).status == 0)
            let trigger = try await stack.cli(["triggers", "add", "--app", "acme", "--name", "signup", "--event", "Signed Up", "--url", hook.url])
            #expect(trigger.status == 0, "\(trigger.stderr)")
            let file = stack.directory + "/events.jsonl"
            let lines = [
                #"{"type":"track","event":"Signed Up","userId":"u1","timestamp":"2026-01-05T10:00:00Z"}"#,
                #"{"type":"track","event":"Viewed","userId":"u2","timestamp":"2026-01-05T10:01:00Z"}"#,
                #"{"type":"track","userId":"u3"}"#,
            ]
            try (lines.joined(separator: "\n") + "\n").write(toFile: file, atomically: true, encoding: .utf8)
            _ = try await stack.cli(["ingest", file, "--app", "acme"])
            _ = try await HTTPIngestTests.post(try await stack.httpURL() + "/v1/batch", json: ["batch": []], key: "wrong")
            _ = try await HTTPIngestTests.post(try await stack.consoleURL() + "/login", [], method: .GET)
            #expect(try await stack.waitForCount(app: "acme", 2) == 2)
            try await stack.waitForFollowers()
            let deadline = ContinuousClock.now + .seconds(60)
            while receiver.requests.isEmpty || hook.requests.isEmpty, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(!receiver.requests.isEmpty && !hook.requests.isEmpty)
            // A restart, counted by the supervisor.
            let identity = try #require(try await stack.servicePID("identity"))
            kill(identity, SIGKILL)
            try await Task.sleep(for: .milliseconds(500))
            try await stack.waitUntilRunning()
            let restarted = ContinuousClock.now + .seconds(60)
            while ContinuousClock.now < restarted {
                let now = try await stack.servicePID("identity")
                if now != nil && now != identity { break }
                try await Task.sleep(for: .milliseconds(100))
            }

            // After the restart, a span more for identity's fold timings.
            try ("{\"type\":\"track\",\"event\":\"Viewed\",\"userId\":\"u4\"}\n").write(toFile: file, atomically: true, encoding: .utf8)
            #expect(try await stack.cli(["ingest", file, "--app", "acme"]).status == 0)
            #expect(try await stack.waitForCount(app: "acme", 3) == 3)
            try await stack.waitForFollowers()

            let url = try await stack.metricsURL()
            #expect(try await HTTPIngestTests.post(url, [], method: .GET).status == 401)
            let scrape = try await HTTPIngestTests.post(url, [], method: .GET, bearer: token)
            #expect(scrape.status == 200)
            let text = scrape.body
            let families = Self.families(text)
            for metric in CairnMetric.all {
                #expect(families[metric.name] == metric.kind.rawValue, "\(metric.name): \(families[metric.name] ?? "missing")")
            }
            for name in dashboard { #expect(families[name] != nil, "the dashboard's \(name) is not in the scrape") }
            // Every process reports through the one address.
            for service in ["storage", "identity", "ingest", "reporting", "export"] {
                #expect(text.contains(#"cairn_rpc_requests_total{service="\#(service)","#), "\(service) is missing")
                #expect(text.contains(#"cairn_service_up{service="supervisor",child="\#(service)"} 1.0"#))
            }
            #expect(text.contains(#"cairn_service_restarts_total{service="supervisor",child="identity"} 1"#), "\(text)")
            #expect(text.contains(#"cairn_dead_letters_total{service="ingest",reason="missing_field"} 1"#))
            #expect(text.contains(#"cairn_trigger_deliveries_total{service="export",app="acme",trigger="signup",outcome="delivered"} 1"#))
            #expect(text.contains(#"cairn_events_total{service="storage",stage="write",outcome="stored"} 3"#))
            #expect(text.contains(#"cairn_destination_lag_events{service="export",destination="warehouse",app="acme"} 0.0"#))
            #expect(text.contains(#"cairn_http_requests_total{service="ingest",route="/v1/batch",status="401",app=""} 1"#))
            #expect(!text.contains(token))
        }
    }

    /// docs/metrics.md is what `make rpc-docs` writes from the catalog.
    @Test func theMetricsReferenceIsCurrent() throws {
        let committed = try String(contentsOfFile: TestStack.repositoryRoot + "/docs/metrics.md", encoding: .utf8)
        #expect(committed == CairnMetric.reference(), "docs/metrics.md is out of date: run `make rpc-docs`")
    }

    /// Families of several processes join under one header each, samples kept in order.
    @Test func expositionsMergeByFamily() {
        let a = "# TYPE x counter\nx{service=\"a\"} 1\n# TYPE y gauge\ny{service=\"a\"} 2.0\n"
        let b = "# HELP x Things.\n# TYPE x counter\nx{service=\"b\"} 3\n# TYPE z histogram\nz_bucket{le=\"1\"} 1\nz_sum 0.5\nz_count 1\n"
        let merged = MetricsExposition.merge([a, b])
        #expect(
            merged
                == "# HELP x Things.\n# TYPE x counter\nx{service=\"a\"} 1\nx{service=\"b\"} 3\n# TYPE y gauge\ny{service=\"a\"} 2.0\n# TYPE z histogram\nz_bucket{le=\"1\"} 1\nz_sum 0.5\nz_count 1\n"
        )
    }
}
