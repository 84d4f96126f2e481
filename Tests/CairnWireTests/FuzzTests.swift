import CairnCore
import CairnTesting
import NIOCore
import NIOEmbedded
import Testing

@testable import CairnWire

/// Seeded fuzzing of the wire layer (see ``Fuzzer``): the frame decoder, fed any bytes in any
/// pieces, yields frames or a ``WireError``; the JSON-RPC layer answers any frame with a
/// well-formed response.
@Suite struct WireFuzzTests {
    @Test func theFrameDecoderYieldsFramesOrAWireError() async throws {
        var fuzzer = Fuzzer(target: "frames")
        var frames = 0
        var refusals = 0
        var random = SystemRandomNumberGenerator()
        try await fuzzer.run { bytes in
            let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maximumFrameSize: 1 << 16)))
            var offset = 0
            do {
                while offset < bytes.count {
                    let size = Int.random(in: 1...max(1, bytes.count - offset), using: &random)
                    try channel.writeInbound(ByteBuffer(bytes: bytes[offset..<(offset + size)]))
                    offset += size
                    while let frame = try channel.readInbound(as: ByteBuffer.self) {
                        frames += 1
                        if frame.readableBytes > 1 << 16 { Issue.record("a frame over the maximum got through") }
                    }
                }
                _ = try channel.finish()
            } catch is WireError {
                refusals += 1
            } catch let error as ByteToMessageDecoderError {
                // A decoder that has failed once refuses everything after: the connection is closed.
                if case .dataReceivedInErrorState = error { refusals += 1 } else { throw error }
            }
        }
        #expect(frames > 0 && refusals > 0, "the fuzzer reached both outcomes")
    }

    @Test func theRPCLayerAnswersEveryFrameWithAWellFormedResponse() async throws {
        var router = RPCRouter()
        router.register("echo") { params in params }
        router.register("fail") { _ in throw RPCError.application(ErrorCode(rawValue: "nope"), "this always fails") }
        router.register("system.health") { _ in ["status": "ok"] }
        let answering = router
        var fuzzer = Fuzzer(target: "rpc")
        var results = 0
        var errors = 0
        await fuzzer.run { bytes in
            guard let answer = await RPCServer.respond(to: ByteBuffer(bytes: bytes), router: answering) else { return }
            guard let response = try? JSONParser.parse(answer), response["jsonrpc"] == "2.0", response["id"] != nil else {
                Issue.record("not a JSON-RPC response: \(String(decoding: answer.prefix(300), as: UTF8.self))")
                return
            }
            if response["result"] != nil {
                results += 1
            } else if let code = response["error"]?["code"]?.intValue, response["error"]?["message"]?.stringValue?.isEmpty == false, code != 0 {
                errors += 1
            } else {
                Issue.record("a response with neither a result nor a proper error: \(String(decoding: answer.prefix(300), as: UTF8.self))")
            }
        }
        #expect(results > 0 && errors > 0, "the fuzzer reached both outcomes")
    }
}
