import CairnCore
import CairnTesting
import Foundation
import Testing

/// Seeded fuzzing of HTTP connection patterns (bounded in count and time): half-open
/// connections, headers a few bytes at a time, bodies that never arrive, garbage, pipelined
/// requests, connections dropped mid-request. Ingest never restarts, ingest answers its status
/// throughout, and a well-formed request is served once they are done.
@Suite struct ConnectionFuzzTests {
    @Test func connectionPatternsNeverStallIngest() async throws {
        let settings: JSON = ["idle_timeout_s": 2, "body_timeout_s": 2, "max_connections_per_client": 16]
        try await TestStack.with(stack: try TestStack.defaultStack(settings: settings, for: "ingest")) { stack in
            let key = try await HTTPIngestTests.createApp("web", on: stack)
            let url = try await stack.httpURL()
            let port = try #require(Int(url.split(separator: ":").last ?? ""))
            let before = try await stack.servicePID("ingest")
            let seed = ProcessInfo.processInfo.environment["CAIRN_FUZZ_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 1...UInt64(UInt32.max))
            print("fuzz connections: seed \(seed)")
            let credentials = Data("\(key):".utf8).base64EncodedString()
            let valid = #"{"batch":[{"type":"track","event":"E","userId":"u","timestamp":"2024-05-01T09:00:00Z"}]}"#
            let request =
                "POST /v1/batch HTTP/1.1\r\nHost: x\r\nAuthorization: Basic \(credentials)\r\nContent-Type: application/json\r\nContent-Length: \(valid.utf8.count)\r\n\r\n\(valid)"
            var random = SplitMix64(seed: seed)
            let rounds = max(2, Int(Fuzzer.duration.components.seconds))
            for round in 0..<rounds {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for connection in 0..<24 {
                        let pattern = random.next(in: 0...5)
                        let cut = random.next(in: 1...(request.utf8.count - 1))
                        let pause = random.next(in: 10...300)
                        let source = "127.0.\(2 + round % 50).\(1 + connection % 8)"
                        group.addTask {
                            guard let socket = try? RawTCP(host: "127.0.0.1", port: port, source: source) else { return }
                            let head = String(decoding: Array(request.utf8)[..<cut], as: UTF8.self)
                            switch pattern {
                            case 0: return  // opened and dropped
                            case 1:  // headers a few bytes at a time, then silence
                                for chunk in stride(from: 0, to: min(cut, 40), by: 8) {
                                    try await socket.send(String(decoding: Array(request.utf8)[chunk..<min(chunk + 8, cut)], as: UTF8.self))
                                    try await Task.sleep(for: .milliseconds(pause))
                                }
                            case 2:  // a body promised and never sent
                                try await socket.send("POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n{")
                            case 3: try await socket.send(String(repeating: "\u{0}\r\n garbage \u{7F}", count: 50))
                            case 4: try await socket.send(request + request)  // pipelined
                            default: try await socket.send(head)  // cut mid-request
                            }
                            _ = try await socket.closedByPeer(within: .seconds(1))
                        }
                    }
                    // Ingest answers its status while the connections misbehave: a wedged ingest
                    // would show as unreachable once its 3 s status deadline passes. The bound on
                    // the whole round leaves room for a loaded, parallel test run.
                    let clock = ContinuousClock()
                    let started = clock.now
                    let status = try await stack.call("supervisor", "supervisor.status")
                    #expect(clock.now - started < .seconds(15), "seed \(seed)")
                    #expect(status["phase"] == "running")
                    let ingest = status["services"]?.arrayValue?.first { $0["name"] == "ingest" }
                    #expect(ingest?["status"]?["health"] == "ok", "seed \(seed): \(ingest?.serializedString() ?? "no ingest row")")
                    try await group.waitForAll()
                }
            }
            #expect(try await stack.servicePID("ingest") == before, "seed \(seed): ingest never restarted")
            let answer = try await HTTPIngestTests.post(url + "/v1/batch", Array(valid.utf8), key: key)
            #expect(answer.status == 200, "seed \(seed): \(answer.body)")
            #expect(try await stack.cli(["status"]).status == 0)
        }
    }
}
