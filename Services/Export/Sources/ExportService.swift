import CairnCore
import CairnPostgres
import CairnService
import CairnWire
import Foundation
import Logging

/// The export service: hands stored events on as Segment batch files or canonical JSON lines.
///
/// Methods (params `app`, `since`, `until`, `out`):
/// - `export.segment` writes numbered Segment batch files into the directory `out`;
/// - `export.jsonl` writes the canonical events, one JSON object per line, to the file `out`.
public enum ExportService {
    public static func setup(_ context: ServiceContext) async throws -> ServiceParts {
        let databaseURL = try context.requireDatabaseURL()
        let pool = PostgresPool(conninfo: databaseURL, maximumIdle: 2)
        let counters = context.counters
        let logger = context.logger
        var router = RPCRouter()
        router.register("export.segment") { params in
            let request = try ExportRequest(params: params)
            let result = try await run(pool) { connection in try exportSegment(request, on: connection, logger: logger) }
            counters.add("segment_exports")
            counters.add("messages_exported", result["messages"]?.intValue ?? 0)
            return result
        }
        router.register("export.jsonl") { params in
            let request = try ExportRequest(params: params)
            let result = try await run(pool) { connection in try exportJSONLines(request, on: connection) }
            counters.add("jsonl_exports")
            counters.add("events_exported", result["events"]?.intValue ?? 0)
            return result
        }
        return ServiceParts(router: router, healthProblem: { await pool.healthProblem() })
    }

    private static func run(_ pool: PostgresPool, _ body: @escaping @Sendable (PostgresConnection) throws -> JSON) async throws -> JSON {
        do {
            return try await pool.withConnection(body)
        } catch let error as PostgresError {
            throw RPCError.application(error.code == .unavailable ? "storage_unavailable" : "query_failed", error.message)
        } catch let error as RPCError {
            throw error
        } catch {
            throw RPCError.application("export_failed", "\(error)")
        }
    }

    struct ExportRequest: Sendable {
        var app: String
        var since: Timestamp?
        var until: Timestamp?
        var out: String

        init(params: JSON) throws(RPCError) {
            guard let app = params["app"]?.stringValue else { throw RPCError.invalidParams("params.app must name the app") }
            guard let out = params["out"]?.stringValue, out.hasPrefix("/") else {
                throw RPCError.invalidParams("params.out must be an absolute path")
            }
            self.app = app
            self.out = out
            let now = Timestamp.now()
            for key in ["since", "until"] {
                guard let text = params[key]?.stringValue else { continue }
                guard let value = TimeBound.parse(text, now: now) else {
                    throw RPCError.application("invalid_time", "--\(key) '\(text)' is neither an RFC 3339 time nor a relative time like 24h or 7d")
                }
                if key == "since" { since = value } else { until = value }
            }
        }
    }

    static func exportSegment(_ request: ExportRequest, on connection: PostgresConnection, logger: Logger) throws -> JSON {
        var writer = try BatchFileWriter(directory: request.out, sentAt: .now())
        var truncated = 0
        var skipped: [JSON] = []
        var links: [StoredAlias] = []
        var nextLink = 0
        /// Aliases go out in time order among the events: each before the first event after it.
        func sendLinks(through time: Timestamp?) throws {
            while nextLink < links.count, time.map({ links[nextLink].aliasedAt <= $0 }) ?? true {
                try writer.append(JSON.object(SegmentMapper.message(for: links[nextLink])).serialized())
                nextLink += 1
            }
        }
        try StoredEvents(app: request.app, since: request.since, until: request.until).forEachPage(on: connection, aliases: { links = $0 }) { events in
            for event in events {
                try sendLinks(through: event.insertedAt)
                guard let fitted = SegmentMapper.fitted(SegmentMapper.message(for: event)) else {
                    skipped.append(["internal_event_id": .string(event.internalEventIdHex), "reason": "message larger than 32000 bytes even without properties"])
                    continue
                }
                if fitted.truncated { truncated += 1 }
                try writer.append(fitted.bytes)
            }
        } corrupt: { id, error in
            logger.error("skipping unreadable stored event", metadata: ["internal_event_id": "\(id)", "error": "\(error)"])
            skipped.append(["internal_event_id": .string(id), "reason": .string(error.description)])
        }
        try sendLinks(through: nil)
        try writer.flush()
        return ["directory": .string(request.out), "files": .int(Int64(writer.filesWritten)),
                "messages": .int(Int64(writer.messagesWritten)), "truncated": .int(Int64(truncated)),
                "skipped": .int(Int64(skipped.count)), "skipped_events": .array(Array(skipped.prefix(100)))]
    }

    static func exportJSONLines(_ request: ExportRequest, on connection: PostgresConnection) throws -> JSON {
        let temporary = request.out + ".tmp"
        guard FileManager.default.createFile(atPath: temporary, contents: nil) , let handle = FileHandle(forWritingAtPath: temporary) else {
            throw RPCError.application("export_failed", "cannot create \(temporary)")
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
            } corrupt: { _, _ in }
            try handle.close()
            _ = try? FileManager.default.removeItem(atPath: request.out)
            try FileManager.default.moveItem(atPath: temporary, toPath: request.out)
        } catch {
            try? handle.close()
            try? FileManager.default.removeItem(atPath: temporary)
            throw error
        }
        return ["file": .string(request.out), "events": .int(Int64(count))]
    }
}
