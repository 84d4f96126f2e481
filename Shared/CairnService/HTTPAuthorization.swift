import Foundation

/// Keys sent in an `Authorization` header, read one way by every HTTP listener.
public enum HTTPAuthorization {
    /// The username of `Authorization: Basic base64(key:)` (the trailing colon optional), as
    /// Segment's clients send write keys; nil when the header is not Basic or names no user.
    public static func basicUsername(_ header: String?) -> String? {
        guard let header, header.count > 6, header.prefix(6).lowercased() == "basic " else { return nil }
        guard let data = Data(base64Encoded: String(header.dropFirst(6)).trimmingCharacters(in: .whitespaces)),
            let text = String(data: data, encoding: .utf8)
        else { return nil }
        let user = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
        return user.isEmpty ? nil : user
    }
}
