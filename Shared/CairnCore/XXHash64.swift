/// xxHash64, the hash Cairn uses for `internal_event_id`.
///
/// A straight port of the reference algorithm (xxhash.h, XXH64); verified against its
/// published test vectors in `CairnCoreTests`.
public enum XXHash64 {
    private static let prime1: UInt64 = 0x9E37_79B1_85EB_CA87
    private static let prime2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
    private static let prime3: UInt64 = 0x1656_67B1_9E37_79F9
    private static let prime4: UInt64 = 0x85EB_CA77_C2B2_AE63
    private static let prime5: UInt64 = 0x27D4_EB2F_1656_67C5

    /// Hashes `bytes` with `seed`.
    public static func hash<Bytes: Collection<UInt8>>(_ bytes: Bytes, seed: UInt64 = 0) -> UInt64 {
        if let result = bytes.withContiguousStorageIfAvailable({ hash(UnsafeRawBufferPointer($0), seed: seed) }) {
            return result
        }
        return Array(bytes).withUnsafeBytes { hash($0, seed: seed) }
    }

    /// Hashes the UTF-8 bytes of `string` with `seed`.
    public static func hash(_ string: String, seed: UInt64 = 0) -> UInt64 {
        var string = string
        return string.withUTF8 { hash(UnsafeRawBufferPointer($0), seed: seed) }
    }

    @inline(__always)
    private static func round(_ accumulator: UInt64, _ input: UInt64) -> UInt64 {
        var acc = accumulator &+ input &* prime2
        acc = (acc << 31) | (acc >> 33)
        return acc &* prime1
    }

    @inline(__always)
    private static func mergeRound(_ accumulator: UInt64, _ value: UInt64) -> UInt64 {
        let acc = accumulator ^ round(0, value)
        return acc &* prime1 &+ prime4
    }

    @inline(__always)
    private static func read64(_ buffer: UnsafeRawBufferPointer, _ offset: Int) -> UInt64 {
        UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    @inline(__always)
    private static func read32(_ buffer: UnsafeRawBufferPointer, _ offset: Int) -> UInt64 {
        UInt64(UInt32(littleEndian: buffer.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
    }

    public static func hash(_ buffer: UnsafeRawBufferPointer, seed: UInt64 = 0) -> UInt64 {
        let length = buffer.count
        var offset = 0
        var h64: UInt64
        if length >= 32 {
            var v1 = seed &+ prime1 &+ prime2
            var v2 = seed &+ prime2
            var v3 = seed
            var v4 = seed &- prime1
            while offset + 32 <= length {
                v1 = round(v1, read64(buffer, offset))
                v2 = round(v2, read64(buffer, offset + 8))
                v3 = round(v3, read64(buffer, offset + 16))
                v4 = round(v4, read64(buffer, offset + 24))
                offset += 32
            }
            h64 = ((v1 << 1) | (v1 >> 63)) &+ ((v2 << 7) | (v2 >> 57)) &+ ((v3 << 12) | (v3 >> 52)) &+ ((v4 << 18) | (v4 >> 46))
            h64 = mergeRound(h64, v1)
            h64 = mergeRound(h64, v2)
            h64 = mergeRound(h64, v3)
            h64 = mergeRound(h64, v4)
        } else {
            h64 = seed &+ prime5
        }
        h64 = h64 &+ UInt64(length)
        while offset + 8 <= length {
            let k1 = round(0, read64(buffer, offset))
            h64 ^= k1
            h64 = ((h64 << 27) | (h64 >> 37)) &* prime1 &+ prime4
            offset += 8
        }
        if offset + 4 <= length {
            h64 ^= read32(buffer, offset) &* prime1
            h64 = ((h64 << 23) | (h64 >> 41)) &* prime2 &+ prime3
            offset += 4
        }
        while offset < length {
            h64 ^= UInt64(buffer[offset]) &* prime5
            h64 = ((h64 << 11) | (h64 >> 53)) &* prime1
            offset += 1
        }
        h64 ^= h64 >> 33
        h64 = h64 &* prime2
        h64 ^= h64 >> 29
        h64 = h64 &* prime3
        h64 ^= h64 >> 32
        return h64
    }
}
