import CairnCore
import CairnPostgres
import CairnStorage
import CairnTesting
import CairnWire
import Foundation
import Logging
import Testing

@testable import CairnExport

/// Continuous export against a real PostgreSQL and a real HTTP endpoint (``TestReceiver``).
@Suite struct ContinuousExportTests {
    static func destination(url: String, maximumAttempts: Int = 4, start: String = "beginning") throws -> ContinuousDestination {
        let settings: JSONObject = [
            "destinations": [
                [
                    "name": "warehouse", "app": "acme", "url": .string(url), "write_key": "k", "start": .string(start), "poll_interval_ms": 20,
                    "retry": [
                        "max_attempts": .int(Int64(maximumAttempts)), "initial_backoff_ms": 5, "max_backoff_ms": 20, "attempt_timeout_ms": 1000,
                    ],
                ]
            ]
        ]
        return try #require(try ContinuousDestination.parse(settings: settings, environment: [:]).first)
    }

    /// `count` tracks of app acme, one second apart from `first`, written in one transaction.
    static func events(_ count: Int, from first: Int = 0) -> [CanonicalEvent] {
        (first..<(first + count)).map { index in
            CanonicalEvent(
                appToken: "acme",
                eventType: .track,
                eventName: "Clicked",
                userId: "u\(index % 50)",
                companyId: nil,
                source: "web-client",
                insertedAt: Timestamp(microseconds: Timestamp(parsing: "2024-05-01T00:00:00Z")!.microseconds + Int64(index) * 1_000_000),
                metadata: ["n": .int(Int64(index))],
                receivedAt: .now(),
                origin: .segment
            )
        }
    }

    static func database() throws -> (conninfo: String, connection: PostgresConnection) {
        let conninfo = try TestPostgres.freshDatabase()
        let connection = try PostgresConnection(conninfo: conninfo)
        try Schema.migrate(connection)
        _ = try AppRegistry.create(["name": "acme"], on: connection)
        return (conninfo, connection)
    }

    /// The messages of every request the receiver got, request by request.
    static func batches(_ receiver: TestReceiver) throws -> [[JSON]] {
        try receiver.requests.map { try JSONParser.parse(try $0.decodedBody())["batch"]?.arrayValue ?? [] }
    }

    static func status(_ connection: PostgresConnection) throws -> JSONObject {
        try #require(try ExportCheckpoints.status(on: connection).first)
    }

