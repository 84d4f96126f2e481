import CairnCore
import CairnTesting
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Triggers end to end (README, "Triggers"): the real stack, the CLI, and a local receiver.
@Suite(.serialized) struct TriggerTests {
    /// Segment messages for `cairn ingest`.
    /// A track whose `ref` property names it: the exported Segment form carries Cairn's own
    /// messageId, so tests tell deliveries apart by `ref`.
    static func track(_ user: String, _ event: String, at time: String, properties: JSON = [:], id: String) -> JSON {
        var merged = properties.objectValue ?? JSONObject()
        merged["ref"] = .string(id)
        return [
            "type": "track", "userId": .string(user), "event": .string(event), "properties": .object(merged), "timestamp": .string(time),
            "messageId": .string(id),
        ]
    }

    static func ref(_ request: TestReceiver.Request) throws -> String {
        try JSONParser.parse(request.body)["event"]?["properties"]?["ref"]?.stringValue ?? ""
    }

    static func identify(_ user: String, traits: JSON, at time: String, id: String) -> JSON {
        ["type": "identify", "userId": .string(user), "traits": traits, "timestamp": .string(time), "messageId": .string(id)]
    }

    static func ingest(_ records: [JSON], on stack: TestStack, app: String = "shop") async throws {
        let path = stack.directory + "/records-\(UInt32.random(in: 0...UInt32.max)).jsonl"
        try records.map { $0.serializedString() }.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        let result = try await stack.cli(["ingest", path, "--app", app])
        #expect(result.status == 0, "\(result.stdout) \(result.stderr)")
    }

    /// Polls until `receiver` has at least `count` requests, or `limit` passes.
    static func waitForRequests(_ receiver: TestReceiver, _ count: Int, within limit: Duration = .seconds(30)) async throws -> [TestReceiver.Request]
    {
        let deadline = ContinuousClock.now + limit
        while receiver.requests.count < count, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        return receiver.requests
    }

    static func status(_ stack: TestStack, _ trigger: String) async throws -> JSON {
        let result = try await stack.cli(["triggers", "status", "--format", "json"])
        return (try JSONParser.parse(result.stdout)["rows"]?.arrayValue ?? []).first { $0["trigger"]?.stringValue == trigger } ?? .null
    }

