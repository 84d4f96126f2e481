import CairnCore
import NIOCore

/// Who may read a `/metrics` page (ingest's, and the supervisor's for the whole stack): it lists
/// every app token with its counts, and an HTTP port may face the internet (write keys sit in
/// browsers). With a token (`CAIRN_METRICS_TOKEN`, or ingest's `settings.metrics_token`), a
/// scraper sends `Authorization: Bearer <token>`, from anywhere; without one, only clients on
/// this machine (loopback) are answered.
public struct MetricsAccess: Sendable {
    /// The token's SHA-256: the token itself is not kept, and comparing hashes takes the same time for every guess.
    let tokenHash: String?

    public init(token: String?) {
        tokenHash = token.flatMap { $0.isEmpty ? nil : SHA256.hex(Array($0.utf8)) }
    }

    /// Why a request is refused: its HTTP status (401 asks for the token: answer with
    /// `WWW-Authenticate: Bearer`), the stable code and the message.
    public struct Denial: Sendable, Equatable {
        public var status: Int
        public var code: ErrorCode
        public var message: String
    }

    /// nil when the request may read the metrics.
    public func denial(authorization: String?, peer: SocketAddress?) -> Denial? {
        if let tokenHash {
            guard let header = authorization, header.lowercased().hasPrefix("bearer "),
                SHA256.hex(Array(header.dropFirst("bearer ".count).utf8)) == tokenHash
            else {
                return Denial(status: 401, code: .metricsTokenRequired, message: "send the metrics token as Authorization: Bearer <token>")
            }
            return nil
        }
        guard let peer, Self.isLoopback(peer) else {
            return Denial(
                status: 403,
                code: .metricsLocalOnly,
                message:
                    "/metrics answers only this machine; set CAIRN_METRICS_TOKEN (or ingest's settings.metrics_token) to scrape it from elsewhere"
            )
        }
        return nil
    }

    public static func isLoopback(_ address: SocketAddress) -> Bool {
        guard let ip = address.ipAddress else { return false }
        return ip.hasPrefix("127.") || ip == "::1" || ip.hasPrefix("::ffff:127.")
    }
}
