import CairnCore
import CairnMethods
import CairnMetrics
import CairnPostgres
import CairnRollups
import CairnService
import CairnWire
import Foundation
import Logging
import ServiceLifecycle

/// The export service: hands stored events on as Segment batch files or canonical JSON lines.
///
/// Methods (params `app`, `since`, `until`, `out`):
/// - `export.segment` writes numbered Segment batch files into the directory `out`, or, with
///   `to` (a URL), `write_key` and `gzip`, POSTs the batches to a Segment-compatible endpoint;
/// - `export.jsonl` writes the canonical events, one JSON object per line, to the file `out`;
/// - `export.status` lists each continuous destination's checkpoint, totals, lag and last error.
///
/// Continuous destinations come from the stack file's `settings.destinations` (see
/// ``ContinuousDestination``) and run beside the socket server until shutdown, as do the
/// triggers stored in PostgreSQL (``TriggerRunner``; methods in ``TriggerMethods``).
public enum ExportService {
    public static func setup(_ context: ServiceContext) async throws -> ServiceParts {
        let databaseURL = try context.requireDatabaseURL()
        let pool = PostgresPool(conninfo: databaseURL, maximumIdle: 2)
        let counters = context.counters
        let logger = context.logger
        var router = RPCRouter()
        router.register(ExportSegment.self) { params in
            let request = try ExportRequest(params: params)
            let result: JSON
            if let url = params.to {
                guard let key = params.write_key else { throw ExportError(.invalidParams, field: "write_key", "is required with to") }
                let destination = try SegmentHTTPDestination(url: url, writeKey: key, gzip: params.gzip ?? false)
                var sender = HTTPBatchSender(destination: destination)
                var summary = try await guarded { try await exportSegment(request, pool: pool, into: &sender, logger: logger) }
                summary["destination"] = .string(destination.url)
                summary["batches"] = .int(Int64(sender.batchesSent))
                summary["delivered"] = .int(Int64(sender.messagesDelivered))
                summary["failed_batches"] = .array(sender.failures)
                result = .object(summary)
                counters.add("http_exports")
                counters.add("messages_delivered", Int64(sender.messagesDelivered))
                counters.add("batches_failed", Int64(sender.failures.count))
            } else {
                guard let out = request.out else { throw ExportError(.invalidParams, field: "out", "(a directory) or to (a URL) is required") }
                result = .object(
                    try await guarded {
                        var writer = try BatchFileWriter(directory: out)
                        var summary = try await exportSegment(request, pool: pool, into: &writer, logger: logger)
                        summary["directory"] = .string(writer.directory)
                        summary["files"] = .int(Int64(writer.filesWritten))
                        return summary
                    }
                )
                counters.add("segment_exports")
            }
            counters.add("messages_exported", result["messages"]?.intValue ?? 0)
            return result
        }
        router.register(ExportJSONLines.self) { params in
            let request = try ExportRequest(params: params)
            guard let out = request.out else { throw ExportError(.invalidParams, field: "out", "must be an absolute path") }
            let result = try await guarded { try await pool.withConnection { connection in try exportJSONLines(request, to: out, on: connection) } }
            counters.add("jsonl_exports")
            counters.add("events_exported", result["events"]?.intValue ?? 0)
            return result
        }
        let destinations = try ContinuousDestination.parse(
            settings: try context.environment.settings(),
            environment: ProcessInfo.processInfo.environment
        )
        let notifications = PostgresNotifications(
            conninfo: databaseURL,
            channels: [LogNotification.events, LogNotification.folded, LogNotification.triggers],
            logger: logger
        )
        let followers = destinations.map { Follower(destination: $0, pool: pool, wakeups: notifications, logger: logger) }
        router.register(ExportStatus.self) { _ in
            var rows = try await guarded { try await pool.withConnection { try ExportCheckpoints.status(on: $0) } }
            for index in rows.indices {
                let follower = followers.first { $0.destination.name == rows[index]["destination"]?.stringValue }
                for (key, value) in follower?.state.json ?? ["state": "not configured"] { rows[index][key] = value }
            }
            // A configured destination that has not written its checkpoint yet (its app does not exist, say).
            for follower in followers where !rows.contains(where: { $0["destination"]?.stringValue == follower.destination.name }) {
                var row: JSONObject = [
                    "destination": .string(follower.destination.name), "app": .string(follower.destination.app),
                    "url": .string(follower.destination.url), "checkpoint": "none yet",
                ]
                for (key, value) in follower.state.json { row[key] = value }
                rows.append(row)
            }
            return ["destinations": .array(rows.map(JSON.object))]
        }
        for destination in destinations {
            logger.info(
                "continuous export",
                metadata: ["destination": "\(destination.name)", "app": "\(destination.app)", "url": "\(destination.url)"]
            )
        }
        let smtp = try SMTPSettings.parse(settings: try context.environment.settings(), environment: ProcessInfo.processInfo.environment)
        TriggerMethods.register(in: &router, pool: pool, smtp: smtp)
        var runner = TriggerRunner(pool: pool, wakeups: notifications, logger: logger)
        if let smtp {
            runner.mail = try TriggerMail(settings: smtp)
            logger.info(
                "e-mail triggers send through SMTP",
                metadata: ["host": "\(smtp.host)", "port": "\(smtp.port)", "security": "\(smtp.security.rawValue)", "from": "\(smtp.from)"]
            )
        }
        if let interval = try context.environment.settings()["trigger_poll_interval_ms"] {
            guard let milliseconds = interval.intValue, milliseconds >= 10 else {
                throw ExportError(.configuration, "settings.trigger_poll_interval_ms must be a whole number of at least 10")
            }
            runner.pollInterval = .milliseconds(milliseconds)
        }
        let background: [any Service] = [notifications] + (followers.isEmpty ? [] : [ContinuousExport(followers: followers)]) + [runner]
        return ServiceParts(
            router: router,
            background: background,
            healthProblem: { await pool.healthProblem() },
            refreshMetrics: {
                guard !followers.isEmpty else { return }
                for row in (try? await pool.withConnection { try ExportCheckpoints.status(on: $0) }) ?? [] {
                    guard let name = row["destination"]?.stringValue, let app = row["app"]?.stringValue else { continue }
                    CairnMetric.destinationLagEvents.set(Double(row["pending"]?.intValue ?? 0), name, app)
                    CairnMetric.destinationLagSeconds.set(row["lag_s"]?.doubleValue ?? 0, name, app)
                }
            }
        )
    }

