import AsyncHTTPClient
import CairnCore
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Pushes a known set of events into a stack, a quarter through the `cairn ingest` CLI and the
/// rest as Segment batches over HTTP, and retries whatever was not acknowledged, as an SDK
/// would, until every event is acknowledged or the deadline passes.
///
/// Event `n` is a Segment `track` with `messageId` `<label>-<n>` and a time of its own, so the
/// stored rows say exactly which events arrived, and how often.
public final class FaultLoader: Sendable {
    public let label: String
    public let app: String
    let writeKey: String
    let httpURL: String
    let runDirectory: String
    let workDirectory: String
    let total: Int
    /// Events per second: chunk `k` is not sent before `k × chunkSize / rate` seconds have
    /// passed, so that the load spans a known window for the faults to land in.
    let rate: Int
    static let chunkSize = 100

    private struct State {
        var cliChunks = 0
        var httpChunks = 0
        var acknowledged: [Bool]
        /// Events handed to a worker (sent at least once, or about to be).
        var sentIds = Set<Int>()
        var acknowledgements: [ContinuousClock.Instant] = []
        var refusals: [String: Int] = [:]
        var stopProducing = false
    }
    private let state: Mutex<State>

    /// - Parameter total: the events to send; with a soak deadline, the most it may send.
    public init(label: String, app: String, writeKey: String, httpURL: String, runDirectory: String, workDirectory: String, total: Int, rate: Int) {
        self.rate = rate
        self.label = label
        self.app = app
        self.writeKey = writeKey
        self.httpURL = httpURL
        self.runDirectory = runDirectory
        self.workDirectory = workDirectory
        self.total = total
        state = Mutex(State(acknowledged: [Bool](repeating: false, count: total)))
    }

    public var sent: Int { state.withLock { $0.sentIds.count } }
    public var acknowledgedCount: Int { state.withLock { $0.acknowledged.lazy.filter { $0 }.count } }
    /// Why requests were refused or failed, by code, while retrying.
    public var refusals: [String: Int] { state.withLock { $0.refusals } }
    /// How many refusals so far name any of `words` (a status or a code).
    public func refusals(matching words: String...) -> Int {
        refusals.filter { refusal in words.contains { refusal.key.contains($0) } }.values.reduce(0, +)
    }
    public func messageId(_ n: Int) -> String { "\(label)-\(n)" }
    public var acknowledgedIds: Set<String> {
        state.withLock { state in Set(state.acknowledged.indices.filter { state.acknowledged[$0] }.map(messageId)) }
    }
    public var sentIds: Set<String> {
        state.withLock { state in Set(state.sentIds.map(messageId)) }
    }

    /// The first acknowledgement at or after `instant`.
    public func firstAcknowledgement(after instant: ContinuousClock.Instant) -> ContinuousClock.Instant? {
        state.withLock { $0.acknowledgements.filter { $0 >= instant }.min() }
    }

    /// Stops taking new chunks; the ones in flight are still retried until acknowledged.
    public func stopProducing() {
        state.withLock { $0.stopProducing = true }
    }

    /// Sends until every chunk taken is acknowledged, or `deadline` passes.
    public func run(deadline: Duration) async {
        let start = ContinuousClock.now
        let end = start + deadline
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        await withTaskGroup(of: Void.self) { group in
            for worker in 0..<5 {
                group.addTask { await self.work(cli: worker == 0, client: client, from: start, until: end) }
            }
        }
        try? await client.shutdown()
    }