    @Test func followsCommitsInOrderAndResumesFromItsCheckpoint() async throws {
        let (conninfo, connection) = try Self.database()
        let writer = EventWriter()
        // Only merges go out as aliases (the anonymous link travels with the events that carry both ids);
        // this one commits with the events (the writer's COMMIT ends the transaction opened here).
        try connection.execute("BEGIN")
        try connection.execute(
            """
            INSERT INTO identity_aliases (app_token, alias_kind, alias_id, user_id, aliased_at, reason)
            VALUES ('acme', 'user', 'u-old', 'u1', '2024-05-01T00:00:10Z', 'merge')
            """
        )
        _ = try writer.write(
            events: Self.events(3000),
            users: .array([]),
            companies: .array([]),
            aliases: [["app_token": "acme", "alias_id": "device-A", "user_id": "u1", "aliased_at": "2024-05-01T00:00:10Z"]],
            on: connection
        )
        let receiver = try await TestReceiver()
        let follower = Follower(
            destination: try Self.destination(url: receiver.url),
            pool: PostgresPool(conninfo: conninfo),
            wakeups: PostgresNotifications(conninfo: conninfo, channels: [], logger: Logger(label: "test")),
            logger: Logger(label: "test")
        )

        #expect(try await follower.followOnce() == .caughtUp)
        var batches = try Self.batches(receiver)
        // Two batches, each within Segment's limits on the bytes sent.
        #expect(batches.count == 2 && batches.map(\.count).reduce(0, +) == 3001)
        #expect(receiver.requests.allSatisfy { $0.body.count <= BatchAssembler.maximumBatchBytes })
        let first = batches.joined().map { $0["messageId"]?.stringValue ?? "" }
        #expect(Set(first).count == 3001)
        // The alias follows the events of its instant (10 s) and precedes the next one.
        let messages = Array(batches.joined())
        let aliasIndex = try #require(messages.firstIndex { $0["type"] == "alias" })
        #expect(messages[aliasIndex - 1]["properties"]?["n"] == 10 && messages[aliasIndex + 1]["properties"]?["n"] == 11)
        var status = try Self.status(connection)
        #expect(status["delivered"] == 3001 && status["batches"] == 2 && status["pending"] == 0)

        // Nothing new: nothing sent.
        #expect(try await follower.followOnce() == .caughtUp)
        #expect(receiver.requests.count == 2)

        // A transaction still open holds back every later commit, so none overtakes it.
        let open = try PostgresConnection(conninfo: conninfo)
        try open.execute("BEGIN")
        try open.execute("SELECT pg_current_xact_id()")
        _ = try writer.write(events: Self.events(7, from: 6000), users: .array([]), companies: .array([]), on: connection)
        for event in Self.events(5, from: 5000) {
            try open.execute(
                """
                INSERT INTO events (app_token, inserted_at, internal_event_id, event_type, event_name, user_id, source, metadata, received_at, origin)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                """,
                [
                    event.appToken, event.insertedAt.description, String(event.internalEventIdBigint), event.eventType.rawValue, event.eventName,
                    event.userId, event.source, JSON.object(event.metadata).serializedString(), event.receivedAt.description, event.origin.rawValue,
                ]
            )
        }
        #expect(try Self.status(connection)["pending"] == 7)
        #expect(try await follower.followOnce() == .caughtUp)
        #expect(receiver.requests.count == 2, "a commit behind an open transaction must wait for it")
        try open.execute("COMMIT")
        #expect(try await follower.followOnce() == .caughtUp)
        batches = try Self.batches(receiver)
        #expect(batches.count == 3)
        // The open transaction's events first: they were stored by the older transaction.
        #expect(batches[2].map { $0["properties"]?["n"]?.intValue ?? -1 } == Array(5000..<5005) + Array(6000..<6007))
        status = try Self.status(connection)
        #expect(status["delivered"] == 3013 && status["pending"] == 0 && status["batches"] == 3)
        #expect(Set(batches.joined().compactMap { $0["messageId"]?.stringValue }).count == 3013)
        try await receiver.shutdown()
    }

    @Test func aNewDestinationCanStartAtNow() async throws {
        let (conninfo, connection) = try Self.database()
        _ = try EventWriter().write(events: Self.events(10), users: .array([]), companies: .array([]), on: connection)
        let receiver = try await TestReceiver()
        let follower = Follower(
            destination: try Self.destination(url: receiver.url, start: "now"),
            pool: PostgresPool(conninfo: conninfo),
            wakeups: PostgresNotifications(conninfo: conninfo, channels: [], logger: Logger(label: "test")),
            logger: Logger(label: "test")
        )
        #expect(try await follower.followOnce() == .caughtUp)
        #expect(receiver.requests.isEmpty)
        _ = try EventWriter().write(events: Self.events(3, from: 100), users: .array([]), companies: .array([]), on: connection)
        #expect(try await follower.followOnce() == .caughtUp)
        let sent = try Self.batches(receiver).joined().map { $0["properties"]?["n"]?.intValue ?? -1 }
        #expect(sent == [100, 101, 102])
        try await receiver.shutdown()
    }

