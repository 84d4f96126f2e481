import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A seeded mutation fuzzer for `make test` (a bounded time per target) and `make fuzz`
/// (longer): it starts from a corpus of valid inputs in `Tests/Fixtures/fuzz/<target>/` and
/// mutates them with the inputs parsers get wrong: invalid UTF-8, deep nesting, huge numbers,
/// NaN and Infinity spellings, duplicate keys, truncation.
///
/// Every regression in `Tests/Fixtures/fuzz/<target>/regressions/` runs first, every time.
/// A crash kills the test process; the input that did it is then in
/// `/tmp/cairn-fuzz-<target>.current`, to be kept as a regression once fixed, and the seed
/// printed at the start (`CAIRN_FUZZ_SEED`) repeats the run.
public struct Fuzzer {
    public let target: String
    public let seed: UInt64
    private var random: SplitMix64
    public private(set) var corpus: [[UInt8]]
    public private(set) var regressions: [[UInt8]]
    private let current: Int32

    /// Seconds each target runs: `CAIRN_FUZZ_SECONDS`, else 3.
    public static var duration: Duration {
        .milliseconds(Int64((Double(ProcessInfo.processInfo.environment["CAIRN_FUZZ_SECONDS"] ?? "") ?? 3) * 1000))
    }

    public init(target: String) {
        self.target = target
        seed = ProcessInfo.processInfo.environment["CAIRN_FUZZ_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 1...UInt64(UInt32.max))
        random = SplitMix64(seed: seed)
        let folder = TestStack.repositoryRoot + "/Tests/Fixtures/fuzz/" + target
        func files(_ path: String) -> [[UInt8]] {
            ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted()
                .compactMap { name in name.hasPrefix(".") ? nil : FileManager.default.contents(atPath: path + "/" + name).map { Array($0) } }
        }
        corpus = files(folder).filter { !$0.isEmpty }
        regressions = files(folder + "/regressions")
        current = open("/tmp/cairn-fuzz-\(target).current", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        print("fuzz \(target): seed \(seed), \(corpus.count) corpus inputs, \(regressions.count) regressions, for \(Self.duration)")
    }

    /// Feeds `body` every regression, then mutated corpus inputs until the time is up. It
    /// yields between inputs, so that a long run does not starve the other tests of the two
    /// threads Swift concurrency has here.
    /// - Returns: how many inputs ran.
    @discardableResult
    public mutating func run(for duration: Duration = Fuzzer.duration, _ body: ([UInt8]) async throws -> Void) async rethrows -> Int {
        var count = 0
        // The regressions, then the corpus as it is, then mutations of it.
        for input in regressions + corpus {
            remember(input)
            try await body(input)
            count += 1
        }
        let end = ContinuousClock.now + duration
        while ContinuousClock.now < end {
            let input = next()
            remember(input)
            try await body(input)
            count += 1
            if count % 16 == 0 { await Task.yield() }
        }
        print("fuzz \(target): \(count) inputs, no crash")
        return count
    }

    private func remember(_ input: [UInt8]) {
        guard current >= 0 else { return }
        _ = ftruncate(current, 0)
        _ = input.withUnsafeBytes { pwrite(current, $0.baseAddress, $0.count, 0) }
    }

    /// A corpus input with one to four mutations.
    public mutating func next() -> [UInt8] {
        var input = corpus.isEmpty ? [] : corpus[Int(random.next() % UInt64(corpus.count))]
        for _ in 0..<(1 + random.next(in: 0...3)) { mutate(&input) }
        return input
    }

    static let tokens: [String] = [
        "NaN", "-NaN", "Infinity", "-Infinity", "inf", "1e999999", "-1e999999", "1e-999999", "-0", "0.0000000000000000000001",
        "18446744073709551616", "-9223372036854775809", "9223372036854775807", "1.7976931348623157e309", "123456789012345678901234567890",
        "null", "true", "false", "\"\"", "{}", "[]", "\"\\u0000\"", "\"\\ud800\"", "\"\\udfff\"", "\"\\uDBFF\\uDFFF\"", "\\", "\"", ",", ":",
        "\"type\":", "\"event\":", "\"batch\":", "\"userId\":", "\"timestamp\":\"", "\"properties\":{", "\"metadata\":", "\"payload\":{",
        "2024-02-30T25:61:61Z", "0000-00-00", "9999-12-31T23:59:59.999999999Z", "1970-01-01T00:00:00Z", "\u{FEFF}", "\u{202E}",
        " and ", " or ", " not ", " in (", " contains ", "'", "''", "(", ")", ">=", "!=", "<>",
    ]
    static let bytes: [UInt8] = [
        0x00, 0xFF, 0xFE, 0xC0, 0xC1, 0x80, 0xBF, 0xED, 0xF4, 0xF5, 0x7F, 0x22, 0x5C, 0x7B, 0x7D, 0x5B, 0x5D, 0x2C, 0x3A, 0x0A, 0x0D, 0x09,
    ]

    private mutating func mutate(_ input: inout [UInt8]) {
        let position = input.isEmpty ? 0 : Int(random.next() % UInt64(input.count + 1))
        switch random.next() % 10 {
        case 0 where !input.isEmpty:  // flip a bit
            let index = min(position, input.count - 1)
            input[index] ^= UInt8(1 << (random.next() % 8))
        case 1 where !input.isEmpty:  // a byte parsers trip on (invalid UTF-8, structure)
            input[min(position, input.count - 1)] = Self.bytes[Int(random.next() % UInt64(Self.bytes.count))]
        case 2, 3:  // a token: numbers, spellings, keys
            input.insert(contentsOf: Array(Self.tokens[Int(random.next() % UInt64(Self.tokens.count))].utf8), at: position)
        case 4:  // deep nesting
            let depth = random.next(in: 100...20_000)
            let open: UInt8 = random.next() % 2 == 0 ? 0x5B : 0x7B
            let unit: [UInt8] = open == 0x5B ? [0x5B] : Array("{\"a\":".utf8)
            input.insert(contentsOf: Array(Array(repeating: unit, count: depth).joined()), at: position)
        case 5 where !input.isEmpty:  // truncate
            input.removeSubrange(position..<input.count)
        case 6 where input.count > 1:  // delete a range
            let end = min(input.count, position + random.next(in: 1...16))
            input.removeSubrange(min(position, input.count - 1)..<end)
        case 7 where input.count > 1:  // duplicate a range: repeated keys, repeated values
            let start = min(position, input.count - 1)
            let end = min(input.count, start + random.next(in: 1...64))
            input.insert(contentsOf: Array(input[start..<end]), at: end)
        case 8 where !input.isEmpty:  // splice from another corpus input
            let other = corpus[Int(random.next() % UInt64(corpus.count))]
            guard !other.isEmpty else { return }
            let from = Int(random.next() % UInt64(other.count))
            input.insert(contentsOf: other[from..<min(other.count, from + random.next(in: 1...128))], at: position)
        default:  // random bytes
            input.insert(contentsOf: (0..<random.next(in: 1...8)).map { _ in UInt8(truncatingIfNeeded: random.next()) }, at: position)
        }
    }
}
