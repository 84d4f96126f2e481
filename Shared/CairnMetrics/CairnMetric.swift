import CoreMetrics
import Metrics

/// One metric Cairn exports: its Prometheus name, kind, labels and meaning.
///
/// Code makes its counters, gauges and timers from these (`CairnMetric.eventsTotal.counter(…)`),
/// never from a string of its own, so the list below is every name a scrape can show, and the
/// one the Grafana dashboard (`docs/grafana-dashboard.json`) and its test read. Every metric also
/// carries a `service` label: the process that reported it.
public struct CairnMetric: Sendable, Hashable {
    public enum Kind: String, Sendable {
        case counter, gauge, histogram
    }

    public let name: String
    public let kind: Kind
    /// Labels besides `service`.
    public let labels: [String]
    public let help: String

    init(_ name: String, _ kind: Kind, labels: [String] = [], _ help: String) {
        self.name = name
        self.kind = kind
        self.labels = labels
        self.help = help
    }

    // MARK: - The supervisor

    public static let serviceUp = CairnMetric(
        "cairn_service_up",
        .gauge,
        labels: ["child"],
        "1 while the supervisor's child service runs and sent its metrics for this scrape (PostgreSQL: while its process runs), else 0."
    )
    public static let serviceRestarts = CairnMetric(
        "cairn_service_restarts_total",
        .counter,
        labels: ["child"],
        "Restarts of a child service since the supervisor started."
    )
    public static let scrapeFailures = CairnMetric(
        "cairn_metrics_scrape_failures_total",
        .counter,
        labels: ["child"],
        "Scrapes in which a running child did not send its metrics in time."
    )

    // MARK: - Every service

    public static let rpcRequests = CairnMetric(
        "cairn_rpc_requests_total",
        .counter,
        labels: ["method", "outcome"],
        "RPC requests a service answered, by method and outcome (`ok` or the error's code)."
    )
    public static let rpcDuration = CairnMetric(
        "cairn_rpc_duration_seconds",
        .histogram,
        labels: ["method"],
        "How long a service took to answer an RPC request."
    )
    public static let postgresConnections = CairnMetric(
        "cairn_postgres_connections",
        .gauge,
        labels: ["pool", "state"],
        "A service's PostgreSQL connections: `busy` (lent out) or `idle` (kept for reuse), per pool."
    )
    public static let postgresConnects = CairnMetric(
        "cairn_postgres_connects_total",
        .counter,
        labels: ["pool", "outcome"],
        "New PostgreSQL connections opened (`ok`) or refused (`failed`), per pool."
    )

    // MARK: - HTTP (ingest, and reporting's console and report API)

    public static let httpRequests = CairnMetric(
        "cairn_http_requests_total",
        .counter,
        labels: ["route", "status", "app"],
        "HTTP requests answered, by route pattern, status and app (empty before a valid key)."
    )
    public static let httpDuration = CairnMetric(
        "cairn_http_request_duration_seconds",
        .histogram,
        labels: ["route"],
        "HTTP request latency, from arrival to answer, by route pattern."
    )

    // MARK: - The data path, stage by stage

    public static let batches = CairnMetric(
        "cairn_batches_total",
        .counter,
        labels: ["stage", "outcome"],
        "Batches through a stage: `accept` (ingest's requests and files), `forward` (spool → storage), `write` (storage), `fold` (identity), `destination` (continuous export); outcome `ok` or `failed`."
    )
    public static let events = CairnMetric(
        "cairn_events_total",
        .counter,
        labels: ["stage", "outcome"],
        "Events through a stage, by outcome: accept: `accepted`, `duplicate`, `rejected`; forward: `delivered`; write: `stored`, `duplicate`, `suppressed`; fold: `folded`; destination: `delivered`, `refused`, `skipped`."
    )
    public static let appEvents = CairnMetric(
        "cairn_app_events_total",
        .counter,
        labels: ["app", "outcome"],
        "Events ingest accepted, deduplicated or rejected, per app."
    )
    public static let writeDuration = CairnMetric(
        "cairn_write_duration_seconds",
        .histogram,
        "How long storage took to commit one batch of events."
    )
    public static let foldDuration = CairnMetric(
        "cairn_fold_duration_seconds",
        .histogram,
        "How long the identity follower took to fold one span of events."
    )
    public static let deadLetters = CairnMetric(
        "cairn_dead_letters_total",
        .counter,
        labels: ["reason"],
        "Records refused and kept as dead letters, by reason (the error's code: `invalid_field`, `invalid_json`, …)."
    )

    // MARK: - Ingest's spool

