import CairnCore
@testable import CairnIngest
import CairnService
import CairnSQLite
import CairnWire
import Foundation
import Testing

@Suite struct IngestTests {
    func temporarySpool() throws -> (Spool, String) {
        let path = "/tmp/cairn-spool-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sqlite"
        return (try Spool(path: path), path)
    }

    func cleanUp(_ path: String) {
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
    }

    @Test func submitSpoolsGoodRecordsAndDeadLettersBadOnes() async throws {
        let (spool, path) = try temporarySpool()
        defer { cleanUp(path) }
        let ingestor = Ingestor(spool: spool, counters: Counters())
        let records: [JSON] = [
            .string(#"{"event_type":"track","event_name":"A","user_id":"u1","inserted_at":"2024-05-01T00:00:00Z"}"#),
            .string(#"{"event_type":"track","event_name":"#),
            .string(#"{"event_type":"page_view","user_id":"u1","inserted_at":"2024-05-01T00:00:01Z"}"#),
            .string(#"{"event_type":"nope"}"#),
            .string("\u{FFFD}garbage"),
        ]
        let result = try await ingestor.submit(["app": "acme", "records": .array(records), "lines": [3, 4, 7, 9, 12],
                                                "invalid_utf8": [12], "source": "file.jsonl"])
        #expect(result["accepted"] == .int(2))
        #expect(result["rejected"] == .int(3))
        let errors = try #require(result["errors"]?.arrayValue)
        #expect(errors.map { $0["record"] } == [.int(4), .int(9), .int(12)])
        #expect(errors[1]["field"] == "event_type")
        #expect(errors[0]["code"] == "invalid_json")
        #expect(try spool.depth() == 2)
        let letters = try spool.deadLetters(app: "acme", limit: 10)
        #expect(letters.count == 3)
        #expect(letters.contains { $0["record"] == .int(9) && $0["source"] == "file.jsonl" && $0["raw"] == #"{"event_type":"nope"}"# })
    }

    @Test func spoolSurvivesReopenAndCompletesInOrder() async throws {
        let path = "/tmp/cairn-spool-\(getpid())-reopen.sqlite"
        defer { cleanUp(path) }
        do {
            let spool = try Spool(path: path)
            let ingestor = Ingestor(spool: spool, counters: Counters())
            let records: [JSON] = (0..<5).map { .string(#"{"event_type":"track","event_name":"E\#($0)","inserted_at":"2024-05-01T00:00:0\#($0)Z"}"#) }
            _ = try await ingestor.submit(["app": "acme", "records": .array(records)])
        }
        let reopened = try Spool(path: path)
        let entries = try reopened.peek(limit: 3)
        #expect(entries.count == 3)
        let names = try entries.map { try JSONParser.parse($0.event)["event_name"]?.stringValue }
        #expect(names == ["E0", "E1", "E2"])
        try reopened.complete(sequences: entries.map(\.sequence), refused: [])
        #expect(try reopened.depth() == 2)
        #expect(try reopened.peek(limit: 10).first.map { try JSONParser.parse($0.event)["event_name"] } == "E3")
    }

    @Test func refusesUnknownAppsAndFormatsAsWholeRequests() async throws {
        let (spool, path) = try temporarySpool()
        defer { cleanUp(path) }
        let ingestor = Ingestor(spool: spool, counters: Counters())
        await #expect(throws: RPCError.self) { _ = try await ingestor.submit(["app": "bad/app", "records": []]) }
        await #expect(throws: RPCError.self) { _ = try await ingestor.submit(["app": "acme", "format": "csv", "records": []]) }
        await #expect(throws: RPCError.self) { _ = try await ingestor.submit(["app": "acme"]) }
        #expect(try spool.depth() == 0)
    }
}
