/// Write keys: random, shown once, stored as SHA-256 hex.
public enum WriteKey {
    /// 32 characters from a URL-safe alphabet, from the system's random source.
    public static func generate() -> String {
        let alphabet = Array("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789")
        var generator = SystemRandomNumberGenerator()
        return String((0..<32).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &generator)] })
    }

    public static func hash(_ key: String) -> String { SHA256.hex(Array(key.utf8)) }
}