    /// Chunk `k` goes over the CLI when `k % 4 == 0`, else over HTTP.
    private func work(cli: Bool, client: HTTPClient, from start: ContinuousClock.Instant, until end: ContinuousClock.Instant) async {
        while ContinuousClock.now < end, let chunk = claimChunk(cli: cli) {
            let range = (chunk * Self.chunkSize)..<min(total, (chunk + 1) * Self.chunkSize)
            let due = start + .milliseconds(Int64(range.lowerBound) * 1000 / Int64(rate))
            if due > .now { try? await Task.sleep(until: due) }
            var delay = Duration.milliseconds(100)
            while ContinuousClock.now < end {
                guard let problem = cli ? await sendOverCLI(range) : await sendOverHTTP(range, client: client) else {
                    state.withLock { state in
                        for n in range { state.acknowledged[n] = true }
                        state.acknowledgements.append(.now)
                    }
                    break
                }
                state.withLock { $0.refusals[problem, default: 0] += 1 }
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(2))
            }
        }
    }

    /// The next chunk for a CLI or an HTTP worker: the n-th CLI chunk is 4n, the n-th HTTP
    /// chunk the n-th number not divisible by 4. Each is taken exactly once.
    private func claimChunk(cli: Bool) -> Int? {
        state.withLock { state -> Int? in
            guard !state.stopProducing else { return nil }
            let chunk: Int
            if cli {
                chunk = state.cliChunks * 4
            } else {
                chunk = state.httpChunks + state.httpChunks / 3 + 1
            }
            guard chunk * Self.chunkSize < total else { return nil }
            if cli { state.cliChunks += 1 } else { state.httpChunks += 1 }
            state.sentIds.formUnion((chunk * Self.chunkSize)..<min(total, (chunk + 1) * Self.chunkSize))
            return chunk
        }
    }

    func message(_ n: Int) -> JSON {
        // One millisecond apart from a fixed start: a distinct internal event id per event.
        let time = Timestamp(microseconds: 1_717_200_000_000_000 + Int64(n) * 1_000)
        return [
            "type": "track", "event": "Fault Load", "userId": .string("fault-user-\(n % 97)"), "messageId": .string(messageId(n)),
            "timestamp": .string(time.description), "properties": ["n": .int(Int64(n))],
        ]
    }

    /// nil when acknowledged; else why not.
    private func sendOverHTTP(_ range: Range<Int>, client: HTTPClient) async -> String? {
        var request = HTTPClientRequest(url: httpURL + "/v1/batch")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "Authorization", value: "Basic " + Data((writeKey + ":").utf8).base64EncodedString())
        request.body = .bytes(ByteBuffer(bytes: JSON.object(["batch": .array(range.map(message))]).serialized()))
        do {
            let response = try await client.execute(request, timeout: .seconds(30))
            let body = try await response.body.collect(upTo: 1 << 20)
            let answer = try? JSONParser.parse(Array(buffer: body))
            if response.status == .ok, answer?["success"] == .bool(true), answer?["rejected"] == nil { return nil }
            return "HTTP \(response.status.code) \(answer?["code"]?.stringValue ?? "")"
        } catch {
            return "HTTP connection failed"
        }
    }

    private func sendOverCLI(_ range: Range<Int>) async -> String? {
        let path = workDirectory + "/chunk-\(range.lowerBound).jsonl"
        let text = range.map { message($0).serializedString() }.joined(separator: "\n") + "\n"
        guard (try? text.write(toFile: path, atomically: true, encoding: .utf8)) != nil else { return "CLI cannot write its chunk" }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Binaries.path("cairn"))
        process.arguments = ["ingest", path, "--app", app, "--format", "segment", "--batch-size", "50"]
        var environment = ProcessInfo.processInfo.environment
        environment["CAIRN_RUN_DIR"] = runDirectory
        process.environment = environment
        let errors = path + ".err"
        _ = FileManager.default.createFile(atPath: errors, contents: nil)
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        process.standardError = FileHandle(forWritingAtPath: errors)
        do {
            try process.run()
        } catch {
            return "CLI cannot start"
        }
        let status = await process.waitForExit()
        // The CLI retries refusals itself and says why on stderr: count those too.
        let said = (try? String(contentsOfFile: errors, encoding: .utf8)) ?? ""
        for line in said.split(separator: "\n") where line.hasPrefix("ingest: ") {
            let code =
                line.contains("spool's disk is full")
                ? "JSON-RPC spool_full"
                : line.contains("high-water mark")
                    ? "JSON-RPC overloaded"
                    : line.contains("connection") ? "CLI connection failed" : "JSON-RPC other"
            state.withLock { $0.refusals[code, default: 0] += 1 }
        }
        try? FileManager.default.removeItem(atPath: path)
        try? FileManager.default.removeItem(atPath: errors)
        return status == 0 ? nil : "CLI exit \(status)"
    }
}
