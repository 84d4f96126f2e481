import Synchronization

/// What `GET /metrics` reports, in Prometheus's text exposition format (version 0.0.4):
/// HTTP requests by route and status with their latency, and events accepted, rejected and
/// deduplicated per app (by token). The spool's gauges, in all and per app, are added when
/// the page is rendered.
public final class IngestMetrics: Sendable {
    private struct State {
        var events: [String: (accepted: Int64, rejected: Int64, duplicates: Int64)] = [:]
        var requests: [RequestKey: Int64] = [:]
        /// Latency histogram: counts per bucket (cumulative on output), sum and count.
        var latencyBuckets = [Int64](repeating: 0, count: IngestMetrics.latencyBounds.count)
        var latencySum = 0.0
        var latencyCount: Int64 = 0
    }

    private struct RequestKey: Hashable {
        var route: String
        var status: Int
        /// The app the write key named; empty before (or without) a valid key.
        var app: String
    }

    /// Upper bounds of the latency buckets, in seconds.
    static let latencyBounds: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]

    private let state = Mutex(State())

    public init() {}

    public func add(app: String, accepted: Int, rejected: Int, duplicates: Int) {
        state.withLock { state in
            var totals = state.events[app] ?? (0, 0, 0)
            totals.accepted += Int64(accepted)
            totals.rejected += Int64(rejected)
            totals.duplicates += Int64(duplicates)
            state.events[app] = totals
        }
    }

    /// One HTTP request: its route pattern (never the raw path, which a client controls),
    /// status, app (when its key was valid) and duration.
    public func request(route: String, status: Int, app: String?, seconds: Double) {
        state.withLock { state in
            state.requests[RequestKey(route: route, status: status, app: app ?? ""), default: 0] += 1
            if let bucket = Self.latencyBounds.firstIndex(where: { seconds <= $0 }) { state.latencyBuckets[bucket] += 1 }
            state.latencySum += seconds
            state.latencyCount += 1
        }
    }

    /// A gauge with one value per app.
    public struct AppGauge {
        public var name: String
        public var help: String
        public var values: [(app: String, value: Double)]
    }

    /// The exposition text, with `gauges` (name, help, value) and per-app gauges appended.
    public func render(gauges: [(name: String, help: String, value: Double)], appGauges: [AppGauge] = []) -> String {
        let snapshot = state.withLock { $0 }
        var out = ""
        func family(_ name: String, _ type: String, _ help: String) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        }
        family("cairn_http_requests_total", "counter", "HTTP requests answered, by route, status and app (empty without a valid write key).")
        for (key, count) in snapshot.requests.sorted(by: { ($0.key.route, $0.key.status, $0.key.app) < ($1.key.route, $1.key.status, $1.key.app) }) {
            out +=
                "cairn_http_requests_total{route=\"\(Self.escape(key.route))\",status=\"\(key.status)\",app=\"\(Self.escape(key.app))\"} \(count)\n"
        }
        family("cairn_http_request_duration_seconds", "histogram", "HTTP request latency, from the request's arrival to its answer.")
        var cumulative: Int64 = 0
        for (bound, count) in zip(Self.latencyBounds, snapshot.latencyBuckets) {
            cumulative += count
            out += "cairn_http_request_duration_seconds_bucket{le=\"\(bound)\"} \(cumulative)\n"
        }
        out += "cairn_http_request_duration_seconds_bucket{le=\"+Inf\"} \(snapshot.latencyCount)\n"
        out += "cairn_http_request_duration_seconds_sum \(snapshot.latencySum)\n"
        out += "cairn_http_request_duration_seconds_count \(snapshot.latencyCount)\n"
        let apps = snapshot.events.sorted { $0.key < $1.key }
        for (name, help, value) in [
            (
                "cairn_events_accepted_total", "New events made durable in the spool, per app.",
                { (t: (accepted: Int64, rejected: Int64, duplicates: Int64)) in t.accepted }
            ),
            ("cairn_events_rejected_total", "Records refused and kept as dead letters, per app.", { $0.rejected }),
            ("cairn_events_deduplicated_total", "Events already accepted before, per app.", { $0.duplicates }),
        ] {
            family(name, "counter", help)
            for (app, totals) in apps { out += "\(name){app=\"\(Self.escape(app))\"} \(value(totals))\n" }
        }
        for gauge in gauges {
            family(gauge.name, "gauge", gauge.help)
            out += "\(gauge.name) \(gauge.value)\n"
        }
        for gauge in appGauges {
            family(gauge.name, "gauge", gauge.help)
            for (app, value) in gauge.values { out += "\(gauge.name){app=\"\(Self.escape(app))\"} \(value)\n" }
        }
        return out
    }

    /// Label values escape backslash, double quote and newline.
    static func escape(_ value: String) -> String {
        var out = ""
        for character in value {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(character)
            }
        }
        return out
    }
}
