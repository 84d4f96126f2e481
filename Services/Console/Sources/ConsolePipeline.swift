import CairnCore
import CairnMethods
import CairnPostgres
import CairnReporting
import CairnRollups
import CairnWire
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

extension ConsolePage {
    /// Services and their health, the spool and the follower, dead letters with their reasons
    /// (and their replay), export destinations and triggers. A service that does not answer is
    /// named on the page; the rest still shows.
    static func pipeline(_ context: PageContext, csrf: String, _ view: inout PageView) async throws {
        view.title = "Pipeline"
        let services = context.console.services
        let token = context.reader.token
        func table(_ rows: [JSON], columns wanted: [String]? = nil) -> TableView {
            let columns = wanted ?? rows.first?.objectValue?.keys ?? []
            return TableView(columns: columns, rows: rows.map { row in columns.map { TableText.cell(row[$0]) } })
        }
        func unavailable(_ service: String, _ error: any Error) -> SectionView {
            SectionView(heading: service.capitalized, note: "\(service) does not answer: \(APIRefusal.from(error).message)")
        }

        do {
            let status = try await services.supervisor.call(SupervisorStatus.self, NoParams())
            let rows: [JSON] = (status["services"]?.arrayValue ?? []).map { service in
                [
                    "service": service["name"] ?? .null, "state": service["state"] ?? .null,
                    "health": service["status"]?["health"] ?? .null, "reason": service["status"]?["reason"] ?? .null,
                    "restarts": service["restarts"] ?? .null, "uptime_s": service["uptime_s"] ?? .null,
                ]
            }
            view.sections.append(SectionView(heading: "Services", note: "As the supervisor sees them (cairn status).", table: table(rows)))
        } catch {
            view.sections.append(unavailable("supervisor", error))
        }

        var tiles: [TileView] = []
        if let status = try? await services.ingest.call(SystemStatus.self, NoParams()) {
            tiles.append(TileView(label: "Spool depth (all apps)", value: TableText.cell(status["spool_depth"])))
            tiles.append(TileView(label: "Dead letters (all apps)", value: TableText.cell(status["dead_letters"])))
        }
        if let followers = try? await services.identity.call(IdentityFollowers.self, NoParams()).followers,
            let mine = followers.first(where: { $0.app == token })
        {
            tiles.append(TileView(label: "Follower lag (events)", value: String(mine.lag_events)))
            tiles.append(TileView(label: "Follower lag (s)", value: TableText.cell(.double(mine.lag_seconds))))
        }
        view.sections.append(SectionView(heading: "Write path", note: tiles.isEmpty ? "ingest and identity do not answer." : nil, tiles: tiles))

        do {
            let listed = try await services.ingest.call(IngestDeadLettersList.self, .init(app: token, limit: 100))
            // A letter too large to list whole is a preview: say how large it is.
            let letters: [JSON] = (listed["rows"]?.arrayValue ?? []).map { row in
                guard row["raw_truncated"] == true, var object = row.objectValue else { return row }
                object["raw"] = .string((row["raw"]?.stringValue ?? "") + " … (\(TableText.cell(row["raw_bytes"])) bytes in all)")
                return .object(object)
            }
            let cut = listed["complete"] == false ? ", as many as fit one page" : ""
            var section = SectionView(
                heading: "Dead letters",
                note: letters.isEmpty
                    ? "None: every record this app sent was accepted."
                    : "The newest \(letters.count) records ingest refused\(cut), with the field and the reason.",
                table: letters.isEmpty ? nil : table(letters, columns: ["id", "received_at", "source", "record", "code", "field", "error", "raw"])
            )
            if !letters.isEmpty {
                section.form = ActionFormView(
                    action: "\(context.base)/deadletters/replay",
                    csrf: csrf,
                    hidden: [],
                    label: "The app's write key",
                    submit: "Replay this app's dead letters"
                )
            }
            view.sections.append(section)
        } catch {
            view.sections.append(unavailable("ingest", error))
        }

        do {
            let destinations = try await services.export.call(ExportStatus.self, NoParams())["destinations"]?.arrayValue ?? []
            let mine = destinations.filter { $0["app"] == nil || $0["app"]?.stringValue == token || $0["app"]?.stringValue == context.app }
            view.sections.append(
                SectionView(
                    heading: "Export destinations",
                    note: mine.isEmpty ? "No continuous destination (docs/export.md)." : nil,
                    table: mine.isEmpty ? nil : table(mine)
                )
            )
            let triggers = try await services.export.call(TriggersStatus.self, .init(app: token))["triggers"]?.arrayValue ?? []
            view.sections.append(
                SectionView(
                    heading: "Triggers",
                    note: triggers.isEmpty ? "No trigger (cairn triggers add)." : nil,
                    table: triggers.isEmpty ? nil : table(triggers)
                )
            )
        } catch {
            view.sections.append(unavailable("export", error))
        }
    }
}

