import NIOCore
import NIOExtras

/// Cairn's frame: a 4-byte big-endian length, then that many bytes of UTF-8 JSON.
public enum Framing {
    /// The default cap on one frame's payload: 16 MiB.
    public static let defaultMaximumFrameSize = 16 * 1024 * 1024

    /// Adds the frame decoder and length prepender to `channel`'s pipeline.
    /// Must run on the channel's event loop (inside a channel initializer).
    public static func install(on channel: any Channel, maximumFrameSize: Int) throws {
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(maximumFrameSize: maximumFrameSize)))
        try channel.pipeline.syncOperations.addHandler(LengthFieldPrepender(lengthFieldBitLength: .fourBytes, lengthFieldEndianness: .big))
    }
}

/// Splits the inbound byte stream into frames, refusing an oversized frame as soon as its
/// length prefix arrives rather than after buffering it.
public struct FrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = ByteBuffer

    public let maximumFrameSize: Int

    public init(maximumFrameSize: Int) {
        self.maximumFrameSize = maximumFrameSize
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: UInt32.self) else {
            return .needMoreData
        }
        guard Int(length) <= maximumFrameSize else {
            throw WireError.frameTooLarge(size: Int(length), maximum: maximumFrameSize)
        }
        guard buffer.readableBytes >= 4 + Int(length) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 4)
        let frame = buffer.readSlice(length: Int(length))!
        context.fireChannelRead(Self.wrapInboundOut(frame))
        return .continue
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        if buffer.readableBytes > 0 {
            throw WireError.truncatedFrame(bufferedBytes: buffer.readableBytes)
        }
        return .needMoreData
    }
}
