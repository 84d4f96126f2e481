import CairnCore
import CairnPostgres
import CairnTesting
import CairnWire
import Foundation
import NIOHTTP1
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The real stack, end to end: supervisor, five services, the CLI, and PostgreSQL.
@Suite(.serialized) struct StackTests {
    let fixtures = TestStack.repositoryRoot + "/Tests/Fixtures"

    /// Events near the 32 KB record limit: a forwarder batch of 5,000 of them would be a frame
    /// far over the 16 MiB limit, which could never be delivered. Batches stop at a byte
    /// budget instead, and everything arrives.
    @Test func largeEventsTravelInBatchesUnderTheFrameLimit() async throws {
        try await TestStack.with { stack in
            #expect(try await stack.cli(["apps", "create", "acme"]).status == 0)
            let padding = String(repeating: "x", count: 30_000)
            var text = ""
            for n in 0..<1_000 {
                text +=
                    #"{"event_type":"track","event_name":"Big","user_id":"u\#(n % 50)","inserted_at":"2024-05-01T00:00:00.\#(String(format: "%06d", n))Z","metadata":{"n":\#(n),"padding":"\#(padding)"}}"#
                text += "\n"
            }
            let path = stack.directory + "/big.jsonl"
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            let ingested = try await stack.cli(["ingest", path, "--app", "acme"])
            #expect(ingested.status == 0 && ingested.stdout.contains("1000 new"), "\(ingested.stdout) \(ingested.stderr)")
            #expect(try await stack.waitForCount(app: "acme", 1_000, timeout: .seconds(60)) == 1_000)
            #expect(!stack.log.contains("frame_too_large"))
        }
    }

