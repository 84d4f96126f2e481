import CairnCore
@testable import CairnExport
import CairnPostgres
import CairnStorage
import CairnTesting
import Foundation
import Logging
import Testing

@Suite struct ExportTests {
    func event(_ type: EventType, _ name: String = "", user: String? = "u1", metadata: JSONObject = [:], at: String = "2024-05-01T09:05:00.123456Z") -> CanonicalEvent {
        CanonicalEvent(appToken: "acme", eventType: type, eventName: name, userId: user, companyId: "c-1", source: "web-client",
                       insertedAt: Timestamp(parsing: at)!, hostname: "app.acme.io", pathname: "/cart", userAgent: "UA",
                       browserLanguage: "en-US", metadata: metadata, receivedAt: Timestamp(parsing: at)!, origin: .userpilot)
    }

    @Test(arguments: [
        ("Guide Started", "guide_started"), ("accountType", "account_type"), ("URL Clicked", "url_clicked"),
        ("something.com", "something_com"), ("$something%", "something"), ("samPLE text", "sam_ple_text"),
        ("userID", "user_id"), ("CStringRef", "cstring_ref"), ("2FA Enabled", "2fa_enabled"), ("already_snake", "already_snake"),
        ("Résumé Viewed", "r_sum_viewed"),
    ])
    func snakeCaseMatchesGoSnakecase(input: String, expected: String) {
        #expect(SnakeCase.convert(input) == expected)
    }

    @Test func mapsEachEventType() throws {
        let track = SegmentMapper.message(for: event(.track, "Added to cart", metadata: ["unitPrice": 39]))
        #expect(track["type"] == "track")
        #expect(track["event"] == "Added to cart")
        #expect(track["properties"]?["unit_price"] == .int(39))
        #expect(track["timestamp"] == "2024-05-01T09:05:00.123Z")
        #expect(track["messageId"] == .string("cairn-acme-" + event(.track, "Added to cart").internalEventIdHex))
        #expect(track["context"]?["integration"]?["name"] == "cairn")
        #expect(track["context"]?["page"]?["path"] == "/cart")
        #expect(track["context"]?["userAgent"] == "UA")
        #expect(track["context"]?["locale"] == "en-US")

        let interaction = SegmentMapper.message(for: event(.interaction, "experience:493:DISMISSED", metadata: ["status": "DISMISSED"]))
        #expect(interaction["event"] == "Experience Dismissed")
        #expect(interaction["properties"]?["experience_id"] == "493")

        #expect(SegmentMapper.message(for: event(.identifyUser, metadata: ["plan": "pro"]))["type"] == "identify")
        let group = SegmentMapper.message(for: event(.identifyCompany, user: nil))
        #expect(group["type"] == "group")
        #expect(group["groupId"] == "c-1")
        #expect(group["anonymousId"] == "company:c-1")
        #expect(SegmentMapper.message(for: event(.pageView))["type"] == "page")
        #expect(SegmentMapper.message(for: event(.trackFeature, "tag-1"))["event"] == "Feature Used")
        #expect(SegmentMapper.message(for: event(.sessionStart))["event"] == "Session Started")
    }

    @Test func cutsDownOversizedMessagesByTheDocumentedRule() throws {
        let long = String(repeating: "x", count: 40_000)
        let fitted = try #require(SegmentMapper.fitted(SegmentMapper.message(for: event(.track, "Big", metadata: ["blob": .string(long)]))))
        #expect(fitted.truncated)
        #expect(fitted.bytes.count <= SegmentMapper.maximumMessageBytes)
        let message = try JSONParser.parse(fitted.bytes)
        #expect(message["properties"]?["blob"]?.stringValue?.count == SegmentMapper.truncatedStringLength)
        #expect(message["context"]?["cairn_truncated"] == .bool(true))
        // Too many keys to save by shortening strings: properties are dropped.
        var many = JSONObject()
        for n in 0..<3000 { many["key_\(n)"] = .int(Int64(n)) }
        let dropped = try #require(SegmentMapper.fitted(SegmentMapper.message(for: event(.track, "Wide", metadata: many))))
        #expect(try JSONParser.parse(dropped.bytes)["properties"] == .object(JSONObject()))
        // An event whose name alone is too big cannot be sent.
        #expect(SegmentMapper.fitted(SegmentMapper.message(for: event(.track, long))) == nil)
    }

