import CairnCore
import CairnMethods
import CairnSQLite
import CairnService
import CairnWire
import Foundation
import Logging
import NIOCore
import Synchronization
import Testing

@testable import CairnIngest

/// Storage's app registry, served on a real socket: enough of storage for ingest's unit
/// tests. The real registry is tested in CairnStorageTests and end to end.
final class RegistryServer: Sendable {
    let apps = Mutex<[String: JSON]>([
        "acme": ["token": "acme", "name": "acme", "personal_data": "hash", "attributes": [:]]
    ])

    func run(_ body: @Sendable (ReconnectingClient) async throws -> Void) async throws {
        let directory = "/tmp/cairn-ingest-\(getpid())-\(UInt16.random(in: 0...UInt16.max))"
        try RunDirectory.prepare(directory)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = RunDirectory.socketPath(directory, service: "storage")
        var router = RPCRouter()
        router.register(AppsGet.self) { [self] params in
            guard let app = self.apps.withLock({ $0[params.app] }) else {
                throw RPCError.application(.unknownApp, "no app is named '\(params.app)'")
            }
            return app
        }
        let server = RPCServer(socketPath: path, router: router, logger: Logger(label: "registry"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.run() }
            // The registry is up for the whole body: a call that misses its deadline here would be the machine's load, not ingest.
            let client = ReconnectingClient(socketPath: path, deadlineScale: 20)
            // Ready when a call answers. The fuzzers run synchronously on the two cooperative
            // threads at the start of the suite and held every other test for 31 s in one run, so
            // this waits for a broken registry, not a busy one.
            let readyBy = ContinuousClock.now + .seconds(120)
            while (try? await client.call(AppsGet.self, AppParams(app: "acme"))) == nil {
                guard ContinuousClock.now < readyBy else { throw IngestError(.storageUnavailable, "the test registry never answered") }
                try await Task.sleep(for: .milliseconds(10))
            }
            do {
                try await body(client)
            } catch {
                group.cancelAll()
                throw error
            }
            group.cancelAll()
        }
    }
}

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
        try await RegistryServer().run { storage in
            let ingestor = Ingestor(spool: spool, apps: AppDirectory(storage: storage, spool: spool), counters: Counters())
            let records: [JSON] = [
                .string(#"{"event_type":"track","event_name":"A","user_id":"u1","inserted_at":"2024-05-01T00:00:00Z"}"#),
                .string(#"{"event_type":"track","event_name":"#),
                .string(#"{"event_type":"page_view","user_id":"u1","inserted_at":"2024-05-01T00:00:01Z"}"#),
                .string(#"{"event_type":"nope"}"#),
                .string("\u{FFFD}garbage"),
            ]
            let params: JSON = ["app": "acme", "records": .array(records), "lines": [3, 4, 7, 9, 12], "invalid_utf8": [12], "source": "file.jsonl"]
            let result = try await ingestor.submit(params)
            #expect(result["accepted"] == .int(2))
            #expect(result["duplicates"] == .int(0))
            #expect(result["rejected"] == .int(3))
            let errors = result["errors"]?.arrayValue ?? []
            #expect(errors.map { $0["record"] } == [.int(4), .int(9), .int(12)])
            #expect(errors.map { $0["code"] } == ["invalid_json", "invalid_field", "invalid_utf8"])
            #expect(errors[1]["field"] == "event_type")
            #expect(try spool.depth() == 2)
            let letters = try spool.deadLetters(app: "acme", limit: 10)
            #expect(letters.count == 3)
            #expect(
                letters.contains {
                    $0.letter.record == 9 && $0.letter.source == "file.jsonl" && $0.letter.raw == Array(#"{"event_type":"nope"}"#.utf8)
                }
            )
        }
    }

    @Test func theSameEventTwiceIsADuplicateInOneBatchOrTwo() async throws {
        let (spool, path) = try temporarySpool()
        defer { cleanUp(path) }
        try await RegistryServer().run { storage in
            let ingestor = Ingestor(spool: spool, apps: AppDirectory(storage: storage, spool: spool), counters: Counters())
            let record = JSON.string(#"{"event_type":"track","event_name":"A","user_id":"u1","inserted_at":"2024-05-01T00:00:00Z"}"#)
            let first = try await ingestor.submit(["app": "acme", "records": [record, record]])
            #expect(first["accepted"] == .int(1))
            #expect(first["duplicates"] == .int(1))
            let second = try await ingestor.submit(["app": "acme", "records": [record]])
            #expect(second["accepted"] == .int(0))
            #expect(second["duplicates"] == .int(1))
            // Segment messageIds: the same id is one message even with another timestamp.
            let one = JSON.string(#"{"type":"track","event":"B","userId":"u","messageId":"m-1","timestamp":"2024-05-01T00:00:00Z"}"#)
            let retried = JSON.string(#"{"type":"track","event":"B","userId":"u","messageId":"m-1","timestamp":"2024-05-01T00:00:09Z"}"#)
            let third = try await ingestor.submit(["app": "acme", "records": [one, retried]])
            #expect(third["accepted"] == .int(1))
            #expect(third["duplicates"] == .int(1))
            #expect(try spool.depth() == 2)
        }
    }

    @Test func anUnknownAppIsRefusedAndItsRecordsKeptForReplay() async throws {
        let (spool, path) = try temporarySpool()
        defer { cleanUp(path) }
        let registry = RegistryServer()
        try await registry.run { storage in
            let apps = AppDirectory(storage: storage, spool: spool, freshness: .zero)
            let ingestor = Ingestor(spool: spool, apps: apps, counters: Counters())
            let record = JSON.string(#"{"event":"buy","user_id":"u","attributes":{"price":"9.5"}}"#)
            do {
                _ = try await ingestor.submit(["app": "shop", "records": [record]])
                Issue.record("expected unknown_app")
            } catch let error as RPCError {
                #expect(error.applicationCode?.rawValue == "unknown_app")
            }
            #expect(try spool.deadLetters(app: "shop", limit: 10).first?.letter.error.code == .unknownApp)
            #expect(try spool.depth() == 0)

            // The app appears with a typed attribute: the replay coerces it.
            registry.apps.withLock { $0["shop"] = ["token": "shop", "name": "shop", "attributes": ["price": "number"]] }
            let replay = try await ingestor.replay(["app": "shop"])
            #expect(replay["replayed"] == .int(1))
            #expect(replay["accepted"] == .int(1))
            #expect(try spool.deadLetters(app: "shop", limit: 10).isEmpty)
            let spooled = try JSONParser.parse(try #require(try spool.peek(limit: 1).first).event)
            #expect(spooled["metadata"]?["price"] == .double(9.5))
        }
    }

    @Test func aReplayThatStillFailsKeepsTheLetterWithTheNewReason() async throws {
        let (spool, path) = try temporarySpool()
        defer { cleanUp(path) }
        let registry = RegistryServer()
        registry.apps.withLock { $0["acme"] = ["token": "acme", "name": "acme", "attributes": ["price": "number"]] }
        try await registry.run { storage in
            let ingestor = Ingestor(spool: spool, apps: AppDirectory(storage: storage, spool: spool, freshness: .zero), counters: Counters())
            let result = try await ingestor.submit([
                "app": "acme", "records": [.string(#"{"event":"buy","user_id":"u","attributes":{"price":"cheap"}}"#)],
            ])
            #expect(result["rejected"] == .int(1))
            let again = try await ingestor.replay(["app": "acme"])
            #expect(again["replayed"] == .int(1))
            #expect(again["accepted"] == .int(0))
            #expect(again["still_rejected"] == .int(1))
            #expect(try spool.deadLetters(app: "acme", limit: 10).first?.letter.error.field == "attributes.price")
        }
    }

    /// A record named in `invalid_utf8` keeps the bytes its base64 carries; one whose letter holds
    /// only a lossy decoding (not base64: an older client, or a letter kept before the bytes were)
    /// is never stored by a replay, though the text parses as an event.
    @Test func aLetterThatIsNotUTF8KeepsItsBytesAndALossyCopyIsNeverReplayed() async throws {
        let (spool, path) = try temporarySpool()
        defer { cleanUp(path) }
        try await RegistryServer().run { storage in
            let ingestor = Ingestor(spool: spool, apps: AppDirectory(storage: storage, spool: spool), counters: Counters())
            let original = Array(#"{"event_type":"track","event_name":"Caf"#.utf8) + [0xE9] + Array(#"","user_id":"u1"}"#.utf8)
            let lossy = #"{"event_type":"track","event_name":"Caf\#u{FFFD}","user_id":"u1","inserted_at":"2024-05-01T00:00:00Z"}"#
            let result = try await ingestor.submit([
                "app": "acme", "records": [.string(Data(original).base64EncodedString()), .string(lossy)], "invalid_utf8": [1, 2],
            ])
            #expect(result["rejected"] == .int(2))
            let letters = try spool.deadLetters(app: "acme", limit: 10).sorted { ($0.letter.record ?? 0) < ($1.letter.record ?? 0) }
            #expect(letters.map(\.letter.raw) == [original, Array(lossy.utf8)])
            #expect(letters.first?.json["raw_base64"] == .string(Data(original).base64EncodedString()))
            let again = try await ingestor.replay(["app": "acme"])
            #expect(again["accepted"] == .int(0) && again["still_rejected"] == .int(2), "\(again)")
            #expect(try spool.depth() == 0)
            #expect(try spool.deadLetters(app: "acme", limit: 10).allSatisfy { $0.letter.error.code == .invalidUTF8 })
        }
    }

    /// A listing fits one answer: a letter too large to show whole (8 MiB of bytes that are not
    /// UTF-8 would be 35 MB of JSON) is a preview with its size, and the rows stop at the budget.
    /// Shown at a 64 KiB budget, the same proportions as the 8 MiB one.
    @Test func theDeadLetterListingFitsOneAnswer() throws {
        func letter(_ id: Int64, _ raw: [UInt8]) -> Spool.StoredDeadLetter {
            Spool.StoredDeadLetter(
                id: id,
                receivedAt: "2024-05-01T00:00:00Z",
                letter: Spool.DeadLetter(
                    app: "acme",
                    format: "auto",
                    source: "cli",
                    record: Int(id),
                    error: EventError(.invalidUTF8, field: nil, "x"),
                    raw: raw
                )
            )
        }
        let budget = 64 << 10
        let huge = letter(1, [UInt8](repeating: 0xFD, count: 64 << 10))
        let small = letter(2, [0x7B, 0xFF, 0x7D])
        let listing = Spool.StoredDeadLetter.listing([huge, small], budget: budget)
        #expect(listing.complete)
        #expect(listing.rows.reduce(0) { $0 + $1.serialized().count } < budget)
        #expect(listing.rows[0]["raw_truncated"] == true && listing.rows[0]["raw_bytes"] == .int(64 << 10) && listing.rows[0]["raw_base64"] == nil)
        #expect(listing.rows[1]["raw_base64"] == .string(Data([0x7B, 0xFF, 0x7D]).base64EncodedString()))
        // A preview cut inside a character ends before it, not in a U+FFFD of its own.
        let euros = Spool.StoredDeadLetter.listing([letter(3, Array(String(repeating: "€", count: 20_000).utf8))], budget: budget)
        let preview = euros.rows.first?["raw"]?.stringValue ?? ""
        #expect(!preview.isEmpty && preview.allSatisfy { $0 == "€" } && preview.utf8.count <= budget / 128, "\(preview.suffix(3))")
        // Read from the spool for a listing, a large letter comes shortened, with its whole size.
        let (spool, path) = try temporarySpool()
        defer { cleanUp(path) }
        try spool.append(events: [], deadLetters: [huge.letter, small.letter])
        let read = try spool.deadLetters(app: "acme", limit: 10, shortenOver: budget / 16, shortenTo: budget / 128 + 4)
        #expect(read.map(\.letter.raw.count).sorted() == [3, budget / 128 + 4] && read.map(\.rawBytes).sorted() == [3, 64 << 10])
        let fromSpool = Spool.StoredDeadLetter.listing(read, budget: budget)
        #expect(fromSpool.rows.contains { $0["raw_truncated"] == true && $0["raw_bytes"] == .int(64 << 10) })
        #expect(try spool.deadLetters(app: "acme", limit: 10).map(\.letter.raw.count).sorted() == [3, 64 << 10])
        let many = (1...40).map { letter(Int64($0), [UInt8](repeating: 0x41, count: 3 << 10)) }
        let cut = Spool.StoredDeadLetter.listing(many, budget: budget)
        let listed = cut.rows.reduce(0) { $0 + $1.serialized().count }
        #expect(!cut.complete && cut.rows.count > 10 && cut.rows.count < 40, "\(cut.rows.count)")
        #expect(listed <= budget && listed + many[cut.rows.count].json.serialized().count > budget)
    }

    @Test func knownAppsStillResolveWhenStorageIsAway() async throws {
        let (spool, path) = try temporarySpool()
        defer { cleanUp(path) }
        let kept = Mutex<AppDirectory?>(nil)
        try await RegistryServer().run { storage in
            let apps = AppDirectory(storage: storage, spool: spool, freshness: .zero)
            _ = try await apps.resolve("acme")
            kept.withLock { $0 = apps }
        }
        let directory = try #require(kept.withLock { $0 })
        // The registry server is gone now.
        #expect(try await directory.resolve("acme").token == "acme")
        let fresh = AppDirectory(storage: ReconnectingClient(socketPath: "/tmp/cairn-nowhere.sock"), spool: spool)
        #expect(try await fresh.resolve("acme").token == "acme")
        do {
            _ = try await fresh.resolve("never-seen")
            Issue.record("expected an error")
        } catch {
            #expect(error.applicationCode?.rawValue == "storage_unavailable")
        }
    }

    @Test func spoolSurvivesReopenAndCompletesInOrder() async throws {
        let path = "/tmp/cairn-spool-\(getpid())-reopen.sqlite"
        defer { cleanUp(path) }
        do {
            let spool = try Spool(path: path)
            let events = (0..<5).map { n in
                CanonicalEvent(
                    appToken: "acme",
                    eventType: .track,
                    eventName: "E\(n)",
                    userId: nil,
                    companyId: nil,
                    source: "web-client",
                    insertedAt: Timestamp(parsing: "2024-05-01T00:00:0\(n)Z")!,
                    receivedAt: .now(),
                    origin: .userpilot
                )
            }
            #expect(try spool.append(events: events, deadLetters: []) == (5, 0))
        }
        let reopened = try Spool(path: path)
        let entries = try reopened.peek(limit: 3)
        let names = try entries.map { try JSONParser.parse($0.event)["event_name"]?.stringValue }
        #expect(names == ["E0", "E1", "E2"])
        try reopened.complete(sequences: entries.map(\.sequence), refused: [])
        #expect(try reopened.depth() == 2)
    }

    /// A batch stops at its byte budget, so that its frame fits; a single event larger than
    /// the budget still goes, alone, rather than wedging the spool.
    @Test func peekKeepsABatchUnderItsByteBudget() async throws {
        let path = "/tmp/cairn-spool-\(getpid())-bytes.sqlite"
        defer { cleanUp(path) }
        let spool = try Spool(path: path)
        let events = [100, 100, 100, 5_000, 100].enumerated().map { n, size in
            CanonicalEvent(
                appToken: "acme",
                eventType: .track,
                eventName: "E\(n)",
                userId: nil,
                companyId: nil,
                source: "web-client",
                insertedAt: Timestamp(parsing: "2024-05-01T00:00:0\(n)Z")!,
                metadata: ["padding": .string(String(repeating: "x", count: size))],
                receivedAt: .now(),
                origin: .userpilot
            )
        }
        _ = try spool.append(events: events, deadLetters: [])
        let sizes = try spool.peek(limit: 10).map(\.event.count)
        let budget = sizes[0] + sizes[1] + sizes[2] + 10
        #expect(try spool.peek(limit: 10, maximumBytes: budget).count == 3)
        #expect(try spool.peek(limit: 2, maximumBytes: budget).count == 2)
        let first = try spool.peek(limit: 3)
        try spool.complete(sequences: first.map(\.sequence), refused: [])
        // Only the large one is left at the head, and it goes on its own.
        let large = try spool.peek(limit: 10, maximumBytes: 1_000)
        #expect(large.count == 1 && large[0].event.count > 5_000)
    }
}

@Suite struct SuppressionTests {
    @Test func anErasedPersonLeavesTheSpoolAndDeadLettersAndLaterEventsAreDropped() async throws {
        let path = "/tmp/cairn-spool-\(getpid())-suppress.sqlite"
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        let spool = try Spool(path: path)
        try await RegistryServer().run { storage in
            let suppressions = Suppressions(try spool.suppressedKeys())
            let ingestor = Ingestor(
                spool: spool,
                apps: AppDirectory(storage: storage, spool: spool),
                counters: Counters(),
                suppressions: suppressions
            )
            let records: [JSON] = [
                .string(#"{"type":"track","event":"A","userId":"ada","timestamp":"2024-05-01T00:00:00Z"}"#),
                .string(#"{"type":"track","event":"B","anonymousId":"device-A","timestamp":"2024-05-01T00:00:01Z"}"#),
                .string(#"{"type":"track","event":"C","userId":"bob","timestamp":"2024-05-01T00:00:02Z"}"#),
                .string(#"{"type":"track","userId":"ada"}"#),
            ]
            let first = try await ingestor.submit(["app": "acme", "records": .array(records)])
            #expect(first["accepted"] == .int(3))
            let removed = try await ingestor.suppress(["app_token": "acme", "user_ids": ["ada"], "anonymous_ids": ["device-A"]])
            #expect(removed["spooled_events"] == .int(2))
            #expect(removed["dead_letters"] == .int(1))
            #expect(try spool.depth() == 1)
            let again = try await ingestor.submit(["app": "acme", "records": .array(Array(records.prefix(3)))])
            #expect(again["suppressed"] == .int(2))
            #expect(again["accepted"] == .int(0))
            #expect(again["duplicates"] == .int(1))
            // The suppression outlives a restart.
            #expect(try Spool(path: path).suppressedKeys().count == 2)
        }
    }
}

/// `/metrics` names every app: without a token only this machine may read it; with one, only a
/// scraper that sends it.
@Suite struct MetricsAccessTests {
    @Test func loopbackOnlyWithoutATokenAndTheTokenWithOne() throws {
        let local = try SocketAddress(ipAddress: "127.0.0.1", port: 40_000)
        let localSix = try SocketAddress(ipAddress: "::1", port: 40_000)
        let remote = try SocketAddress(ipAddress: "203.0.113.7", port: 40_000)
        let open = MetricsAccess(token: nil)
        #expect(open.denial(authorization: nil, peer: local) == nil)
        #expect(open.denial(authorization: nil, peer: localSix) == nil)
        #expect(open.denial(authorization: nil, peer: remote)?.code == .metricsLocalOnly)
        #expect(open.denial(authorization: nil, peer: nil)?.status == 403)
        let guarded = MetricsAccess(token: "s3cret")
        #expect(guarded.denial(authorization: "Bearer s3cret", peer: remote) == nil)
        #expect(guarded.denial(authorization: "Bearer wrong", peer: local)?.code == .metricsTokenRequired)
        #expect(guarded.denial(authorization: nil, peer: local)?.status == 401)
    }
}

/// A spool whose files vanish while ingest runs says so, so nothing more is acknowledged into them.
@Suite struct SpoolIdentityTests {
    @Test func removingTheWriteAheadLogOrTheFileIsNoticed() throws {
        for suffix in ["", "-wal"] {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-spool-\(UInt32.random(in: 0...UInt32.max))").path
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let spool = try Spool(path: directory + "/ingest.sqlite")
            #expect(spool.problem == nil)
            try FileManager.default.removeItem(atPath: directory + "/ingest.sqlite" + suffix)
            #expect(spool.problem?.contains("ingest.sqlite\(suffix) was removed") == true, "\(suffix): \(spool.problem ?? "nil")")
        }
    }
}

/// The tests send parameters as a client does, as JSON, decoded as the router decodes them.
extension Ingestor {
    func submit(_ params: JSON) async throws -> JSON { try await submit(try JSONCoding.decode(IngestSubmit.Params.self, from: params)) }
    func replay(_ params: JSON) async throws -> JSON { try await replay(try JSONCoding.decode(IngestDeadLettersReplay.Params.self, from: params)) }
    func suppress(_ params: JSON) async throws -> JSON { try await suppress(try JSONCoding.decode(IngestSuppress.Params.self, from: params)) }
}
