import CairnCore
import CairnPostgres
import CairnReporting
import Crypto
import Foundation
import HTTPTypes
import Hummingbird

/// The app a request may read, and the hash of the read key that opened it.
struct Reader: Sendable, Equatable {
    var token: String
    var name: String
    var keyHash: String

    /// Whether `app` (a path's app, by name or token) is this reader's.
    func owns(_ app: String) -> Bool { app == token || app == name }
}

/// Who may read: an app's read key, sent as `Authorization: Bearer <key>` (or as the Basic
/// username, as Segment's clients send write keys), or the console's signed session cookie.
///
/// Keys are looked up by their SHA-256 on every request, so a rotated key stops reading at once;
/// neither keys nor their hashes are logged.
struct ReadKeys: Sendable {
    let runner: ReportRunner
    let sessions: SessionSigner

    /// The session cookie's name.
    static let cookieName = "cairn_session"

    /// The reader `request` authenticates as.
    /// - Throws: ``APIRefusal`` 401 `missing_read_key` or `unknown_read_key`.
    func reader(for request: Request) async throws -> Reader {
        if let key = Self.presentedKey(request.headers[.authorization]) {
            return try await reader(forKey: key)
        }
        if let cookie = Self.cookie(Self.cookieName, in: request.headers[values: .cookie]) {
            guard let session = sessions.verify(cookie, now: .now()), let reader = try await reader(token: session.token),
                reader.keyHash.hasPrefix(session.keyHashPrefix)
            else {
                throw APIRefusal(.unauthorized, .unknownReadKey, "the console session has expired or its read key was rotated; log in again")
            }
            return reader
        }
        throw APIRefusal(
            .unauthorized,
            .missingReadKey,
            "send the app's read key as Authorization: Bearer <key> (`cairn apps create` prints it, `cairn apps rotate-key --read` issues one)",
            headers: [.wwwAuthenticate: "Bearer"]
        )
    }

    /// The reader whose read key is `key`.
    func reader(forKey key: String) async throws -> Reader {
        let hash = WriteKey.hash(key)
        let found = try await runner.withConnection { connection in
            let row = try connection.execute("SELECT token, name, read_key_hash FROM apps WHERE read_key_hash = $1", [hash]).firstRow
            if let row { return Reader(token: row["token"] ?? "", name: row["name"] ?? "", keyHash: hash) as Reader? }
            // A write key never reads: say so, rather than just "unknown".
            let isWriteKey = try connection.execute("SELECT 1 FROM apps WHERE write_key_hash = $1", [hash]).firstRow != nil
            return isWriteKey ? Reader(token: "", name: "", keyHash: "") : nil
        }
        guard let found else {
            throw APIRefusal(.unauthorized, .unknownReadKey, "no app has this read key", headers: [.wwwAuthenticate: "Bearer"])
        }
        guard !found.token.isEmpty else {
            throw APIRefusal(
                .unauthorized,
                .unknownReadKey,
                "this is a write key, which only sends events; reports take the app's read key",
                headers: [.wwwAuthenticate: "Bearer"]
            )
        }
        return found
    }

    /// The app with `token` and its current read key's hash, or nil.
    func reader(token: String) async throws -> Reader? {
        try await runner.withConnection { connection in
            guard let row = try connection.execute("SELECT token, name, read_key_hash FROM apps WHERE token = $1", [token]).firstRow,
                let hash = row["read_key_hash"]
            else { return nil }
            return Reader(token: row["token"] ?? "", name: row["name"] ?? "", keyHash: hash)
        }
    }

    /// Refuses a reader the path's app is not theirs.
    static func authorize(_ reader: Reader, app: String) throws(APIRefusal) {
        guard reader.owns(app) else {
            throw APIRefusal(.forbidden, .forbiddenApp, "this read key reads app '\(reader.name)', not '\(app)'")
        }
    }

