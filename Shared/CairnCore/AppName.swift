/// App names (`--app`): the tenant every event belongs to, stored as `app_token`.
public enum AppName {
    /// 1–64 characters of letters, digits, `_`, `-` and `.`, starting with a letter or digit,
    /// so a name is safe in file names, logs and URLs.
    public static func validate(_ name: String) throws(EventError) {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty, bytes.count <= 64 else {
            throw EventError(.invalidField, field: "app", "must be 1 to 64 characters, found \(bytes.count)")
        }
        func isAlphanumeric(_ byte: UInt8) -> Bool {
            (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
        }
        guard isAlphanumeric(bytes[0]),
            bytes.allSatisfy({ isAlphanumeric($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") })
        else {
            throw EventError(
                .invalidField,
                field: "app",
                "must be letters, digits, '_', '-' or '.', starting with a letter or digit; found '\(name)'"
            )
        }
    }
}
