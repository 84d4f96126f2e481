import CoreMetrics
import Prometheus
import Synchronization

/// The process's metrics: swift-metrics bootstrapped once with swift-prometheus as its backend,
/// every metric labelled with the service that reports it.
public enum MetricsRegistry {
    private static let registry = Mutex<PrometheusCollectorRegistry?>(nil)

    /// Latency buckets from 1 ms (an acknowledgement) to 30 s (a long report or fold).
    static let durationBuckets: [Duration] = [
        .milliseconds(1), .microseconds(2500), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .microseconds(2_500_000), .seconds(5), .seconds(10),
        .seconds(30),
    ]

    /// Makes swift-prometheus the process's metrics backend; the first call wins.
    public static func bootstrap(service: String) {
        let made = registry.withLock { current -> PrometheusCollectorRegistry? in
            guard current == nil else { return nil }
            let new = PrometheusCollectorRegistry()
            current = new
            return new
        }
        guard let made else { return }
        var factory = PrometheusMetricsFactory(registry: made)
        factory.defaultDurationHistogramBuckets = durationBuckets
        factory.nameAndLabelSanitizer = { name, labels in (name, [("service", service)] + labels) }
        MetricsSystem.bootstrap(factory)
    }

    /// The Prometheus text (exposition format 0.0.4) of every metric made so far; empty before
    /// ``bootstrap(service:)``.
    public static func exposition() -> String {
        guard let registry = registry.withLock({ $0 }) else { return "" }
        var buffer: [UInt8] = []
        buffer.reserveCapacity(16 << 10)
        registry.emit(into: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }
}

/// Joins the expositions of several processes into one: each metric family once, with one
/// `TYPE` (and `HELP`) line and the samples of every process under it, as Prometheus requires.
public enum MetricsExposition {
    public static func merge(_ expositions: [String]) -> String {
        struct Family {
            var header: [Substring] = []
            var samples: [Substring] = []
        }
        var order: [Substring] = []
        var families: [Substring: Family] = [:]
        for text in expositions {
            var current: Substring?
            for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
                if line.hasPrefix("# TYPE ") || line.hasPrefix("# HELP ") {
                    let name = line.dropFirst(7).prefix { $0 != " " }
                    current = name
                    if families[name] == nil {
                        order.append(name)
                        families[name] = Family()
                    }
                    // The first process's header lines stand for every process.
                    let kind = line.prefix(7)
                    if !families[name]!.header.contains(where: { $0.hasPrefix(kind) }) { families[name]!.header.append(line) }
                    continue
                }
                if line.hasPrefix("#") { continue }
                let name = current ?? line.prefix { $0 != "{" && $0 != " " }
                if families[name] == nil {
                    order.append(name)
                    families[name] = Family()
                }
                families[name]!.samples.append(line)
            }
        }
        var out = ""
        for name in order {
            guard let family = families[name] else { continue }
            // HELP before TYPE, as the format's examples put them.
            for line in family.header.sorted(by: { $0.hasPrefix("# HELP") && !$1.hasPrefix("# HELP") }) {
                out += line
                out += "\n"
            }
            for line in family.samples {
                out += line
                out += "\n"
            }
        }
        return out
    }
}