    /// The key in `Authorization: Bearer <key>` or `Basic base64(key:)`.
    static func presentedKey(_ header: String?) -> String? {
        guard let header else { return nil }
        let lowered = header.lowercased()
        if lowered.hasPrefix("bearer ") {
            let key = header.dropFirst("bearer ".count).trimmingCharacters(in: .whitespaces)
            return key.isEmpty ? nil : key
        }
        if lowered.hasPrefix("basic "), let data = Data(base64Encoded: header.dropFirst("basic ".count).trimmingCharacters(in: .whitespaces)),
            let text = String(data: data, encoding: .utf8)
        {
            let user = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            return user.isEmpty ? nil : user
        }
        return nil
    }

    /// The value of cookie `name` in the request's `Cookie` headers.
    static func cookie(_ name: String, in headers: [String]) -> String? {
        for header in headers {
            for part in header.split(separator: ";") {
                let pair = part.split(separator: "=", maxSplits: 1)
                if pair.count == 2, pair[0].trimmingCharacters(in: .whitespaces) == name {
                    return pair[1].trimmingCharacters(in: .whitespaces)
                }
            }
        }
        return nil
    }
}

/// Signs console session cookies and CSRF tokens with HMAC-SHA256 under a key kept in the data
/// directory (0600), so sessions outlive a restart of the reporting service.
///
/// A cookie is `<app token, base64url>.<first 16 hex digits of the read key's hash>.<expiry, unix s>.<MAC>`:
/// rotating the read key ends every session it opened.
struct SessionSigner: Sendable {
    let key: SymmetricKey
    /// How long a session lasts. Defaults to 12 hours.
    var lifetime: Duration = .seconds(12 * 3600)

    init(key: SymmetricKey) { self.key = key }

    /// The key in `directory/console-session.key`, made on first use.
    static func load(directory: String) throws -> SessionSigner {
        let path = directory + "/console-session.key"
        if let data = FileManager.default.contents(atPath: path), data.count == 32 {
            return SessionSigner(key: SymmetricKey(data: data))
        }
        let key = SymmetricKey(size: .bits256)
        let bytes = key.withUnsafeBytes { Data($0) }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        guard FileManager.default.createFile(atPath: path + ".tmp", contents: bytes, attributes: [.posixPermissions: 0o600]) else {
            throw ConsoleError(.configuration, "cannot write the console's session key at \(path)")
        }
        try FileManager.default.moveItem(atPath: path + ".tmp", toPath: path)
        return SessionSigner(key: key)
    }

    func cookie(for reader: Reader, now: Timestamp) -> String {
        let expiry = now.microseconds / 1_000_000 + Int64(lifetime.components.seconds)
        let body = "\(Base64URL.encode(Array(reader.token.utf8))).\(reader.keyHash.prefix(16)).\(expiry)"
        return body + "." + mac(body)
    }

    /// The session's app token and key-hash prefix, when the MAC holds and it has not expired.
    func verify(_ cookie: String, now: Timestamp) -> (token: String, keyHashPrefix: String)? {
        let parts = cookie.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        let body = parts[0...2].joined(separator: ".")
        guard constantTimeEqual(mac(body), String(parts[3])), let expiry = Int64(parts[2]), expiry > now.microseconds / 1_000_000,
            let tokenBytes = Base64URL.decode(String(parts[0])), let token = String(validating: tokenBytes, as: UTF8.self)
        else { return nil }
        return (token, String(parts[1]))
    }

    /// The CSRF token of a session: a MAC of its cookie, so it needs no storage and dies with it.
    func csrfToken(forCookie cookie: String) -> String { mac("csrf." + cookie) }

    func mac(_ text: String) -> String {
        Base64URL.encode(Array(HMAC<Crypto.SHA256>.authenticationCode(for: Array(text.utf8), using: key)))
    }

    func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8)
        let y = Array(b.utf8)
        guard x.count == y.count else { return false }
        return zip(x, y).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }
}

/// Base64 with the URL-safe alphabet and no padding (RFC 4648 §5), for cookie values.
enum Base64URL {
    static func encode(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func decode(_ text: String) -> [UInt8]? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        return Data(base64Encoded: base64).map(Array.init)
    }
}