    /// Turns database failures into export errors that say what happened.
    static func guarded<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as PostgresError {
            throw RPCError(error)
        } catch  where RPCError(converting: error) != nil {
            throw error
        } catch {
            throw ExportError(.exportFailed, "\(error)")
        }
    }

    struct ExportRequest: Sendable {
        var app: String
        var since: Timestamp?
        var until: Timestamp?
        var out: String?

        init(params: ExportParams) throws(ExportError) {
            let app = params.app
            let out = params.out
            if let out, !out.hasPrefix("/") { throw ExportError(.invalidParams, field: "out", "must be an absolute path") }
            self.app = app
            self.out = out
            let now = Timestamp.now()
            for (key, given) in [("since", params.since), ("until", params.until)] {
                guard let text = given else { continue }
                guard let value = TimeBound.parse(text, now: now) else {
                    throw ExportError(.invalidTime, field: key, "'\(text)' is neither an RFC 3339 time nor a relative time like 24h or 7d")
                }
                if key == "since" { since = value } else { until = value }
            }
        }
    }

    /// Every stored event of the period, and every alias, as Segment messages into `sink`, in
    /// time order: one snapshot read through a cursor, with the sink's work (files, HTTP)
    /// between fetches. Stops early when the sink says its destination is unavailable.
    static func exportSegment<Sink: SegmentSink>(
        _ request: ExportRequest,
        pool: PostgresPool,
        into sink: inout Sink,
        logger: Logger
    ) async throws -> JSONObject {
        let reader = StoredEvents(app: request.app, since: request.since, until: request.until)
        return try await pool.withSession { session in
            var messages = 0
            var truncated = 0
            var skipped: [JSON] = []
            var stopped = false
            let links = try await session.run { try reader.open(on: $0) }
            var nextLink = 0
            /// Aliases go out in time order among the events: each after the events of its own
            /// time and before the first later one. After, because re-ingested Segment turns an
            /// alias into an identify that would otherwise shadow the real identify of that instant.
            func sendLinks(before time: Timestamp?) async throws {
                while !stopped, nextLink < links.count, time.map({ links[nextLink].aliasedAt < $0 }) ?? true {
                    stopped = try await !sink.send(JSON.object(SegmentMapper.message(for: links[nextLink])).serialized())
                    messages += 1
                    nextLink += 1
                }
            }
            pages: while let page = try await session.run({ try reader.nextPage(on: $0) }) {
                for (id, error) in page.corrupt {
                    logger.error("skipping unreadable stored event", metadata: ["internal_event_id": "\(id)", "error": "\(error)"])
                    skipped.append(["internal_event_id": .string(id), "reason": .string(error.description)])
                }
                for event in page.events {
                    try await sendLinks(before: event.insertedAt)
                    if stopped { break pages }
                    guard let fitted = SegmentMapper.fitted(SegmentMapper.message(for: event)) else {
                        skipped.append([
                            "internal_event_id": .string(event.internalEventIdHex),
                            "reason": "message larger than 32000 bytes even without properties",
                        ])
                        continue
                    }
                    if fitted.truncated { truncated += 1 }
                    stopped = try await !sink.send(fitted.bytes)
                    messages += 1
                    if stopped { break pages }
                }
            }
            try await sendLinks(before: nil)
            if !stopped { stopped = try await !sink.finish() }
            if stopped {
                try await session.run { reader.abandon(on: $0) }
            } else {
                try await session.run { try reader.close(on: $0) }
            }
            return [
                "messages": .int(Int64(messages)), "truncated": .int(Int64(truncated)), "stopped": .bool(stopped),
                "skipped": .int(Int64(skipped.count)), "skipped_events": .array(Array(skipped.prefix(100))),
            ]
        }
    }

    static func exportJSONLines(_ request: ExportRequest, to out: String, on connection: PostgresConnection) throws -> JSON {
        let temporary = out + ".tmp"
        guard FileManager.default.createFile(atPath: temporary, contents: nil), let handle = FileHandle(forWritingAtPath: temporary) else {
            throw ExportError(.exportFailed, "cannot create \(temporary)")
        }
        var count = 0
        do {
            try StoredEvents(app: request.app, since: request.since, until: request.until).forEachPage(on: connection) { events in
                var chunk: [UInt8] = []
                for event in events {
                    chunk.append(contentsOf: event.json.serialized())
                    chunk.append(0x0A)
                }
                try handle.write(contentsOf: chunk)
                count += events.count
            } corrupt: { _, _ in
            }
            try handle.close()
            _ = try? FileManager.default.removeItem(atPath: out)
            try FileManager.default.moveItem(atPath: temporary, toPath: out)
        } catch {
            try? handle.close()
            try? FileManager.default.removeItem(atPath: temporary)
            throw error
        }
        return ["file": .string(out), "events": .int(Int64(count))]
    }
}
