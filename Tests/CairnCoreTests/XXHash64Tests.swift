import CairnCore
import Testing

@Suite struct XXHash64Tests {
    /// The reference implementation's outputs (xxhash 3.x, `xxh64(data, seed)`).
    @Test(arguments: [
        ("", UInt64(0), UInt64(0xEF46_DB37_51D8_E999)),
        ("a", 0, 0xD24E_C4F1_A98C_6E5B),
        ("abc", 0, 0x44BC_2CF5_AD77_0999),
        ("Nobody inspects the spammish repetition", 0, 0xFBCE_A83C_8A37_8BF1),
        ("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", 0, 0x7639_D419_DE61_4EED),
        ("abc", 1, 0xBEA9_CA81_9932_8908),
    ])
    func referenceVectors(input: String, seed: UInt64, expected: UInt64) {
        #expect(XXHash64.hash(input, seed: seed) == expected)
        #expect(XXHash64.hash(Array(input.utf8), seed: seed) == expected)
    }
}