    public static let spoolDepth = CairnMetric("cairn_spool_depth", .gauge, "Events acknowledged and waiting in ingest's spool for storage.")
    public static let spoolAge = CairnMetric(
        "cairn_spool_oldest_age_seconds",
        .gauge,
        "How long the oldest spooled event has waited since it was received."
    )
    public static let appSpoolDepth = CairnMetric("cairn_app_spool_depth", .gauge, labels: ["app"], "Events waiting in the spool, per app.")
    public static let appSpoolAge = CairnMetric(
        "cairn_app_spool_oldest_age_seconds",
        .gauge,
        labels: ["app"],
        "How long the app's oldest spooled event has waited."
    )
    public static let spoolHighWaterMark = CairnMetric(
        "cairn_spool_high_water_mark",
        .gauge,
        "Spooled events above which ingest answers 429."
    )
    public static let spoolGroupCommits = CairnMetric(
        "cairn_spool_group_commits_total",
        .counter,
        "Spool transactions committed (one sync each)."
    )
    public static let spoolGroupCommitRequests = CairnMetric(
        "cairn_spool_group_commit_requests_total",
        .counter,
        "Requests those spool transactions carried."
    )
    public static let ingestDegraded = CairnMetric(
        "cairn_ingest_degraded",
        .gauge,
        "1 while acknowledged events are not reaching storage (forwarding failing, or a spool older than its limit)."
    )

    // MARK: - Followers and destinations

    public static let followerLagEvents = CairnMetric(
        "cairn_follower_lag_events",
        .gauge,
        labels: ["app"],
        "Events stored but not yet folded by the identity follower, per app."
    )
    public static let followerLagSeconds = CairnMetric(
        "cairn_follower_lag_seconds",
        .gauge,
        labels: ["app"],
        "How long the oldest event the identity follower has not folded has waited, per app."
    )
    public static let destinationLagEvents = CairnMetric(
        "cairn_destination_lag_events",
        .gauge,
        labels: ["destination", "app"],
        "Events and links a continuous destination has still to send."
    )
    public static let destinationLagSeconds = CairnMetric(
        "cairn_destination_lag_seconds",
        .gauge,
        labels: ["destination", "app"],
        "How long the oldest of them has waited since it was received."
    )

    // MARK: - Triggers

    public static let triggerDeliveries = CairnMetric(
        "cairn_trigger_deliveries_total",
        .counter,
        labels: ["app", "trigger", "outcome"],
        "Trigger webhook deliveries: `delivered`, or `parked` (attempts used up, or refused for good; `cairn triggers retry` re-sends them)."
    )

    // MARK: - Retention

    public static let retentionRemoved = CairnMetric(
        "cairn_retention_removed_events_total",
        .counter,
        labels: ["method"],
        "Events the retention job removed: `drop` (a run that dropped whole partitions, and deleted the rest) or `delete` (app by app only)."
    )

    /// Every metric, in the order the docs list them.
    public static let all: [CairnMetric] = [
        serviceUp, serviceRestarts, scrapeFailures,
        rpcRequests, rpcDuration, postgresConnections, postgresConnects,
        httpRequests, httpDuration,
        batches, events, appEvents, writeDuration, foldDuration, deadLetters,
        spoolDepth, spoolAge, appSpoolDepth, appSpoolAge, spoolHighWaterMark, spoolGroupCommits, spoolGroupCommitRequests, ingestDegraded,
        followerLagEvents, followerLagSeconds, destinationLagEvents, destinationLagSeconds,
        triggerDeliveries, retentionRemoved,
    ]

    /// `docs/metrics.md`: every metric with its kind, labels and meaning (`make rpc-docs`).
    public static func reference() -> String {
        var out = """
            # Metrics

            Generated from `Shared/CairnMetrics/CairnMetric.swift` by `make rpc-docs`; a test fails when it
            is stale. The supervisor serves every process's metrics on one address, `GET /metrics` on
            `CAIRN_METRICS_ADDR` (default `127.0.0.1:9464`): see [operations.md](operations.md#metrics).
            Every metric carries `service`, the process that reported it (`supervisor`, `ingest`, …);
            a histogram's series are `_bucket`, `_sum` and `_count`, in seconds.

            | metric | kind | labels | meaning |
            |---|---|---|---|

            """
        for metric in all {
            let labels = (["service"] + metric.labels).map { "`\($0)`" }.joined(separator: ", ")
            out +=
                "| `\(metric.name)` | \(metric.kind.rawValue) | \(labels) | \(metric.help.split(separator: "|", omittingEmptySubsequences: false).joined(separator: "\\|")) |\n"
        }
        return out
    }

    // MARK: - Recording

    /// Adds `amount` to the counter with these label values (in ``labels``' order).
    public func increment(by amount: Int = 1, _ values: String...) {
        Counter(label: name, dimensions: dimensions(values)).increment(by: amount)
    }

    /// Sets the gauge with these label values.
    public func set(_ value: Double, _ values: String...) {
        Gauge(label: name, dimensions: dimensions(values)).record(value)
    }

    /// Records one duration in the histogram with these label values.
    public func record(_ duration: Duration, _ values: String...) {
        let (seconds, attoseconds) = duration.components
        Metrics.Timer(label: name, dimensions: dimensions(values)).recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }

    // MARK: - Making them

    /// The counter with these label values (given in ``labels``' order).
    public func counter(_ values: String...) -> Counter {
        Counter(label: name, dimensions: dimensions(values))
    }

    public func gauge(_ values: String...) -> Gauge {
        Gauge(label: name, dimensions: dimensions(values))
    }

    public func timer(_ values: String...) -> Metrics.Timer {
        Metrics.Timer(label: name, dimensions: dimensions(values))
    }

    private func dimensions(_ values: [String]) -> [(String, String)] {
        precondition(values.count == labels.count, "\(name) takes the labels \(labels)")
        return Array(zip(labels, values))
    }
}
