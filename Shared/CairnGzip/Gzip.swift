import CZlib

/// gzip (RFC 1952) through zlib: compressing request bodies for HTTP destinations, and
/// reading `Content-Encoding: gzip` bodies. The only importer of CZlib.
public enum Gzip {
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public let description: String
        /// The input expanded past the caller's limit (a decompression bomb, or just too big),
        /// as opposed to input that is not gzip at all.
        public var exceedsLimit = false
    }

    /// `bytes` as one gzip member.
    public static func compress(_ bytes: [UInt8], level: Int32 = 6) throws(Failure) -> [UInt8] {
        var stream = z_stream()
        // windowBits 15 + 16: a gzip header and trailer instead of zlib's.
        guard deflateInit2_(&stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK
        else {
            throw Failure(description: "zlib could not start compressing")
        }
        defer { deflateEnd(&stream) }
        var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, uLong(bytes.count))) + 32)
        var input = bytes
        let status = input.withUnsafeMutableBufferPointer { source in
            output.withUnsafeMutableBufferPointer { target in
                stream.next_in = source.baseAddress
                stream.avail_in = uInt(source.count)
                stream.next_out = target.baseAddress
                stream.avail_out = uInt(target.count)
                return deflate(&stream, Z_FINISH)
            }
        }
        guard status == Z_STREAM_END else { throw Failure(description: "zlib could not compress (status \(status))") }
        output.removeSubrange(Int(stream.total_out)...)
        return output
    }

    /// The bytes of a gzip stream (one or more members), refusing to produce more than
    /// `limit` bytes so that a small hostile body cannot expand without bound.
    public static func decompress(_ bytes: [UInt8], limit: Int) throws(Failure) -> [UInt8] {
        var stream = z_stream()
        guard inflateInit2_(&stream, 15 + 16, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw Failure(description: "zlib could not start decompressing")
        }
        defer { inflateEnd(&stream) }
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        var input = bytes
        var failure: Failure?
        input.withUnsafeMutableBufferPointer { source in
            stream.next_in = source.baseAddress
            stream.avail_in = uInt(source.count)
            while true {
                let (status, produced) = chunk.withUnsafeMutableBufferPointer { target -> (Int32, Int) in
                    stream.next_out = target.baseAddress
                    stream.avail_out = uInt(target.count)
                    let status = inflate(&stream, Z_NO_FLUSH)
                    return (status, target.count - Int(stream.avail_out))
                }
                output.append(contentsOf: chunk[0..<produced])
                if output.count > limit {
                    failure = Failure(description: "the body expands past \(limit) bytes", exceedsLimit: true)
                    return
                }
                if status == Z_STREAM_END {
                    // Another member may follow (concatenated gzip).
                    if stream.avail_in == 0 { return }
                    guard inflateReset(&stream) == Z_OK else {
                        failure = Failure(description: "invalid gzip data")
                        return
                    }
                    continue
                }
                if status == Z_BUF_ERROR && stream.avail_in == 0 {
                    failure = Failure(description: "the gzip data ends early")
                    return
                }
                guard status == Z_OK else {
                    failure = Failure(description: "invalid gzip data")
                    return
                }
            }
        }
        if let failure { throw failure }
        return output
    }
}