    /// Events are the log: with the identity follower held back, ingest still commits, reports
    /// still count every committed event (from the unfolded tail), and `cairn status` and
    /// `/metrics` show the lag; once released it folds everything and the lag is zero.
    @Test func reportsReadTheUnfoldedTailWhileTheFollowerIsHeldBack() async throws {
        try await TestStack.with { stack in
            _ = try await HTTPIngestTests.createApp("tail", on: stack)
            // The follower folds an app only under the app's advisory lock: holding it holds the follower back.
            let holder = try PostgresConnection(conninfo: stack.databaseConninfo)
            let token = try #require(try holder.execute("SELECT token FROM apps WHERE name = 'tail'").firstRow?["token"])
            try holder.execute("SELECT pg_advisory_lock(72617001, hashtext($1))", [token])
            let file = stack.directory + "/tail.jsonl"
            let lines = (0..<40).map { #"{"type":"track","event":"Tapped","userId":"u\#($0 % 8)","timestamp":"2024-05-01T09:\#(10 + $0):00Z"}"# }
            try (lines.joined(separator: "\n") + "\n").write(toFile: file, atomically: true, encoding: .utf8)
            #expect(try await stack.cli(["ingest", file, "--app", "tail"]).status == 0)
            let deadline = ContinuousClock.now + .seconds(30)
            while try await stack.storedCount(app: "tail") < 40, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
            #expect(try await stack.storedCount(app: "tail") == 40)
            // Nothing folded, and the report still sees eight people.
            let uniques = try await stack.call("reporting", "report.uniques", ["app": "tail", "by": "day"])
            #expect(uniques["rows"]?.arrayValue?.first?["people"] == .int(8), "\(uniques)")
            let scrape = try await stack.metricsURL()
            let held = try await HTTPIngestTests.post(scrape, [], method: .GET)
            #expect(held.body.contains(#"cairn_follower_lag_events{service="identity",app="tail"} 40.0"#), "\(held.body)")
            let lagging = try await stack.cli(["status"])
            #expect(lagging.stdout.contains("identity") && lagging.stdout.contains("40"), "\(lagging.stdout)")
            try holder.execute("SELECT pg_advisory_unlock(72617001, hashtext($1))", [token])
            try await stack.waitForFollowers()
            let metrics = try await HTTPIngestTests.post(scrape, [], method: .GET)
            #expect(metrics.body.contains(#"cairn_follower_lag_events{service="identity",app="tail"} 0.0"#), "\(metrics.body)")
            let folded = try await stack.call("identity", "identity.followers")
            let row = folded["followers"]?.arrayValue?.first { $0["app"] == "tail" }
            #expect(row?["lag_events"] == .int(0))
            #expect(row?["folded_events"] == .int(40))
            let after = try await stack.call("reporting", "report.uniques", ["app": "tail", "by": "day"])
            #expect(after["rows"] == uniques["rows"])
        }
    }

    @Test func ingestCountReingestAndExport() async throws {
        try await TestStack.with { stack in
            // Events for an app that does not exist are refused, and kept for replay.
            let unknown = try await stack.cli(["ingest", fixtures + "/userpilot-sample.jsonl", "--app", "acme"])
            #expect(unknown.status == 1)
            #expect(unknown.stderr.contains("no app is named 'acme'"))
            let created = try await stack.cli(["apps", "create", "acme"])
            #expect(created.status == 0, "\(created.stderr)")
            #expect(created.stdout.contains("write key:"))
            let replayed = try await stack.cli(["deadletters", "replay", "--app", "acme"])
            #expect(replayed.stdout.contains("replayed 14 dead letters: 14 new"), "\(replayed.stdout) \(replayed.stderr)")
            #expect(try await stack.waitForCount(app: "acme", 14) == 14)

            let first = try await stack.cli(["ingest", fixtures + "/userpilot-sample.jsonl", "--app", "acme"])
            #expect(first.status == 0, "\(first.stderr)")
            #expect(first.stdout.contains("0 new, 14 duplicates, 0 rejected"))
            #expect(try await stack.waitForCount(app: "acme", 14) == 14)

            try await stack.waitForEmptySpool()
            #expect(try await stack.storedCount(app: "acme") == 14)

            // Bad lines are named by number and reason; the good ones are still taken.
            let mixed = try await stack.cli(["ingest", fixtures + "/userpilot-with-errors.jsonl", "--app", "acme"])
            #expect(mixed.status == 2)
            #expect(mixed.stdout.contains("2 new, 0 duplicates, 3 rejected"))
            #expect(mixed.stderr.contains("userpilot-with-errors.jsonl:2: invalid_json"))
            #expect(mixed.stderr.contains("userpilot-with-errors.jsonl:3: invalid_field: field 'event_type'"))
            #expect(mixed.stderr.contains("userpilot-with-errors.jsonl:5: invalid_field: field 'event_name'"))
            #expect(try await stack.waitForCount(app: "acme", 16) == 16)
            let dead = try await stack.call("ingest", "ingest.deadletters.list", ["app": "acme"])
            #expect(dead["rows"]?.arrayValue?.count == 3)

            // Counts by day through the CLI, as JSON.
            let daily = try await stack.cli([
                "report", "events", "--app", "acme", "--by", "day", "--since", "2024-05-01", "--until", "2024-05-04", "--format", "json",
            ])
            #expect(daily.status == 0, "\(daily.stderr)")
            let rows = try JSONParser.parse(daily.stdout)["rows"]?.arrayValue ?? []
            #expect(rows.map { $0["events"] } == [.int(8), .int(3), .int(2)])

            // Export: the batch files parse and carry every stored event exactly once.
            let out = stack.directory + "/segment"
            let export = try await stack.cli(["export", "segment", "--app", "acme", "--out", out])
            #expect(export.status == 0, "\(export.stderr)")
            let jsonl = stack.directory + "/events.jsonl"
            #expect(try await stack.cli(["export", "jsonl", "--app", "acme", "--out", jsonl]).status == 0)
            let canonical = try String(contentsOfFile: jsonl, encoding: .utf8).split(separator: "\n").map { try JSONParser.parse(String($0)) }
            #expect(canonical.count == 16)
            var messageIds: [String] = []
            for file in try FileManager.default.contentsOfDirectory(atPath: out).sorted() {
                let body = try JSONParser.parse(Array(try #require(FileManager.default.contents(atPath: out + "/" + file))))
                for message in body["batch"]?.arrayValue ?? [] {
                    messageIds.append(try #require(message["messageId"]?.stringValue))
                    #expect(message["userId"] != nil || message["anonymousId"] != nil)
                }
            }
            #expect(messageIds.count == 16)
            #expect(Set(messageIds) == Set(canonical.map { "cairn-acme-" + ($0["internal_event_id"]?.stringValue ?? "") }))

            let status = try await stack.cli(["status"])
            #expect(status.status == 0)
            for service in ["postgres", "storage", "identity", "ingest", "reporting", "export"] {
                #expect(status.stdout.contains(service))
            }
        }
    }

    /// `cairn export segment --to` against a real HTTP endpoint: Basic auth with the write
    /// key, gzip, every stored event once; a refused batch is named and the exit status is 2.
    @Test func exportsToASegmentEndpointThroughTheCLI() async throws {
        try await TestStack.with { stack in
            #expect(try await stack.cli(["apps", "create", "acme"]).status == 0)
            #expect(try await stack.cli(["ingest", fixtures + "/userpilot-sample.jsonl", "--app", "acme"]).status == 0)
            #expect(try await stack.waitForCount(app: "acme", 14) == 14)
            try await stack.waitForEmptySpool()

            let receiver = try await TestReceiver()
            let sent = try await stack.cli(["export", "segment", "--app", "acme", "--to", receiver.url, "--write-key", "secret-key", "--gzip"])
            try await receiver.shutdown()
            #expect(sent.status == 0, "\(sent.stderr)")
            let requests = receiver.requests
            #expect(requests.count == 1)
            #expect(requests.first?.header("Authorization") == "Basic " + Data("secret-key:".utf8).base64EncodedString())
            #expect(requests.first?.header("Content-Encoding") == "gzip")
            let batch = try JSONParser.parse(try #require(requests.first).decodedBody())["batch"]?.arrayValue ?? []
            let events = batch.filter { $0["type"] != "alias" }
            #expect(events.count == 14)
            #expect(Set(events.compactMap { $0["messageId"]?.stringValue }).count == 14)
            #expect(sent.stdout.contains("delivered \(batch.count) of \(batch.count) messages in 1 batches"), "\(sent.stdout)")

            let refusing = try await TestReceiver(script: [.init(status: 400, body: #"{"code":"invalid","message":"rejected here"}"#)])
            let refused = try await stack.cli(["export", "segment", "--app", "acme", "--to", refusing.url, "--write-key", "k"])
            try await refusing.shutdown()
            #expect(refused.status == 2)
            #expect(refused.stderr.contains("batch 1 (\(batch.count) messages) failed after 1 attempts: HTTP 400: "), "\(refused.stderr)")
            #expect(refused.stderr.contains("rejected here"))
            #expect(refusing.requests.count == 1)

            let status = try await stack.cli(["status"])
            #expect(status.stdout.contains("http_exports=2"))
            #expect(!status.stdout.contains("secret-key"))
        }
    }

    /// Events exported as Segment batches and ingested again as Segment messages into a
    /// second app answer the same questions: the same people per day, the same funnel, the
    /// same guide engagement.
    @Test func aSegmentExportRoundTripsIntoTheSameReportNumbers() async throws {
        try await TestStack.with { stack in
            for app in ["origin", "copy"] { #expect(try await stack.cli(["apps", "create", app]).status == 0) }
            for fixture in ["identity.jsonl", "userguiding.jsonl", "segment.jsonl"] {
                #expect(try await stack.cli(["ingest", fixtures + "/" + fixture, "--app", "origin"]).status == 0)
            }
            try await stack.waitForEmptySpool()
            let out = stack.directory + "/round-trip"
            let exported = try await stack.cli(["export", "segment", "--app", "origin", "--out", out])
            #expect(exported.status == 0, "\(exported.stderr)")
            for file in try FileManager.default.contentsOfDirectory(atPath: out).sorted() {
                let ingested = try await stack.cli(["ingest", out + "/" + file, "--app", "copy", "--format", "segment"])
                #expect(ingested.status == 0, "\(ingested.stdout) \(ingested.stderr)")
            }
            try await stack.waitForEmptySpool()
            let questions: [[String]] = [
                ["report", "uniques", "--by", "day"],
                ["report", "funnel", "--step", "Signup Started", "--step", "Signup Completed"],
                ["report", "engagement", "--entity", "flow"],
                ["report", "users", "--did", "Guide Started"],
            ]
            for question in questions {
                let original = try await stack.cli(question + ["--app", "origin", "--format", "json"])
                let copy = try await stack.cli(question + ["--app", "copy", "--format", "json"])
                #expect(original.status == 0 && copy.status == 0, "\(question): \(original.stderr) \(copy.stderr)")
                #expect(try JSONParser.parse(original.stdout)["rows"]?.arrayValue?.isEmpty == false, "\(question) has no rows")
                #expect(copy.stdout == original.stdout, "\(question):\n\(original.stdout)\n\(copy.stdout)")
            }
            // A refusal names the flag the user typed (`--step`), not the method's field (`steps`).
            let oneStep = try await stack.cli(["report", "funnel", "--app", "origin", "--step", "Signup Started"])
            #expect(oneStep.status != 0 && oneStep.stderr.contains("--step must name at least two events"), "\(oneStep.stderr)")
        }
    }

    /// A destination declared in the stack file follows the events as they are committed.
    /// SIGKILLed mid-run, the export service is restarted and resumes from its checkpoint:
    /// every event arrives, and the only repeats are the messages of the batch that was in
    /// flight, sent again with the same messageIds.
    @Test func continuousExportSurvivesSIGKILLRepeatingOnlyTheBatchInFlight() async throws {
        // A slow endpoint, so that a batch is in flight when the kill lands.
        let receiver = try await TestReceiver(afterScript: .init(status: 200, delay: .milliseconds(250)))
        let settings: JSON = [
            "destinations": [
                [
                    "name": "warehouse", "app": "load", "url": .string(receiver.url), "write_key_env": "CAIRN_TEST_WRITE_KEY",
                    "gzip": true, "poll_interval_ms": 100,
                ]
            ]
        ]
        let key = "continuous-secret-\(UInt32.random(in: 0...UInt32.max))"
        try await TestStack.with(environment: ["CAIRN_TEST_WRITE_KEY": key], stack: try TestStack.defaultStack(settings: settings, for: "export")) {
            stack in
            let total = 12_000
            let file = stack.directory + "/load.jsonl"
            try writeGeneratedEvents(count: total, to: file, app: "load")
            #expect(try await stack.cli(["apps", "create", "load"]).status == 0)
            let ingested = try await stack.cli(["ingest", file, "--app", "load"])
            #expect(ingested.status == 0, "\(ingested.stderr)")

            func messageIds(_ request: TestReceiver.Request) throws -> [String] {
                (try JSONParser.parse(try request.decodedBody())["batch"]?.arrayValue ?? []).compactMap { $0["messageId"]?.stringValue }
            }
            var deadline = ContinuousClock.now + .seconds(60)
            while receiver.requests.count < 2, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
            let exportPID = try #require(try await stack.servicePID("export"))
            #expect(kill(exportPID, SIGKILL) == 0)
            let receivedAtKill = Set(try receiver.requests.flatMap(messageIds))
            #expect(!receivedAtKill.isEmpty && receivedAtKill.count < total, "the kill should land mid-run")

            deadline = ContinuousClock.now + .seconds(120)
            while Set(try receiver.requests.flatMap(messageIds)).count < total, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
            }
            let requests = receiver.requests
            let batches = try requests.map(messageIds)
            let all = batches.flatMap { $0 }
            #expect(Set(all).count == total, "every event arrives")
            var seen: [String: Int] = [:]
            for id in all { seen[id, default: 0] += 1 }
            let repeated = Set(seen.filter { $0.value > 1 }.keys)
            #expect(seen.values.allSatisfy { $0 <= 2 })
            // Every repeat belongs to one batch, and is sent again in one later batch.
            #expect(repeated.isEmpty || batches.contains { repeated.isSubset(of: Set($0)) }, "repeats: \(repeated.count)")
            #expect(repeated.count <= 2_500, "at most one batch repeats")
            #expect(requests.allSatisfy { $0.header("Authorization") == "Basic " + Data((key + ":").utf8).base64EncodedString() })

            let supervisor = try await stack.call("supervisor", "supervisor.status")
            let export = supervisor["services"]?.arrayValue?.first { $0["name"] == "export" }
            #expect((export?["restarts"]?.intValue ?? 0) >= 1 && export?["pid"]?.intValue != Int64(exportPID))

            // The checkpoint counted each message once, and nothing is left to send.
            var row: JSON?
            deadline = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < deadline {
                let status = try await stack.cli(["export", "status", "--format", "json"])
                row = try JSONParser.parse(Array(status.stdout.utf8))["rows"]?.arrayValue?.first
                if row?["pending"] == 0 && row?["delivered"] == .int(Int64(total)) { break }
                try await Task.sleep(for: .milliseconds(200))
            }
            #expect(row?["destination"] == "warehouse" && row?["state"] == "following")
            #expect(
                row?["pending"] == 0 && row?["delivered"] == .int(Int64(total)) && row?["failed"] == 0,
                "\(row.map { $0.serializedString() } ?? "no status")"
            )
            let table = try await stack.cli(["export", "status"])
            #expect(table.stdout.contains("warehouse (app load)") && table.stdout.contains("pending     0 messages"), "\(table.stdout)")
            #expect(!stack.log.contains(key), "the write key must never be logged")
        }
        try await receiver.shutdown()
    }

    /// A service that refuses its configuration (here a destination whose write-key variable
    /// is not set) stops the start-up at once with its reason, instead of being restarted
    /// until the health deadline.
    @Test func aRefusedConfigurationStopsTheStartAtOnce() async throws {
        let settings: JSON = [
            "destinations": [["name": "w", "app": "acme", "url": "http://127.0.0.1:9/v1/batch", "write_key_env": "CAIRN_TEST_UNSET_KEY"]]
        ]
        let stack = try await TestStack(stack: try TestStack.defaultStack(settings: settings, for: "export"), waitUntilRunning: false)
        let started = ContinuousClock.now
        try await stack.waitForSupervisorExit(within: .seconds(50))
        #expect(!stack.supervisor.isRunning && stack.supervisor.terminationStatus != 0)
        #expect(ContinuousClock.now - started < .seconds(30), "well before the 60 s health timeout")
        #expect(stack.log.contains("service 'export' refused its configuration"))
        #expect(stack.log.contains("write_key_env names CAIRN_TEST_UNSET_KEY"))
        try await stack.stop()
    }

    /// A second supervisor started on a running stack's data directory is refused at once, and
    /// the running stack keeps its services (it used to take them for a dead supervisor's
    /// leftovers and stop them, PostgreSQL included).
    @Test func aSecondSupervisorOnTheSameDirectoryIsRefused() async throws {
        try await TestStack.with { stack in
            let before = try #require(try await stack.servicePID("storage"))
            var environment = ProcessInfo.processInfo.environment
            environment["CAIRN_DATA_DIR"] = stack.directory + "/var"
            environment.removeValue(forKey: "CAIRN_RUN_DIR")
            for variable in ["CAIRN_HTTP_ADDR", "CAIRN_CONSOLE_ADDR", "CAIRN_METRICS_ADDR"] { environment[variable] = "127.0.0.1:0" }
            /// Another supervisor with `arguments`, given 30 s to give up: its exit status and what it said.
            func another(_ arguments: [String]) async throws -> (status: Int32, said: String) {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: stack.binDirectory + "/cairn-supervisor")
                process.arguments = ["--stack", TestStack.repositoryRoot + "/compose/default.json"] + arguments
                process.environment = environment
                let output = Pipe()
                process.standardOutput = output
                process.standardError = output
                try process.run()
                let deadline = ContinuousClock.now + .seconds(30)
                while process.isRunning, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
                if process.isRunning { kill(process.processIdentifier, SIGKILL) }
                process.waitUntilExit()
                return (process.terminationStatus, String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
            }
            let second = try await another([])
            #expect(second.status != 0, "\(second.said)")
            #expect(
                second.said.contains("another supervisor (pid \(stack.supervisor.processIdentifier)) runs a stack with the data directory"),
                "\(second.said)"
            )
            #expect(try await stack.servicePID("storage") == before)

            // Another data directory with the same socket directory: refused too.
            let third = try await another(["--data-dir", stack.directory + "/other", "--run-dir", stack.runDirectory])
            #expect(third.status != 0 && third.said.contains("with the socket directory \(stack.runDirectory)"), "\(third.said)")
            #expect(try await stack.servicePID("storage") == before)
            #expect(!stack.log.contains("left running by a supervisor that died"))
            #expect(try await stack.cli(["status"]).status == 0)

            // No child holds a socket of the supervisor's (its listeners would outlive it).
            func sockets(_ pid: pid_t) -> Set<String> {
                let directory = "/proc/\(pid)/fd"
                let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
                return Set(
                    entries.compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: directory + "/" + $0) }.filter {
                        $0.hasPrefix("socket:")
                    }
                )
            }
            let own = sockets(stack.supervisor.processIdentifier)
            #expect(!own.isEmpty)
            let status = try await stack.call("supervisor", "supervisor.status")
            for service in status["services"]?.arrayValue ?? [] {
                guard let pid = service["pid"]?.intValue else { continue }
                #expect(sockets(pid_t(pid)).isDisjoint(with: own), "\(service["name"] ?? .null) holds a socket of the supervisor's")
            }
        }
    }

    /// An HTTP address another process holds is a configuration error too.
    @Test func anHTTPAddressInUseStopsTheStartAtOnce() async throws {
        let holder = try await TestReceiver()
        let stack = try await TestStack(environment: ["CAIRN_HTTP_ADDR": "127.0.0.1:\(holder.port)"], waitUntilRunning: false)
        let started = ContinuousClock.now
        try await stack.waitForSupervisorExit(within: .seconds(50))
        try await holder.shutdown()
        #expect(!stack.supervisor.isRunning && stack.supervisor.terminationStatus != 0)
        #expect(ContinuousClock.now - started < .seconds(30))
        #expect(
            stack.log.contains("service 'ingest' refused its configuration")
                && stack.log.contains("the HTTP address 127.0.0.1:\(holder.port) is in use"),
            "\(stack.log.suffix(2000))"
        )
        try await stack.stop()
    }

    @Test func killedStorageIsRestartedWithNothingLostOrDoubled() async throws {
        try await TestStack.with { stack in
            let file = stack.directory + "/load.jsonl"
            let total = 30_000
            try writeGeneratedEvents(count: total, to: file, app: "load")
            #expect(try await stack.cli(["apps", "create", "load"]).status == 0)
            let storagePID = try #require(try await stack.servicePID("storage"))
            async let ingest = stack.cli(["ingest", file, "--app", "load", "--batch-size", "500"])
            // Kill storage once it has committed part of the stream.
            let deadline = ContinuousClock.now + .seconds(60)
            while ContinuousClock.now < deadline {
                let inserted = (try? await stack.call("storage", "system.status"))?["counters"]?["events_inserted"]?.intValue ?? 0
                if inserted > 0 { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(kill(storagePID, SIGKILL) == 0)
            let result = try await ingest
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.contains("\(total) new"))
            #expect(try await stack.waitForCount(app: "load", Int64(total)) == Int64(total))

            let connection = try PostgresConnection(conninfo: stack.databaseConninfo)
            let counts = try connection.execute("SELECT count(*), count(DISTINCT internal_event_id) FROM events WHERE app_token = 'load'").rows[0]
            #expect(counts == [String(total), String(total)])

            let supervisor = try await stack.call("supervisor", "supervisor.status")
            let storage = supervisor["services"]?.arrayValue?.first { $0["name"] == "storage" }
            #expect((storage?["restarts"]?.intValue ?? 0) >= 1)
            #expect(storage?["pid"]?.intValue != Int64(storagePID))
            #expect(stack.log.contains("service exited unexpectedly; restarting"))
        }
    }

    @Test func garbageOnEverySocketLeavesEveryServiceUp() async throws {
        try await TestStack.with { stack in
            let services = ["supervisor", "storage", "identity", "ingest", "reporting", "export"]
            var pids: [String: Int64] = [:]
            for service in services {
                pids[service] = try await stack.call(service, "system.status")["pid"]?.intValue
            }
            var generator = SystemRandomNumberGenerator()
            for service in services {
                let path = RunDirectory.socketPath(stack.runDirectory, service: service)
                for _ in 0..<10 {
                    let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
                    var address = sockaddr_un()
                    address.sun_family = sa_family_t(AF_UNIX)
                    withUnsafeMutableBytes(of: &address.sun_path) { buffer in
                        for (index, byte) in path.utf8.enumerated() { buffer[index] = byte }
                    }
                    _ = withUnsafePointer(to: &address) {
                        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
                    }
                    let garbage = (0..<Int.random(in: 1...2000, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
                    _ = garbage.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                    close(descriptor)
                }
                // A well-formed frame with hostile content.
                _ = try? await stack.call(service, "ingest.submit", ["app": "x", "records": [.string(String(repeating: "[", count: 10_000))]])
            }
            for service in services {
                let health = try await stack.call(service, "system.health")
                #expect(health["status"] == "ok", "\(service)")
                #expect(try await stack.call(service, "system.status")["pid"]?.intValue == pids[service], "\(service) was restarted")
            }
        }
    }

    @Test func anUnreachableDatabaseIsOneClearMessage() async throws {
        let stack = try await TestStack(
            environment: ["CAIRN_DATABASE_URL": "host=/nonexistent/cairn port=5999 dbname=cairn user=cairn connect_timeout=2"],
            waitUntilRunning: false
        )
        let deadline = ContinuousClock.now + .seconds(30)
        while stack.supervisor.isRunning, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
        #expect(!stack.supervisor.isRunning)
        #expect(stack.supervisor.terminationStatus != 0)
        let log = stack.log
        #expect(log.contains("CAIRN_DATABASE_URL is set but PostgreSQL is unreachable"))
        #expect(!log.contains("Fatal error"))
        #expect(log.split(separator: "\n").filter { $0.contains("critical") }.count == 1)
        try await stack.stop()
    }
}

extension TestStack {
    /// Starts a stack, runs `body`, and checks the stack then stops cleanly (exit 0). On
    /// failure the stack is stopped too, and its files are kept for a look at the logs.
    static func with(environment: [String: String] = [:], stack file: JSON? = nil, _ body: (TestStack) async throws -> Void) async throws {
        let stack = try await TestStack(environment: environment, stack: file)
        do {
            try await body(stack)
        } catch {
            _ = try? await stack.stop(removingFiles: false)
            throw error
        }
        #expect(try await stack.stop() == 0, "the supervisor should exit 0 after SIGTERM")
    }
}
