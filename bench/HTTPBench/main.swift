import AsyncHTTPClient
import CairnCore
import Foundation
import NIOCore
import NIOHTTP1

/// `make bench`, HTTP: drives `POST /v1/batch` with Segment batches of `--batch` track
/// messages over `--connections` keep-alive connections, as the issue's load shape says
/// (32 connections, 100 events per batch). Every event is distinct, so nothing is
/// deduplicated away. Prints the acknowledged rate and the request latency percentiles.
///
/// usage: cairn-http-bench URL WRITE_KEY EVENTS [CONNECTIONS] [BATCH]
@main
struct HTTPBench {
    static func main() async throws {
        let arguments = CommandLine.arguments
        guard arguments.count >= 4, let events = Int(arguments[3]) else {
            print("usage: cairn-http-bench URL WRITE_KEY EVENTS [CONNECTIONS] [BATCH]")
            exit(2)
        }
        let url = arguments[1] + "/v1/batch"
        let authorization = "Basic " + Data((arguments[2] + ":").utf8).base64EncodedString()
        let connections = arguments.count > 4 ? Int(arguments[4]) ?? 32 : 32
        let batchSize = arguments.count > 5 ? Int(arguments[5]) ?? 100 : 100
        let batches = (events + batchSize - 1) / batchSize

        // Bodies are built before the clock starts: the loader must not be what is measured.
        let start = Timestamp(parsing: "2024-06-01T00:00:00Z")!.microseconds
        let bodies: [ByteBuffer] = (0..<batches).map { batch in
            var messages: [JSON] = []
            for index in (batch * batchSize)..<min(events, (batch + 1) * batchSize) {
                messages.append([
                    "type": "track", "event": .string(["Report Exported", "Invite Sent", "Project Created", "Purchased"][index % 4]),
                    "userId": .string("user-\(index % 50_000)"), "messageId": .string("bench-\(index)"),
                    "timestamp": .string(Timestamp(microseconds: start + Int64(index) * 1_000).iso8601Milliseconds),
                    "properties": ["plan": .string(index % 3 == 0 ? "pro" : "free"), "amount": .int(Int64(index % 500)), "n": .int(Int64(index))],
                    "context": ["library": ["name": "cairn-http-bench", "version": "1"], "page": ["path": "/reports", "url": "https://app.example.com/reports"]],
                ])
            }
            return ByteBuffer(bytes: JSON.object(["batch": .array(messages), "sentAt": .string(Timestamp.now().iso8601Milliseconds)]).serialized())
        }

        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: connections)
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        let began = ContinuousClock.now
        let results = try await withThrowingTaskGroup(of: (latencies: [Double], failures: [Int]).self) { group in
            for worker in 0..<connections {
                group.addTask {
                    var latencies: [Double] = []
                    var failures: [Int] = []
                    var batch = worker
                    while batch < batches {
                        var request = HTTPClientRequest(url: url)
                        request.method = .POST
                        request.headers.add(name: "Content-Type", value: "application/json")
                        request.headers.add(name: "Authorization", value: authorization)
                        request.body = .bytes(bodies[batch])
                        let sent = ContinuousClock.now
                        let response = try await client.execute(request, timeout: .seconds(60))
                        _ = try await response.body.collect(upTo: 1 << 20)
                        let took = ContinuousClock.now - sent
                        latencies.append(Double(took.components.seconds) + Double(took.components.attoseconds) / 1e18)
                        if response.status != .ok { failures.append(Int(response.status.code)) }
                        batch += connections
                    }
                    return (latencies, failures)
                }
            }
            var all: (latencies: [Double], failures: [Int]) = ([], [])
            for try await result in group {
                all.latencies += result.latencies
                all.failures += result.failures
            }
            return all
        }
        let elapsed = ContinuousClock.now - began
        try await client.shutdown()
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let sorted = results.latencies.sorted()
        func percentile(_ p: Double) -> Double { sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))] * 1000 }
        let failures = Dictionary(grouping: results.failures, by: { $0 }).mapValues(\.count)
        print(String(format: "http: %d events in %d batches of %d over %d connections, acknowledged in %.2f s: %.0f events/s (target 50,000: %@)",
                     events, batches, batchSize, connections, seconds, Double(events) / seconds, Double(events) / seconds >= 50_000 ? "met" : "MISSED"))
        print(String(format: "http: request latency p50 %.1f ms, p99 %.1f ms (target below 50 ms: %@), max %.1f ms",
                     percentile(0.5), percentile(0.99), percentile(0.99) < 50 ? "met" : "MISSED", sorted.last.map { $0 * 1000 } ?? 0))
        if !failures.isEmpty { print("http: non-200 answers: \(failures.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", "))") }
    }
}
