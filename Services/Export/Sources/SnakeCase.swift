/// Segment's go-snakecase rules: bytes outside `[A-Za-z0-9]` separate
/// words, a lower-to-upper change starts a word, a run of capitals stays one word, and words
/// are lower-cased and joined by one `_`.
public enum SnakeCase {
    public static func convert(_ input: String) -> String {
        let bytes = Array(input.utf8)
        var words: [[UInt8]] = []
        var current: [UInt8] = []
        func isUpper(_ b: UInt8) -> Bool { b >= 0x41 && b <= 0x5A }
        func isLower(_ b: UInt8) -> Bool { b >= 0x61 && b <= 0x7A }
        func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
        var previous: UInt8 = 0
        for byte in bytes {
            defer { previous = byte }
            guard isUpper(byte) || isLower(byte) || isDigit(byte) else {
                if !current.isEmpty {
                    words.append(current)
                    current = []
                }
                continue
            }
            // Only a lower-to-upper change starts a word: a run of capitals stays one
            // (CStringRef → cstring_ref) and digits stay with their neighbours (2FA → 2fa).
            if isUpper(byte), !current.isEmpty, isLower(previous) {
                words.append(current)
                current = []
            }
            current.append(isUpper(byte) ? byte + 32 : byte)
        }
        if !current.isEmpty { words.append(current) }
        return words.map { String(decoding: $0, as: UTF8.self) }.joined(separator: "_")
    }

    /// "survey_module" or "resource center" → "Survey Module" / "Resource Center".
    public static func titleCase(_ input: String) -> String {
        convert(input).split(separator: "_").map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined(separator: " ")
    }
}
