import CairnWire
import NIOCore
import NIOEmbedded
import Testing

@Suite struct FramingTests {
    @Test func decodesFramesSplitAcrossReads() throws {
        let channel = EmbeddedChannel()
        try Framing.install(on: channel, maximumFrameSize: 1024)
        let bytes: [UInt8] = [0, 0, 0, 3, 0x61, 0x62, 0x63, 0, 0, 0, 2, 0x64, 0x65]
        for chunk in [bytes[0..<2], bytes[2..<5], bytes[5..<9], bytes[9...]] {
            try channel.writeInbound(ByteBuffer(bytes: chunk))
        }
        let first = try #require(try channel.readInbound(as: ByteBuffer.self))
        let second = try #require(try channel.readInbound(as: ByteBuffer.self))
        #expect(String(buffer: first) == "abc")
        #expect(String(buffer: second) == "de")
        #expect(try channel.readInbound(as: ByteBuffer.self) == nil)
        _ = try channel.finish()
    }

    @Test func prependsBigEndianLength() throws {
        let channel = EmbeddedChannel()
        try Framing.install(on: channel, maximumFrameSize: 1024)
        try channel.writeOutbound(ByteBuffer(string: "hi"))
        var written = ByteBuffer()
        while let part = try channel.readOutbound(as: ByteBuffer.self) {
            var part = part
            written.writeBuffer(&part)
        }
        #expect(Array(written.readableBytesView) == [0, 0, 0, 2, 0x68, 0x69])
        _ = try channel.finish()
    }

    @Test func refusesAnOversizedFrameFromItsHeader() throws {
        let channel = EmbeddedChannel()
        try Framing.install(on: channel, maximumFrameSize: 16)
        // Only the header has arrived: the frame is refused before any payload is buffered.
        #expect(throws: WireError.self) {
            try channel.writeInbound(ByteBuffer(bytes: [0, 0, 0x03, 0xE8]))
        }
        _ = try? channel.finish()
    }
}
