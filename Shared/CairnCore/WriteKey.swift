/// An app's keys: random, shown once, stored as SHA-256 hex. A write key sends events; a read
/// key (``readKeyPrefix`` first, so that people and secret scanners tell them apart) reads
/// reports. Neither does the other's work.
public enum WriteKey {
    /// What every read key starts with.
    public static let readKeyPrefix = "rk_"

    /// 32 characters from a URL-safe alphabet, from the system's random source.
    public static func generate() -> String {
        let alphabet = Array("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789")
        var generator = SystemRandomNumberGenerator()
        return String((0..<32).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &generator)] })
    }

    /// A new read key: ``readKeyPrefix`` and 32 random characters.
    public static func generateReadKey() -> String { readKeyPrefix + generate() }

    public static func hash(_ key: String) -> String { SHA256.hex(Array(key.utf8)) }
}
