import CairnGzip
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// A real HTTP/1.1 server on 127.0.0.1 that records every request it gets and answers each
/// with the next scripted reply (then `afterScript`, by default `200 {"success":true}`, once
/// the script runs out): a Segment-compatible endpoint whose failures a test chooses.
public final class TestReceiver: Sendable {
    public struct Reply: Sendable {
        public var status: Int
        public var headers: [(String, String)]
        public var body: String
        /// How long the server waits before answering: a slow endpoint, so a test can act
        /// while a request is in flight.
        public var delay: Duration

        public init(status: Int, headers: [(String, String)] = [], body: String = #"{"success":true}"#, delay: Duration = .zero) {
            self.status = status
            self.headers = headers
            self.body = body
            self.delay = delay
        }
    }

    public struct Request: Sendable {
        public var method: String
        public var uri: String
        public var headers: [(String, String)]
        /// The body as sent (still compressed when it was).
        public var body: [UInt8]

        public func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }

        /// The body, gunzipped when it says so.
        public func decodedBody() throws -> [UInt8] {
            header("Content-Encoding") == "gzip" ? try Gzip.decompress(body, limit: 1 << 26) : body
        }
    }

    /// What the server has seen, and what it answers next; shared with every connection.
    final class Recorder: Sendable {
        let state = Mutex<(script: [Reply], afterScript: Reply, requests: [Request])>(([], Reply(status: 200), []))

        func record(_ request: Request) -> Reply {
            state.withLock { state in
                state.requests.append(request)
                return state.script.isEmpty ? state.afterScript : state.script.removeFirst()
            }
        }
    }

    private let recorder = Recorder()
    private let channel: any Channel
    public let port: Int

    public init(script: [Reply] = [], afterScript: Reply = Reply(status: 200)) async throws {
        recorder.state.withLock {
            $0.script = script
            $0.afterScript = afterScript
        }
        let recorder = self.recorder
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(recorder: recorder))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        port = channel.localAddress?.port ?? 0
    }

    public var url: String { "http://127.0.0.1:\(port)" }
    public var requests: [Request] { recorder.state.withLock { $0.requests } }

    public func shutdown() async throws {
        try await channel.close()
    }

    /// One connection: collects each request, answers it with the recorder's next reply.
    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let recorder: Recorder
        var head: HTTPRequestHead?
        var body: [UInt8] = []

        init(recorder: Recorder) {
            self.recorder = recorder
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                self.head = head
                body = []
            case .body(var buffer):
                body += buffer.readBytes(length: buffer.readableBytes) ?? []
            case .end:
                guard let head else { return }
                let reply = recorder.record(
                    Request(
                        method: "\(head.method)",
                        uri: head.uri,
                        headers: head.headers.map { ($0.name, $0.value) },
                        body: body
                    )
                )
                self.head = nil
                var headers = HTTPHeaders([("Content-Type", "application/json"), ("Content-Length", String(reply.body.utf8.count))])
                for (name, value) in reply.headers { headers.add(name: name, value: value) }
                let response = HTTPResponseHead(version: head.version, status: HTTPResponseStatus(statusCode: reply.status), headers: headers)
                let answer = { [self] in
                    context.write(wrapOutboundOut(.head(response)), promise: nil)
                    context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: reply.body)))), promise: nil)
                    context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
                }
                if reply.delay > .zero {
                    let loopBound = NIOLoopBound(answer, eventLoop: context.eventLoop)
                    context.eventLoop.scheduleTask(in: TimeAmount(reply.delay)) { loopBound.value() }
                } else {
                    answer()
                }
            }
        }
    }
}
