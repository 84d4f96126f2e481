import AsyncHTTPClient
import CairnCore
import Foundation
import NIOCore
import NIOHTTP1

/// `make bench`, HTTP: drives the HTTP routes over `CONNECTIONS` keep-alive connections with
/// `BATCH` events per request, as the issue's load shape says (32 connections, 100 per batch).
///
/// - `cairn-http-bench URL WRITE_KEY EVENTS [CONNECTIONS] [BATCH]`: distinct Segment track
///   messages to `/v1/batch`;
/// - `cairn-http-bench --file FILE URL WRITE_KEY [CONNECTIONS] [BATCH]`: the records of a file of
///   JSON lines, each format to its own route (Segment messages in `/v1/batch` envelopes, the
///   vendors' records as arrays to `/userpilot`, `/userguiding`, `/userlike`, `/usercom`).
///
/// With `--rate EVENTS_PER_S [--seconds S]` first, the load is open-loop: one request of `BATCH`
/// events starts every `BATCH / EVENTS_PER_S` seconds whatever the answers (only those of the
/// first `S` seconds), and each latency counts from the request's scheduled start, so a slow
/// answer cannot hide the requests that queue behind it.
///
/// Prints the acknowledged rate and the request latency percentiles, then the same as one JSON
/// line for `bench/bench.py`.
@main
struct HTTPBench {
    static func main() async throws {
        var arguments = Array(CommandLine.arguments.dropFirst())
        var rate: Double?
        var limitSeconds: Double?
        while arguments.first == "--rate" || arguments.first == "--seconds", arguments.count >= 2 {
            if arguments[0] == "--rate" { rate = Double(arguments[1]) } else { limitSeconds = Double(arguments[1]) }
            arguments.removeFirst(2)
        }
        var file: String?
        if arguments.first == "--file", arguments.count >= 2 {
            file = arguments[1]
            arguments.removeFirst(2)
            arguments.insert("0", at: 2)
        }
        guard arguments.count >= 3, let requested = Int(arguments[2]) else {
            print(
                "usage: cairn-http-bench URL WRITE_KEY EVENTS [CONNECTIONS] [BATCH]\n       cairn-http-bench --file FILE URL WRITE_KEY [CONNECTIONS] [BATCH]"
            )
            exit(2)
        }
        let base = arguments[0]
        let authorization = "Basic " + Data((arguments[1] + ":").utf8).base64EncodedString()
        let connections = arguments.count > 3 ? Int(arguments[3]) ?? 32 : 32
        let batchSize = arguments.count > 4 ? Int(arguments[4]) ?? 100 : 100

        // Bodies are built before the clock starts: the loader must not be what is measured.
        var requests =
            try file.map { try fileRequests($0, base: base, batchSize: batchSize) }
            ?? syntheticRequests(requested, base: base, batchSize: batchSize)
        let interval = rate.map { Double(batchSize) / $0 }
        if let interval, let limitSeconds { requests = Array(requests.prefix(max(1, Int(limitSeconds / interval)))) }
        let schedule = requests
        let events = requests.reduce(0) { $0 + $1.events }
        let batches = requests.count

        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: connections)
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        let began = ContinuousClock.now
        func send(_ request: Request, from start: ContinuousClock.Instant) async throws -> (latency: Double, status: Int) {
            var http = HTTPClientRequest(url: request.url)
            http.method = .POST
            http.headers.add(name: "Content-Type", value: "application/json")
            http.headers.add(name: "Authorization", value: authorization)
            http.body = .bytes(request.body)
            let response = try await client.execute(http, timeout: .seconds(60))
            _ = try await response.body.collect(upTo: 1 << 20)
            let took = ContinuousClock.now - start
            return (Double(took.components.seconds) + Double(took.components.attoseconds) / 1e18, Int(response.status.code))
        }
        let results = try await withThrowingTaskGroup(of: (latencies: [Double], failures: [Int]).self) { group in
            if let interval {
                // Open loop: each request at its own time, on as many connections as it takes.
                for (index, request) in schedule.enumerated() {
                    let scheduled = began + .microseconds(Int64(Double(index) * interval * 1_000_000))
                    try await Task.sleep(until: scheduled, clock: .continuous)
                    group.addTask {
                        let (latency, status) = try await send(request, from: scheduled)
                        return ([latency], status == 200 ? [] : [status])
                    }
                }
            }
            for worker in 0..<(interval == nil ? connections : 0) {
                group.addTask {
                    var latencies: [Double] = []
                    var failures: [Int] = []
                    var batch = worker
                    while batch < batches {
                        let (latency, status) = try await send(schedule[batch], from: ContinuousClock.now)
                        latencies.append(latency)
                        if status != 200 { failures.append(status) }
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
        print(
            String(
                format: "http: %d events in %d batches of %d over %d connections, acknowledged in %.2f s: %.0f events/s (target 50,000: %@)",
                events,
                batches,
                batchSize,
                connections,
                seconds,
                Double(events) / seconds,
                Double(events) / seconds >= 50_000 ? "met" : "MISSED"
            )
        )
        print(
            String(
                format: "http: request latency p50 %.1f ms, p99 %.1f ms (target below 50 ms: %@), max %.1f ms",
                percentile(0.5),
                percentile(0.99),
                percentile(0.99) < 50 ? "met" : "MISSED",
                sorted.last.map { $0 * 1000 } ?? 0
            )
        )
        if !failures.isEmpty {
            print("http: non-200 answers: \(failures.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", "))")
        }
        let summary: JSON = [
            "events_sent": .int(Int64(events)), "requests": .int(Int64(batches)), "seconds": .double(seconds),
            "events_per_s": .double(Double(events) / seconds), "p50_ms": .double(percentile(0.5)), "p99_ms": .double(percentile(0.99)),
            "max_ms": .double(sorted.last.map { $0 * 1000 } ?? 0), "failures": .int(Int64(results.failures.count)),
        ]
        print(summary.serializedString())
    }

    struct Request: Sendable {
        var url: String
        var body: ByteBuffer
        var events: Int
    }

    /// `count` distinct Segment track messages, in `/v1/batch` envelopes.
    static func syntheticRequests(_ count: Int, base: String, batchSize: Int) -> [Request] {
        let start = Timestamp(parsing: "2024-06-01T00:00:00Z")!.microseconds
        return stride(from: 0, to: count, by: batchSize).map { first in
            var messages: [JSON] = []
            for index in first..<min(count, first + batchSize) {
                messages.append([
                    "type": "track", "event": .string(["Report Exported", "Invite Sent", "Project Created", "Purchased"][index % 4]),
                    "userId": .string("user-\(index % 50_000)"), "messageId": .string("bench-\(index)"),
                    "timestamp": .string(Timestamp(microseconds: start + Int64(index) * 1_000).iso8601Milliseconds),
                    "properties": ["plan": .string(index % 3 == 0 ? "pro" : "free"), "amount": .int(Int64(index % 500)), "n": .int(Int64(index))],
                    "context": [
                        "library": ["name": "cairn-http-bench", "version": "1"],
                        "page": ["path": "/reports", "url": "https://app.example.com/reports"],
                    ],
                ])
            }
            let body = JSON.object(["batch": .array(messages), "sentAt": .string(Timestamp.now().iso8601Milliseconds)]).serialized()
            return Request(url: base + "/v1/batch", body: ByteBuffer(bytes: body), events: messages.count)
        }
    }

    /// A file's records, each format to its route, `batchSize` records per request, in file
    /// order within each route; the routes' requests interleaved, as many SDKs send at once.
    static func fileRequests(_ path: String, base: String, batchSize: Int) throws -> [Request] {
        guard let data = FileManager.default.contents(atPath: path) else { throw BenchError("cannot read \(path)") }
        var byRoute: [String: [JSON]] = [:]
        for line in data.split(separator: 0x0A) where !line.isEmpty {
            guard case .object(let record) = try JSONParser.parse(Array(line)) else { continue }
            if let batch = record["batch"]?.arrayValue {
                byRoute["/v1/batch", default: []] += batch
                continue
            }
            let route: String
            switch EventNormalizer.detect(record) {
            case .segment?: route = "/v1/batch"
            case .userguiding?: route = "/userguiding"
            case .userlike?: route = "/userlike"
            case .usercom?: route = "/usercom"
            default: route = "/userpilot"
            }
            byRoute[route, default: []].append(.object(record))
        }
        var perRoute: [[Request]] = []
        for (route, records) in byRoute.sorted(by: { $0.key < $1.key }) {
            perRoute.append(
                stride(from: 0, to: records.count, by: batchSize).map { first in
                    let chunk = Array(records[first..<min(records.count, first + batchSize)])
                    let body = route == "/v1/batch" ? JSON.object(["batch": .array(chunk)]).serialized() : JSON.array(chunk).serialized()
                    return Request(url: base + route, body: ByteBuffer(bytes: body), events: chunk.count)
                }
            )
        }
        var interleaved: [Request] = []
        var index = 0
        while interleaved.count < perRoute.reduce(0, { $0 + $1.count }) {
            for requests in perRoute where index < requests.count { interleaved.append(requests[index]) }
            index += 1
        }
        return interleaved
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