    @Test func batchFilesRespectSegmentLimitsOnTheBytesWritten() throws {
        let directory = "/tmp/cairn-export-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var writer = try BatchFileWriter(directory: directory, sentAt: .now())
        let small = Array(#"{"type":"track","event":"A","userId":"u"}"#.utf8)
        for _ in 0..<6000 { try writer.append(small) }
        let big = Array((#"{"type":"track","event":""# + String(repeating: "b", count: 30_000) + #"","userId":"u"}"#).utf8)
        for _ in 0..<40 { try writer.append(big) }
        try writer.flush()
        let files = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".json") }.sorted()
        var total = 0
        for file in files {
            let data = try #require(FileManager.default.contents(atPath: directory + "/" + file))
            #expect(data.count <= BatchFileWriter.maximumBatchBytes)
            let body = try JSONParser.parse(Array(data))
            let batch = try #require(body["batch"]?.arrayValue)
            #expect(batch.count <= BatchFileWriter.maximumMessages)
            #expect(body["sentAt"]?.stringValue != nil)
            total += batch.count
        }
        #expect(total == 6040)
        #expect(files.first == "batch-000001.json")
        #expect(files.count == writer.filesWritten)
    }

    @Test func readsStoredEventsBackInTimeOrder() throws {
        let connection = try PostgresConnection(conninfo: try TestPostgres.freshDatabase())
        try Schema.migrate(connection)
        _ = try AppRegistry.create(["name": "acme"], on: connection)
        let events = (0..<12).map { event(.track, "E\($0)", metadata: ["n": .int(Int64($0))], at: "2024-05-\(10 + $0)T00:00:00Z") }
        _ = try EventWriter().write(events: events.reversed(), users: .array([]), companies: .array([]), on: connection)
        var reader = StoredEvents(app: "acme", since: Timestamp(parsing: "2024-05-11"), until: Timestamp(parsing: "2024-05-21"))
        reader.pageSize = 4
        var seen: [CanonicalEvent] = []
        try reader.forEachPage(on: connection) { seen += $0 } corrupt: { id, error in Issue.record("corrupt \(id): \(error)") }
        #expect(seen.map(\.eventName) == (1...10).map { "E\($0)" })
        #expect(seen.first?.metadata["n"] == .int(1))
        #expect(seen == Array(events[1...10]))
    }
    /// device-A browses at 09:00, is identified as ada at 09:10, and ada buys at 09:20: the
    /// alias goes out between the page and the identify, the same message on every export.
    @Test func aliasesGoOutAsAliasMessagesInTimeOrder() throws {
        let connection = try PostgresConnection(conninfo: try TestPostgres.freshDatabase())
        try Schema.migrate(connection)
        _ = try AppRegistry.create(["name": "acme"], on: connection)
        func at(_ time: String) -> Timestamp { Timestamp(parsing: "2024-05-01T\(time):00Z")! }
        let events = [
            CanonicalEvent(appToken: "acme", eventType: .pageView, eventName: "", userId: nil, companyId: nil, anonymousId: "device-A",
                           source: "web-client", insertedAt: at("09:00"), pathname: "/", receivedAt: at("09:00"), origin: .segment),
            CanonicalEvent(appToken: "acme", eventType: .identifyUser, eventName: "", userId: "ada", companyId: nil, anonymousId: "device-A",
                           source: "web-client", insertedAt: at("09:10"), receivedAt: at("09:10"), origin: .segment),
            CanonicalEvent(appToken: "acme", eventType: .track, eventName: "Purchased", userId: "ada", companyId: nil,
                           source: "web-client", insertedAt: at("09:20"), receivedAt: at("09:20"), origin: .segment),
        ]
        _ = try EventWriter().write(events: events, users: [["app_token": "acme", "user_id": "ada", "first_seen": "2024-05-01T09:10:00Z", "last_seen": "2024-05-01T09:20:00Z"]],
                                    companies: .array([]), aliases: [["app_token": "acme", "alias_id": "device-A", "user_id": "ada", "aliased_at": "2024-05-01T09:10:00Z"]],
                                    on: connection)
        func export() throws -> [JSON] {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-alias-\(UInt64.random(in: 0...UInt64.max))").path
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let result = try ExportService.exportSegment(try .init(params: ["app": "acme", "out": .string(directory)]), on: connection, logger: .init(label: "test"))
            #expect(result["messages"] == 4)
            let file = try #require(FileManager.default.contents(atPath: directory + "/batch-000001.json"))
            return try JSONParser.parse(Array(file))["batch"]?.arrayValue ?? []
        }
        let batch = try export()
        #expect(batch.map { $0["type"]?.stringValue ?? "" } == ["page", "alias", "identify", "track"])
        let alias = batch[1]
        #expect(alias["previousId"] == "device-A")
        #expect(alias["userId"] == "ada")
        #expect(alias["timestamp"] == "2024-05-01T09:10:00.000Z")
        let messageId = try #require(alias["messageId"]?.stringValue)
        #expect(messageId.hasPrefix("cairn-acme-alias-") && messageId.count < 100)
        // A second export carries the same messageIds, so downstream deduplicates it.
        #expect(try export().map { $0["messageId"] } == batch.map { $0["messageId"] })
    }
}
