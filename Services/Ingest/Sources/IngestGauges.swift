import CairnCore
import CairnMetrics
import NIOPosix

/// Ingest's gauges, read from the spool just before a scrape renders them: its depth and the
/// age of its oldest event, in all and per app, its high-water mark, and whether ingest is
/// degraded. Counters are recorded where things happen.
struct IngestGauges: Sendable {
    let spool: Spool
    let backpressure: Backpressure
    let degradation: @Sendable () async -> String?

    func refresh() async {
        let spool = self.spool
        let backlog = (try? await NIOThreadPool.singleton.runIfActive { try spool.backlog() }) ?? []
        let now = Timestamp.now().microseconds
        func age(_ oldest: Timestamp?) -> Double { max(0, oldest.map { Double(now - $0.microseconds) / 1_000_000 } ?? 0) }
        let depths = Dictionary(backlog.map { ($0.app, $0) }, uniquingKeysWith: { first, _ in first })
        for app in spool.appsSpooled.union(depths.keys) {
            CairnMetric.appSpoolDepth.set(Double(depths[app]?.depth ?? 0), app)
            CairnMetric.appSpoolAge.set(age(depths[app]?.oldestReceivedAt), app)
        }
        CairnMetric.spoolDepth.set(Double(backlog.reduce(0) { $0 + $1.depth }))
        CairnMetric.spoolAge.set(backlog.map { age($0.oldestReceivedAt) }.max() ?? 0)
        CairnMetric.spoolHighWaterMark.set(Double(backpressure.highWaterMark))
        CairnMetric.ingestDegraded.set(await degradation() == nil ? 0 : 1)
    }
}
