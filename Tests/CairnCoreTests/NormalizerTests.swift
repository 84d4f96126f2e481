import CairnCore
import Testing

@Suite struct NormalizerTests {
    @Test func detectsEveryFormatInAMixedFile() throws {
        let events = try fixtureLines("mixed.jsonl").map { try event($0) }
        #expect(events.map(\.origin) == [.userpilot, .userguiding, .userlike, .usercom, .segment])
    }

    @Test func refusesRecordsThatAreNotEvents() {
        #expect(failure("[1,2]")?.code == .invalidEvent)
        #expect(failure(#"{"hello":"world"}"#)?.code == .invalidEvent)
        #expect(failure("{not json")?.code == .invalidJSON)
        #expect(failure(#"{"event_type":"track","event_name":"A"}"#, format: .userlike)?.field == "event_type")
    }

    @Test func enforcesTheRecordLimits() {
        let big = #"{"event_type":"track","event_name":"A","metadata":{"x":""# + String(repeating: "x", count: 33_000) + #""}}"#
        #expect(failure(big)?.code == .recordTooLarge)
        let deep =
            #"{"event_type":"track","event_name":"A","metadata":"# + String(repeating: "[", count: 40) + String(repeating: "]", count: 40) + "}"
        #expect(failure(deep)?.code == .tooDeep)
        let fine =
            #"{"event_type":"track","event_name":"A","metadata":{"a":"# + String(repeating: "[", count: 20) + String(repeating: "]", count: 20) + "}}"
        #expect(failure(fine) == nil)
        let invalid: [UInt8] = Array(#"{"event_type":"track","event_name":""#.utf8) + [0xC3, 0x28] + Array(#""}"#.utf8)
        let outcome = EventNormalizer.normalize(recordBytes: invalid, format: .auto, context: testContext)
        #expect(outcome.rejections.first?.error.code == .invalidUTF8)
        // Outside a string too: before the value, after it, as a value, or a UTF-16 document.
        let record = Array(#"{"event_type":"track","event_name":"A"}"#.utf8)
        for bytes in [[0xFF] + record, record + [0xFF], Array(#"{"event_type":"#.utf8) + [0xFF] + [0x7D], [0xFF, 0xFE, 0x7B, 0x00, 0x7D, 0x00]] {
            let refused = EventNormalizer.normalize(recordBytes: bytes, format: .auto, context: testContext)
            #expect(refused.rejections.first?.error.code == .invalidUTF8, "\(bytes.prefix(8))")
        }
        // A byte-order mark is UTF-8, just not JSON.
        let marked = EventNormalizer.normalize(recordBytes: [0xEF, 0xBB, 0xBF] + record, format: .auto, context: testContext)
        #expect(marked.rejections.first?.error.code == .invalidJSON)
    }

    @Test func aBatchMayExceedOneRecordButNotItsMessages() {
        let message = #"{"type":"track","event":"A","userId":"u","properties":{"p":""# + String(repeating: "p", count: 20_000) + #""}}"#
        let batch = #"{"batch":["# + message + "," + message + "]}"
        let outcome = EventNormalizer.normalize(recordBytes: Array(batch.utf8), format: .auto, context: testContext)
        #expect(outcome.events.count == 2)
        let huge = #"{"type":"track","event":"A","userId":"u","properties":{"p":""# + String(repeating: "p", count: 40_000) + #""}}"#
        let mixed = EventNormalizer.normalize(
            recordBytes: Array((#"{"batch":["# + huge + "," + message + "]}").utf8),
            format: .auto,
            context: testContext
        )
        #expect(mixed.events.count == 1)
        #expect(mixed.rejections.first?.error.code == .recordTooLarge)
        #expect(mixed.rejections.first?.message == 0)
    }

    @Test(arguments: [
        "2024-05-01T12:00:00Z", "2024-05-01T12:00:00.1Z", "2024-05-01T12:00:00.123456789+05:30", "2024-05-01t12:00:00z", "2024-05-01T12:00:00-00:00",
    ])
    func acceptsEveryRFC3339Form(_ time: String) throws {
        #expect(throws: Never.self) { _ = try event(#"{"event_type":"track","event_name":"A","inserted_at":""# + time + #""}"#) }
    }

    @Test func sha256MatchesTheStandardVectors() {
        #expect(SHA256.hex([]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(
            SHA256.hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        )
    }

    /// RFC 4231 test cases 1, 2 and 6 (a key longer than the block is hashed first).
    @Test func hmacSHA256MatchesRFC4231() {
        #expect(
            SHA256.hexString(SHA256.hmac(key: [UInt8](repeating: 0x0b, count: 20), Array("Hi There".utf8)))
                == "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        )
        #expect(
            SHA256.hexString(SHA256.hmac(key: Array("Jefe".utf8), Array("what do ya want for nothing?".utf8)))
                == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        )
        #expect(
            SHA256.hexString(
                SHA256.hmac(key: [UInt8](repeating: 0xaa, count: 131), Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8))
            )
                == "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        )
    }
}
