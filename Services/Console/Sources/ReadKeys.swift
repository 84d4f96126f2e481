import CairnCore
import CairnPostgres
import CairnReporting
import CairnService
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Synchronization

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
                sessions.keyTag(reader.keyHash) == session.keyTag
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
            try connection.execute("SELECT token, name FROM apps WHERE read_key_hash = $1", [hash]).firstRow.map {
                Reader(token: $0["token"] ?? "", name: $0["name"] ?? "", keyHash: hash)
            }
        }
        // The same answer for a write key as for any other string: whether a string is some
        // app's write key is not this service's to tell.
        guard let found else {
            throw APIRefusal(
                .unauthorized,
                .unknownReadKey,
                "no app has this read key (reports take an app's read key, rk_…; a write key never reads)",
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
        return HTTPAuthorization.basicUsername(header)
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
/// A cookie is `<app token, base64url>.<key tag>.<expiry, unix s>.<nonce>.<MAC>`, the key tag being a MAC
/// of the read key's hash (so nothing in the cookie derives from the key alone): rotating the
/// read key ends every session it opened. Logging out revokes the cookie (``RevokedSessions``).
struct SessionSigner: Sendable {
    let key: SymmetricKey
    let revoked: RevokedSessions
    /// How long a session lasts. Defaults to 12 hours.
    var lifetime: Duration = .seconds(12 * 3600)

    init(key: SymmetricKey, revoked: RevokedSessions = RevokedSessions(path: nil)) {
        self.key = key
        self.revoked = revoked
    }

    /// The key in `directory/console-session.key`, made on first use.
    static func load(directory: String) throws -> SessionSigner {
        let path = directory + "/console-session.key"
        let revoked = RevokedSessions(path: directory + "/revoked-sessions")
        if let data = FileManager.default.contents(atPath: path), data.count == 32 {
            return SessionSigner(key: SymmetricKey(data: data), revoked: revoked)
        }
        let key = SymmetricKey(size: .bits256)
        let bytes = key.withUnsafeBytes { Data($0) }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        guard FileManager.default.createFile(atPath: path + ".tmp", contents: bytes, attributes: [.posixPermissions: 0o600]) else {
            throw ConsoleError(.configuration, "cannot write the console's session key at \(path)")
        }
        try FileManager.default.moveItem(atPath: path + ".tmp", toPath: path)
        return SessionSigner(key: key, revoked: revoked)
    }

    func cookie(for reader: Reader, now: Timestamp) -> String {
        let expiry = now.microseconds / 1_000_000 + Int64(lifetime.components.seconds)
        // A nonce of its own: two logins in the same second are two sessions, and logging one out leaves the other.
        var generator = SystemRandomNumberGenerator()
        let nonce = Base64URL.encode((0..<9).map { _ in UInt8.random(in: 0...255, using: &generator) })
        let body = "\(Base64URL.encode(Array(reader.token.utf8))).\(keyTag(reader.keyHash)).\(expiry).\(nonce)"
        return body + "." + mac(body)
    }

    /// What a session keeps of the read key that opened it.
    func keyTag(_ keyHash: String) -> String { String(mac("key." + keyHash).prefix(16)) }

    /// The session's app token and key tag, when the MAC holds, it has not expired and it was not logged out.
    func verify(_ cookie: String, now: Timestamp) -> (token: String, keyTag: String)? {
        let parts = cookie.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 5 else { return nil }
        let body = parts[0...3].joined(separator: ".")
        guard constantTimeEqual(mac(body), String(parts[4])), let expiry = Int64(parts[2]), expiry > now.microseconds / 1_000_000,
            let tokenBytes = Base64URL.decode(String(parts[0])), let token = String(validating: tokenBytes, as: UTF8.self),
            !revoked.contains(String(parts[4]))
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

/// Sessions ended by logging out, until they would have expired anyway: kept in memory and in a
/// file of the data directory (one `<MAC> <expiry>` line each), so a restart does not revive them.
final class RevokedSessions: Sendable {
    private let path: String?
    private let macs: Mutex<[String: Int64]>

    init(path: String?) {
        self.path = path
        var loaded: [String: Int64] = [:]
        let now = Timestamp.now().microseconds / 1_000_000
        if let path, let text = try? String(contentsOfFile: path, encoding: .utf8) {
            for line in text.split(separator: "\n") {
                let parts = line.split(separator: " ")
                if parts.count == 2, let expiry = Int64(parts[1]), expiry > now { loaded[String(parts[0])] = expiry }
            }
        }
        macs = Mutex(loaded)
    }

    func contains(_ mac: String) -> Bool { macs.withLock { $0[mac] != nil } }

    /// Revokes the cookie whose MAC is `mac` until `expiry` (unix seconds).
    func revoke(_ mac: String, until expiry: Int64) {
        let now = Timestamp.now().microseconds / 1_000_000
        let kept = macs.withLock { macs in
            macs[mac] = expiry
            macs = macs.filter { $0.value > now }
            return macs
        }
        guard let path else { return }
        let text = kept.map { "\($0.key) \($0.value)" }.joined(separator: "\n") + "\n"
        if FileManager.default.createFile(atPath: path + ".tmp", contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]) {
            _ = try? FileManager.default.removeItem(atPath: path)
            try? FileManager.default.moveItem(atPath: path + ".tmp", toPath: path)
        }
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