    /// The trigger's status once `done` holds, or the last one seen after `limit`: the counters
    /// move when a page's deliveries are recorded, a moment after the receiver has them.
    static func status(_ stack: TestStack, _ trigger: String, when done: (JSON) -> Bool, within limit: Duration = .seconds(30)) async throws -> JSON {
        let deadline = ContinuousClock.now + limit
        var status = try await Self.status(stack, trigger)
        while !done(status), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
            status = try await Self.status(stack, trigger)
        }
        return status
    }

    @Test func matchesOnNameAttributesAndTraitsAndSignsTheBody() async throws {
        let receiver = try await TestReceiver()
        try await TestStack.with { stack in
            #expect(try await stack.cli(["apps", "create", "shop"]).status == 0)
            try await Self.ingest(
                [
                    Self.identify("ann", traits: ["plan": "pro", "name": "Ann"], at: "2024-05-01T09:00:00Z", id: "i1"),
                    Self.identify("bob", traits: ["plan": "free"], at: "2024-05-01T09:00:00Z", id: "i2"),
                ],
                on: stack
            )
            try await stack.waitForEmptySpool()
            let secret = "whsec-\(UInt32.random(in: 0...UInt32.max))"
            let added = try await stack.cli([
                "triggers", "add", "--app", "shop", "--name", "big-cart", "--event", "Added to cart",
                "--where", "price > 100", "--trait", "plan = 'pro'", "--url", receiver.url + "/hooks/cart", "--secret", secret,
            ])
            #expect(added.status == 0, "\(added.stderr)")
            // No 'Added to cart' has been stored yet: accepted, with a warning.
            #expect(added.stderr.contains("warning: --event 'Added to cart'"), "\(added.stderr)")

            try await Self.ingest(
                [
                    Self.track("ann", "Added to cart", at: "2024-05-01T10:00:00Z", properties: ["price": 150, "sku": "lamp"], id: "match"),
                    Self.track("ann", "Added to cart", at: "2024-05-01T10:01:00Z", properties: ["price": 50], id: "too-cheap"),
                    Self.track("bob", "Added to cart", at: "2024-05-01T10:02:00Z", properties: ["price": 500], id: "free-plan"),
                    Self.track("ann", "Viewed Product", at: "2024-05-01T10:03:00Z", properties: ["price": 900], id: "other-event"),
                ],
                on: stack
            )
            let requests = try await Self.waitForRequests(receiver, 1)
            // The others must not follow: give the trigger time to have read them all.
            try await stack.waitForEmptySpool()
            try await Task.sleep(for: .seconds(2))
            #expect(receiver.requests.count == 1)
            let request = try #require(requests.first)
            #expect(request.uri == "/hooks/cart")
            let body = try JSONParser.parse(request.body)
            #expect(body["trigger"] == "big-cart")
            #expect(body["app"] == "shop")
            #expect(body["event"]?["event"] == "Added to cart")
            #expect(body["event"]?["properties"]?["ref"] == "match")
            #expect(body["event"]?["properties"]?["price"] == .int(150))
            #expect(body["user"]?["user_id"] == "ann")
            #expect(body["user"]?["traits"]?["plan"] == "pro")
            #expect(request.header("X-Cairn-Trigger") == "big-cart")

            // The signature: t=<seconds>,v1=HMAC-SHA256(secret, "<t>.<body>"), as a receiver checks it.
            let signature = try #require(request.header("X-Cairn-Signature"))
            let parts = Dictionary(
                uniqueKeysWithValues: signature.split(separator: ",").compactMap { part -> (String, String)? in
                    let pair = part.split(separator: "=", maxSplits: 1)
                    return pair.count == 2 ? (String(pair[0]), String(pair[1])) : nil
                }
            )
            let timestamp = try #require(parts["t"].flatMap { Int64($0) })
            #expect(abs(timestamp - Timestamp.now().microseconds / 1_000_000) < 60, "a fresh timestamp")
            let expected = SHA256.hexString(SHA256.hmac(key: Array(secret.utf8), Array("\(timestamp).".utf8) + request.body))
            #expect(parts["v1"] == expected)
            let forged = SHA256.hexString(SHA256.hmac(key: Array("wrong".utf8), Array("\(timestamp).".utf8) + request.body))
            #expect(parts["v1"] != forged)
            let tampered = SHA256.hexString(SHA256.hmac(key: Array(secret.utf8), Array("\(timestamp).".utf8) + request.body + [0x20]))
            #expect(parts["v1"] != tampered)

            let status = try await Self.status(stack, "big-cart") { $0["delivered"] == .int(1) }
            #expect(status["matched"] == .int(1) && status["delivered"] == .int(1) && status["failed"] == .int(0), "\(status)")
            #expect(status["state"] == "active")

            // A dry run answers as the trigger does, and shows the body.
            let matching = stack.directory + "/matching.json"
            try #"{"type": "track", "userId": "ann", "event": "Added to cart", "properties": {"price": 120}}"#.write(
                toFile: matching,
                atomically: true,
                encoding: .utf8
            )
            let dry = try await stack.cli(["triggers", "test", "--name", "big-cart", "--event-file", matching])
            #expect(dry.status == 0 && dry.stdout.contains("the event matches"), "\(dry.stdout) \(dry.stderr)")
            #expect(dry.stdout.contains("X-Cairn-Signature: t=") && dry.stdout.contains(#""price":120"#), "\(dry.stdout)")
            let cheap = stack.directory + "/cheap.json"
            try #"{"type": "track", "userId": "bob", "event": "Added to cart", "properties": {"price": 20}}"#.write(
                toFile: cheap,
                atomically: true,
                encoding: .utf8
            )
            let miss = try await stack.cli(["triggers", "test", "--name", "big-cart", "--event-file", cheap])
            #expect(miss.status == 3 && miss.stdout.contains("does not match"))
            #expect(miss.stdout.contains("--where 'price > 100'") && miss.stdout.contains("--trait 'plan = 'pro''"), "\(miss.stdout)")

            // The secret is only ever said to be set.
            let listed = try await stack.cli(["triggers", "list", "--format", "json"])
            #expect(listed.stdout.contains(#""secret":"set""#) && !listed.stdout.contains(secret))
            #expect(!stack.log.contains(secret))
        }
        try await receiver.shutdown()
    }

    @Test func badDefinitionsAreRefusedWithThePositionAndTheReason() async throws {
        try await TestStack.with { stack in
            #expect(try await stack.cli(["apps", "create", "shop"]).status == 0)
            func add(_ extra: [String]) async throws -> (status: Int32, stdout: String, stderr: String) {
                try await stack.cli(["triggers", "add", "--app", "shop", "--name", "t1", "--event", "Signed up"] + extra)
            }
            let condition = try await add(["--where", "price >> 3", "--url", "http://127.0.0.1:9/x"])
            #expect(condition.status != 0 && condition.stderr.contains("--where") && condition.stderr.contains("position"), "\(condition.stderr)")
            let scheme = try await add(["--url", "ftp://example.com/hook"])
            #expect(
                scheme.status != 0 && scheme.stderr.contains("at character 1") && scheme.stderr.contains("'ftp' is not http or https"),
                "\(scheme.stderr)"
            )
            let port = try await add(["--url", "http://example.com:99999/hook"])
            #expect(port.status != 0 && port.stderr.contains("at character 20") && port.stderr.contains("port"), "\(port.stderr)")
            let space = try await add(["--url", "http://example.com/a hook"])
            #expect(space.status != 0 && space.stderr.contains("at character 21"), "\(space.stderr)")
            let window = try await add(["--url", "http://127.0.0.1:9/x", "--unless", "Purchase"])
            #expect(window.status != 0 && window.stderr.contains("--unless and --within go together"))
            let fine = try await add(["--url", "http://127.0.0.1:9/x"])
            #expect(fine.status == 0, "\(fine.stderr)")
            let twice = try await add(["--url", "http://127.0.0.1:9/x"])
            #expect(twice.status != 0 && twice.stderr.contains("already has a trigger named 't1'"))
            #expect(try await stack.cli(["triggers", "remove", "--name", "t1"]).status == 0)
            #expect(try await stack.cli(["triggers", "remove", "--name", "t1"]).stderr.contains("no trigger is named 't1'"))
        }
    }

    /// Retried with backoff while the receiver fails; parked after the last attempt, re-sent by
    /// `retry`; a receiver that hangs is timed out; a 410 Gone disables the trigger.
    @Test func failingReceiversRetryParkTimeOutAndDisable() async throws {
        // Two failures, then success: delivered on the third attempt.
        let flaky = try await TestReceiver(script: [.init(status: 503), .init(status: 500)])
        // Fails twice: with two attempts the delivery is parked; then answers 200.
        let down = try await TestReceiver(script: [.init(status: 502), .init(status: 502)])
        let hanging = try await TestReceiver(afterScript: .init(status: 200, delay: .seconds(5)))
        let gone = try await TestReceiver(script: [.init(status: 410, body: "unsubscribed")])
        try await TestStack.with { stack in
            #expect(try await stack.cli(["apps", "create", "shop"]).status == 0)
            for (name, url, extra) in [
                ("flaky", flaky.url, ["--max-attempts", "5"]), ("down", down.url, ["--max-attempts", "2"]),
                ("hanging", hanging.url, ["--max-attempts", "1", "--timeout", "500ms"]), ("gone", gone.url, [String]()),
            ] {
                let added = try await stack.cli(["triggers", "add", "--app", "shop", "--name", name, "--event", "Signed up", "--url", url] + extra)
                #expect(added.status == 0, "\(added.stderr)")
            }
            try await Self.ingest([Self.track("ann", "Signed up", at: "2024-05-01T10:00:00Z", id: "s1")], on: stack)

            let flakyRequests = try await Self.waitForRequests(flaky, 3)
            #expect(flakyRequests.count == 3)
            #expect(flakyRequests.map { $0.header("X-Cairn-Attempt") } == ["1", "2", "3"])
            #expect(Set(flakyRequests.compactMap { $0.header("X-Cairn-Delivery") }).count == 1, "one delivery id across attempts")

            // Parked after two attempts, then re-sent by retry.
            var deadline = ContinuousClock.now + .seconds(30)
            while try await Self.status(stack, "down")["parked"] != .int(1), ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
            }
            let parked = try await Self.status(stack, "down")
            #expect(parked["failed"] == .int(1) && parked["parked"] == .int(1), "\(parked)")
            #expect(parked["last_error"]?.stringValue?.contains("HTTP 502 after 2 attempts") == true, "\(parked)")
            let listed = try await stack.cli(["triggers", "retry", "--name", "down", "--list"])
            #expect(listed.stdout.contains("failed"), "\(listed.stdout)")
            let retried = try await stack.cli(["triggers", "retry", "--name", "down"])
            #expect(retried.stdout.contains("1 parked deliveries queued"), "\(retried.stdout)")
            _ = try await Self.waitForRequests(down, 3)
            deadline = ContinuousClock.now + .seconds(30)
            while try await Self.status(stack, "down")["parked"] != .int(0), ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(try await Self.status(stack, "down")["delivered"] == .int(1))

            // A receiver that hangs is cut off at the timeout, and the delivery parked.
            deadline = ContinuousClock.now + .seconds(30)
            while try await Self.status(stack, "hanging")["parked"] != .int(1), ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
            }
            let hung = try await Self.status(stack, "hanging")
            #expect(hung["parked"] == .int(1) && hung["last_error"]?.stringValue?.contains("no response") == true, "\(hung)")

            // 410 Gone: disabled, and said so; later events wait for a resume.
            deadline = ContinuousClock.now + .seconds(30)
            while try await Self.status(stack, "gone")["state"] != "disabled", ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
            }
            let disabled = try await Self.status(stack, "gone")
            #expect(disabled["state"] == "disabled" && disabled["state_reason"]?.stringValue?.contains("410 Gone") == true, "\(disabled)")
            try await Self.ingest([Self.track("bob", "Signed up", at: "2024-05-01T11:00:00Z", id: "s2")], on: stack)
            try await stack.waitForEmptySpool()
            try await Task.sleep(for: .seconds(2))
            #expect(gone.requests.count == 1, "a disabled trigger sends nothing")
            let resumed = try await stack.cli(["triggers", "retry", "--name", "gone"])
            #expect(resumed.stdout.contains("1 parked deliveries queued") && resumed.stdout.contains("active again"), "\(resumed.stdout)")
            // The parked 410 delivery and bob's, which waited behind the checkpoint.
            let goneRequests = try await Self.waitForRequests(gone, 3)
            let events = Set(try goneRequests.dropFirst().map(Self.ref))
            #expect(events == ["s1", "s2"], "\(events)")
        }
        for receiver in [flaky, down, hanging, gone] { try await receiver.shutdown() }
    }

    /// SIGKILL of the export service mid-delivery: the trigger resumes from its checkpoint
    /// and every matching event is delivered; repeats carry the same delivery id.
    @Test func survivesSIGKILLOfExportMidDelivery() async throws {
        // 300 ms a delivery: about 3 s for all, so the kill lands mid-delivery on a loaded machine too.
        let receiver = try await TestReceiver(afterScript: .init(status: 200, delay: .milliseconds(300)))
        try await TestStack.with { stack in
            #expect(try await stack.cli(["apps", "create", "shop"]).status == 0)
            #expect(
                try await stack.cli(["triggers", "add", "--app", "shop", "--name", "all", "--event", "Clicked *", "--url", receiver.url]).status == 0
            )
            let total = 60
            try await Self.ingest(
                (0..<total).map { n in
                    Self.track("user-\(n % 7)", "Clicked \(n % 3)", at: "2024-05-01T10:00:\(String(format: "%02d", n))Z", id: "c\(n)")
                },
                on: stack
            )
            _ = try await Self.waitForRequests(receiver, 5)
            let pid = try #require(try await stack.servicePID("export"))
            #expect(kill(pid, SIGKILL) == 0)
            #expect(receiver.requests.count < total, "the kill should land mid-delivery")
            // A request the kill cut short reached the receiver without its whole body: not a delivery.
            func whole() -> [TestReceiver.Request] { receiver.requests.filter { (try? JSONParser.parse($0.body)) != nil } }
            func delivered() throws -> [String] {
                try whole().map(Self.ref)
            }
            let deadline = ContinuousClock.now + .seconds(60)
            while try Set(delivered()).count < total, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
            let all = try delivered()
            #expect(Set(all) == Set((0..<total).map { "c\($0)" }), "every event is delivered")
            // Each user's deliveries go in event order, even across the restart's repeats.
            for user in 0..<7 {
                let times = try whole().compactMap { request -> String? in
                    let body = try JSONParser.parse(request.body)
                    return body["user"]?["user_id"]?.stringValue == "user-\(user)" ? body["event"]?["timestamp"]?.stringValue : nil
                }
                let firstSeen = times.reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
                #expect(firstSeen == firstSeen.sorted(), "user-\(user)'s deliveries in event order")
            }
            let status = try await Self.status(stack, "all") { $0["delivered"]?.intValue ?? 0 >= Int64(total) }
            #expect(status["delivered"]?.intValue ?? 0 >= Int64(total), "\(status)")
            #expect(status["matched"]?.intValue ?? 0 >= Int64(total), "\(status)")
        }
        try await receiver.shutdown()
    }

    /// The cart-abandonment case: the webhook fires when no purchase follows within the
    /// window, in event time, and not when one does; a wait survives a SIGKILL.
    @Test func absenceTriggersFireOrAreCancelledAndSurviveRestarts() async throws {
        let receiver = try await TestReceiver()
        try await TestStack.with { stack in
            #expect(try await stack.cli(["apps", "create", "shop"]).status == 0)
            #expect(
                try await stack.cli([
                    "triggers", "add", "--app", "shop", "--name", "cart-left", "--event", "Added to cart",
                    "--unless", "Purchase", "--within", "1h", "--url", receiver.url,
                ]).status == 0
            )
            try await Self.ingest(
                [
                    Self.track("ann", "Added to cart", at: "2024-05-01T10:00:00Z", id: "ann-cart"),
                    Self.track("bob", "Added to cart", at: "2024-05-01T10:00:00Z", id: "bob-cart"),
                    Self.track("bob", "Purchase", at: "2024-05-01T10:30:00Z", id: "bob-buys"),
                    Self.track("cid", "Added to cart", at: "2024-05-01T10:00:00Z", id: "cid-cart"),
                    Self.track("cid", "Purchase", at: "2024-05-01T12:00:00Z", id: "cid-buys-late"),
                ],
                on: stack
            )
            _ = try await Self.waitForRequests(receiver, 2)
            try await Task.sleep(for: .seconds(2))
            let fired = Set(try receiver.requests.map(Self.ref))
            #expect(fired == ["ann-cart", "cid-cart"], "\(fired)")
            let body = try JSONParser.parse(try #require(receiver.requests.first).body)
            #expect(body["absence"]?["unless"] == "Purchase" && body["absence"]?["within_s"] == .int(3600))
            let status = try await Self.status(stack, "cart-left") { $0["delivered"] == .int(2) }
            #expect(status["matched"] == .int(3) && status["delivered"] == .int(2) && status["cancelled"] == .int(1), "\(status)")

            // A live cart with a short window: the wait is stored, survives a SIGKILL of export,
            // and fires once the window has passed.
            #expect(
                try await stack.cli([
                    "triggers", "add", "--app", "shop", "--name", "quick", "--event", "Added to cart",
                    "--unless", "Purchase", "--within", "3s", "--url", receiver.url + "/quick",
                ]).status == 0
            )
            try await Task.sleep(for: .milliseconds(1500))
            try await Self.ingest([Self.track("dan", "Added to cart", at: Timestamp.now().description, id: "dan-cart")], on: stack)
            var deadline = ContinuousClock.now + .seconds(20)
            while try await Self.status(stack, "quick")["waiting"] != .int(1), ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(try await Self.status(stack, "quick")["waiting"] == .int(1))
            let pid = try #require(try await stack.servicePID("export"))
            #expect(kill(pid, SIGKILL) == 0)
            deadline = ContinuousClock.now + .seconds(30)
            while !receiver.requests.contains(where: { $0.uri == "/quick" }), ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
            }
            let quick = receiver.requests.filter { $0.uri == "/quick" }
            #expect(quick.count == 1)
            #expect(try quick.first.map(Self.ref) == "dan-cart")

            // Erasing dan removes the wait the hour-long trigger still holds for him.
            #expect(try await Self.status(stack, "cart-left")["waiting"] == .int(1))
            let erased = try await stack.cli(["users", "delete", "--app", "shop", "--user", "dan"])
            #expect(erased.status == 0 && erased.stdout.contains("trigger_deliveries: 1"), "\(erased.stdout) \(erased.stderr)")
            #expect(try await Self.status(stack, "cart-left")["waiting"] == .int(0))
        }
        try await receiver.shutdown()
    }
}