extension Console {
    /// The live tail: server-sent events, one `event` per stored event of the app, in the order
    /// storage committed them. Each round reads the events below the log's horizon that the last
    /// round could not see yet, so none is sent twice and none is skipped (but a burst over 1,000
    /// in one round, which is cut to its first 1,000).
    func liveStream(_ request: Request, app rawApp: String) async throws -> Response {
        let app = try ReportAPI.pathValue(rawApp)
        let reader = try await keys.reader(for: request)
        try ReadKeys.authorize(reader, app: app)
        let runner = self.runner
        let keys = self.keys
        let token = reader.token
        let start = try await runner.withConnection { connection in try LogHorizon.read(on: connection) }
        let headers: HTTPFields = [
            .contentType: "text/event-stream", .cacheControl: "no-store", HTTPField.Name("X-Accel-Buffering")!: "no",
        ]
        return Response(
            status: .ok,
            headers: headers,
            body: ResponseBody { writer in
                var cursor = start
                try await writer.write(ByteBuffer(string: "retry: 2000\n: connected\n\n"))
                let started = ContinuousClock.now
                var lastWrite = ContinuousClock.now
                var lastCheck = ContinuousClock.now
                // A stream lasts at most 10 minutes; the browser reconnects by itself.
                while !Task.isCancelled, ContinuousClock.now - started < .seconds(600) {
                    try await Task.sleep(for: .milliseconds(400))
                    // The key or session that opened the stream must still be good: a rotated key or
                    // a logout ends it within 5 s.
                    if ContinuousClock.now - lastCheck > .seconds(5) {
                        guard let again = try? await keys.reader(for: request), again.owns(app) else { break }
                        lastCheck = .now
                    }
                    let from = cursor
                    let (rows, horizon) = try await runner.withConnection { connection in
                        let horizon = try LogHorizon.read(on: connection)
                        let rows = try connection.execute(
                            """
                            SELECT to_char(received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS stored_at,
                                   to_char(inserted_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS time,
                                   event_type, event_name, COALESCE(user_id, 'anonymous:' || anonymous_id) AS person, source, message_id
                            FROM events WHERE app_token = $1 AND stored_xid >= $2 AND stored_xid < $3
                            ORDER BY stored_xid, internal_event_id LIMIT 1000
                            """,
                            [token, String(from), String(horizon)]
                        ).namedRows
                        return (rows, horizon)
                    }
                    cursor = horizon
                    var text = ""
                    for row in rows {
                        let event: JSON = [
                            "stored_at": .optional(row["stored_at"]), "time": .optional(row["time"]), "type": .optional(row["event_type"]),
                            "name": .optional(row["event_name"]), "person": .optional(row["person"]), "source": .optional(row["source"]),
                            "message_id": .optional(row["message_id"]),
                        ]
                        text += "event: event\ndata: \(event.serializedString())\n\n"
                    }
                    // A comment now and then finds a browser that left without closing.
                    if text.isEmpty, ContinuousClock.now - lastWrite > .seconds(15) { text = ": still here\n\n" }
                    if !text.isEmpty {
                        try await writer.write(ByteBuffer(string: text))
                        lastWrite = .now
                    }
                }
                try await writer.finish(nil)
            }
        )
    }
}