    /// 500 and 429 are retried with the same body; a 400 refuses the batch for good: it is kept
    /// with the response and the follower moves past it; an endpoint that stays unavailable
    /// leaves the checkpoint where it was.
    @Test func appliesSegmentsRetryRules() async throws {
        let (conninfo, connection) = try Self.database()
        _ = try EventWriter().write(events: Self.events(6000), users: .array([]), companies: .array([]), on: connection)
        let receiver = try await TestReceiver(script: [
            .init(status: 500), .init(status: 429, headers: [("Retry-After", "0")]), .init(status: 200),
            .init(status: 400, body: #"{"code":"invalid","message":"bad batch"}"#),
        ])
        let follower = Follower(
            destination: try Self.destination(url: receiver.url),
            pool: PostgresPool(conninfo: conninfo),
            wakeups: PostgresNotifications(conninfo: conninfo, channels: [], logger: Logger(label: "test")),
            logger: Logger(label: "test")
        )
        #expect(try await follower.followOnce() == .caughtUp)
        let requests = receiver.requests
        #expect(requests.count >= 5)
        #expect(requests[0].body == requests[1].body && requests[1].body == requests[2].body)
        #expect(requests.map { $0.header("X-Retry-Count") } == [nil, "1", "2"] + Array(repeating: nil, count: requests.count - 3))
        let batches = try Self.batches(receiver)
        let refused = batches[3].count
        #expect(batches[2...].map(\.count).reduce(0, +) == 6000)
        let status = try Self.status(connection)
        #expect(status["delivered"] == .int(Int64(6000 - refused)) && status["failed"] == .int(Int64(refused)) && status["failed_batches"] == 1)
        #expect(status["pending"] == 0)
        #expect(status["last_error"]?.stringValue?.contains("HTTP 400") == true)
        let kept = try connection.execute("SELECT status, response, messages, body FROM export_failed_batches").rows
        #expect(kept.count == 1)
        #expect(kept.first?[0] == "400" && kept.first?[1]?.contains("bad batch") == true && kept.first?[2] == .some(String(refused)))
        #expect(try JSONParser.parse(Array((kept.first?[3] ?? "").utf8))["batch"]?.arrayValue?.count == refused)
        try await receiver.shutdown()

        // Unavailable: the round of retries ends, the checkpoint stays, the error is recorded.
        _ = try EventWriter().write(events: Self.events(3, from: 9000), users: .array([]), companies: .array([]), on: connection)
        let down = try await TestReceiver(afterScript: .init(status: 503, body: "maintenance"))
        let blocked = Follower(
            destination: try Self.destination(url: down.url, maximumAttempts: 2),
            pool: PostgresPool(conninfo: conninfo),
            wakeups: PostgresNotifications(conninfo: conninfo, channels: [], logger: Logger(label: "test")),
            logger: Logger(label: "test")
        )
        #expect(try await blocked.followOnce() == .unavailable)
        #expect(down.requests.count == 2)
        let after = try Self.status(connection)
        #expect(after["pending"] == 3 && after["delivered"] == status["delivered"])
        #expect(after["last_error"]?.stringValue?.contains("HTTP 503 after 2 attempts: maintenance") == true)
        try await down.shutdown()
    }

    @Test func theExampleStackFileDeclaresAValidDestination() throws {
        let path = #filePath.replacingOccurrences(of: "Tests/CairnExportTests/ContinuousExportTests.swift", with: "compose/continuous-export.json")
        let stack = try JSONParser.parse(Array(try #require(FileManager.default.contents(atPath: path))))
        let export = try #require(stack["services"]?.arrayValue?.first { $0["name"] == "export" })
        let settings = try #require(export["settings"]?.objectValue)
        #expect(throws: ExportError.self) { try ContinuousDestination.parse(settings: settings, environment: [:]) }
        let destinations = try ContinuousDestination.parse(settings: settings, environment: ["SEGMENT_WRITE_KEY": "key"])
        #expect(destinations.map(\.name) == ["segment"])
        #expect(destinations.first?.url == "https://api.segment.io/v1/batch")
        guard case .segment(let endpoint) = destinations.first?.target else {
            Issue.record("the example destination is a Segment endpoint")
            return
        }
        #expect(endpoint.gzip == true)
    }

    @Test func refusesBrokenDestinations() {
        func parse(_ entry: JSON, environment: [String: String] = [:]) throws {
            _ = try ContinuousDestination.parse(settings: ["destinations": [entry]], environment: environment)
        }
        let good: JSONObject = ["name": "w", "app": "acme", "url": "http://127.0.0.1:9/v1/batch", "write_key_env": "W_KEY"]
        #expect(throws: Never.self) { try parse(.object(good), environment: ["W_KEY": "secret"]) }
        #expect(throws: ExportError.self) { try parse(.object(good)) }  // the variable is not set
        var broken = good
        broken["url"] = "ftp://example.com"
        #expect(throws: ExportError.self) { try parse(.object(broken), environment: ["W_KEY": "secret"]) }
        broken = good
        broken["start"] = "yesterday"
        #expect(throws: ExportError.self) { try parse(.object(broken), environment: ["W_KEY": "secret"]) }
        broken = good
        broken["name"] = "no spaces"
        #expect(throws: ExportError.self) { try parse(.object(broken), environment: ["W_KEY": "secret"]) }
        #expect(throws: ExportError.self) {
            _ = try ContinuousDestination.parse(settings: ["destinations": [.object(good), .object(good)]], environment: ["W_KEY": "s"])
        }
    }
}
