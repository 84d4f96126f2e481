import CairnCore
import Crypto
import Foundation

/// AWS Signature Version 4 for S3 requests, with swift-crypto's HMAC-SHA256 and SHA-256: the
/// canonical request, the string to sign, the derived signing key and the `Authorization`
/// header. Any S3-compatible store (AWS, MinIO, Ceph, R2, moto) checks the same.
struct SignatureV4: Sendable {
    var accessKeyId: String
    var secretAccessKey: String
    var region: String
    var service = "s3"

    /// The SHA-256 of a payload, as `x-amz-content-sha256` carries it.
    static func payloadHash(_ payload: [UInt8]) -> String {
        hex(Crypto.SHA256.hash(data: payload))
    }

    /// The headers to send: `headers` (lower-case names) plus `x-amz-date`,
    /// `x-amz-content-sha256` and `authorization`. `path` is the raw path (encoded here) and
    /// `query` the raw query items.
    func sign(
        method: String,
        host: String,
        path: String,
        query: [(String, String)],
        headers: [String: String],
        payloadHash: String,
        at date: Date
    ) -> [String: String] {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        let amzDate = formatter.string(from: date)
        let day = String(amzDate.prefix(8))
        var all = headers
        all["host"] = host
        all["x-amz-date"] = amzDate
        all["x-amz-content-sha256"] = payloadHash
        let names = all.keys.map { $0.lowercased() }.sorted()
        let canonicalHeaders = names.map { "\($0):\(all[$0]!.trimmingCharacters(in: .whitespaces))\n" }.joined()
        let signedHeaders = names.joined(separator: ";")
        let canonicalQuery = query.map { (Self.encode($0.0), Self.encode($0.1)) }.sorted { $0 < $1 }.map { "\($0.0)=\($0.1)" }
            .joined(separator: "&")
        let canonicalRequest = [
            method, Self.encode(path, keepingSlashes: true), canonicalQuery, canonicalHeaders, signedHeaders, payloadHash,
        ].joined(separator: "\n")
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let stringToSign = ["AWS4-HMAC-SHA256", amzDate, scope, Self.payloadHash(Array(canonicalRequest.utf8))].joined(separator: "\n")
        var key = SymmetricKey(data: Array("AWS4\(secretAccessKey)".utf8))
        for part in [day, region, service, "aws4_request"] {
            key = SymmetricKey(data: Array(HMAC<Crypto.SHA256>.authenticationCode(for: Array(part.utf8), using: key)))
        }
        let signature = Self.hex(HMAC<Crypto.SHA256>.authenticationCode(for: Array(stringToSign.utf8), using: key))
        all["authorization"] = "AWS4-HMAC-SHA256 Credential=\(accessKeyId)/\(scope), SignedHeaders=\(signedHeaders), Signature=\(signature)"
        return all
    }

    /// URI encoding as SigV4 wants it: every byte but the unreserved `A-Z a-z 0-9 - _ . ~`
    /// (and `/` in a path) as `%XX`, upper-case.
    static func encode(_ text: String, keepingSlashes: Bool = false) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
                out.append(Character(UnicodeScalar(byte)))
            case UInt8(ascii: "/") where keepingSlashes:
                out.append("/")
            default:
                out += String(format: "%%%02X", byte)
            }
        }
        return out
    }

    static func hex(_ bytes: some Sequence<UInt8>) -> String {
        CairnCore.SHA256.hexString(Array(bytes))
    }
}
