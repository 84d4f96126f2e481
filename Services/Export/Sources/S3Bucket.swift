import AsyncHTTPClient
import CairnCore
import Foundation
import NIOHTTP1

/// One bucket of an S3-compatible store, addressed path-style (`endpoint/bucket/key`, which
/// AWS, MinIO, Ceph, R2 and moto all take), every request signed with ``SignatureV4``. Only
/// what a multipart upload needs: create, upload a part, complete, abort, and list the
/// incomplete uploads under a prefix.
struct S3Bucket: Sendable {
    /// `scheme://host[:port]`, no path.
    let endpoint: String
    let host: String
    let bucket: String
    let signer: SignatureV4
    var retry: RetryPolicy

    init(endpoint: String, bucket: String, signer: SignatureV4, retry: RetryPolicy) throws(ExportError) {
        guard let url = URL(string: endpoint), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
            let host = url.host, url.path.isEmpty || url.path == "/"
        else {
            throw ExportError(.invalidDestination, field: "endpoint", "'\(endpoint)' is not an http:// or https:// origin (no path)")
        }
        self.host = host + (url.port.map { ":\($0)" } ?? "")
        self.endpoint = "\(scheme)://\(self.host)"
        self.bucket = bucket
        self.signer = signer
        self.retry = retry
    }

    /// One signed request, retried as ``RetryPolicy`` says.
    func send(_ method: HTTPMethod, key: String?, query: [(String, String)] = [], body: [UInt8] = []) async -> DeliveryOutcome {
        let path = "/" + bucket + (key.map { "/" + $0 } ?? "")
        let encodedQuery = query.map { "\(SignatureV4.encode($0.0))=\(SignatureV4.encode($0.1))" }.joined(separator: "&")
        let url = endpoint + SignatureV4.encode(path, keepingSlashes: true) + (encodedQuery.isEmpty ? "" : "?" + encodedQuery)
        let hash = SignatureV4.payloadHash(body)
        return await HTTPPoster.post(body, to: url, method: method, retry: retry, using: .shared) { _ in
            signer.sign(method: method.rawValue, host: host, path: path, query: query, headers: [:], payloadHash: hash, at: Date())
                .filter { $0.key != "host" }.map { ($0.key, $0.value) }
        }
    }

    /// Starts a multipart upload; returns its id.
    func createMultipartUpload(key: String, contentType: String) async throws(ExportError) -> String {
        let outcome = await send(.POST, key: key, query: [("uploads", "")])
        guard outcome.delivered, let id = Self.element("UploadId", in: outcome.detail).first else {
            throw Self.failure("starting the upload of \(key)", outcome)
        }
        return id
    }

    /// Uploads part `number` (from 1; every part but the last at least 5 MiB); returns its ETag.
    func uploadPart(key: String, uploadId: String, number: Int, bytes: [UInt8]) async throws(ExportError) -> String {
        let outcome = await send(.PUT, key: key, query: [("partNumber", String(number)), ("uploadId", uploadId)], body: bytes)
        guard outcome.delivered, let tag = outcome.headers.first(where: { $0.0.lowercased() == "etag" })?.1 else {
            throw Self.failure("uploading part \(number) of \(key)", outcome)
        }
        return tag
    }

    /// Completes the upload: only now is the object visible, whole, under its key.
    func completeMultipartUpload(key: String, uploadId: String, parts: [String]) async throws(ExportError) {
        var xml = "<CompleteMultipartUpload>"
        for (index, tag) in parts.enumerated() {
            xml += "<Part><PartNumber>\(index + 1)</PartNumber><ETag>\(Self.escape(tag))</ETag></Part>"
        }
        xml += "</CompleteMultipartUpload>"
        let outcome = await send(.POST, key: key, query: [("uploadId", uploadId)], body: Array(xml.utf8))
        // S3 may answer 200 and still fail the completion in the body.
        guard outcome.delivered, !outcome.detail.contains("<Error>") else { throw Self.failure("completing \(key)", outcome) }
    }

    func abortMultipartUpload(key: String, uploadId: String) async {
        _ = await send(.DELETE, key: key, query: [("uploadId", uploadId)])
    }

    /// Uploads begun under `prefix` and never completed (a process killed mid-object).
    func incompleteUploads(prefix: String) async throws(ExportError) -> [(key: String, uploadId: String)] {
        let outcome = await send(.GET, key: nil, query: [("uploads", ""), ("prefix", prefix)])
        guard outcome.delivered else { throw Self.failure("listing incomplete uploads", outcome) }
        return zip(Self.element("Key", in: outcome.detail), Self.element("UploadId", in: outcome.detail)).map { ($0, $1) }
    }

    /// The texts of every `<name>…</name>` in `xml`, unescaped.
    static func element(_ name: String, in xml: String) -> [String] {
        var found: [String] = []
        var rest = Substring(xml)
        while let open = rest.range(of: "<\(name)>"), let close = rest[open.upperBound...].range(of: "</\(name)>") {
            found.append(unescape(String(rest[open.upperBound..<close.lowerBound])))
            rest = rest[close.upperBound...]
        }
        return found
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
            .replacingOccurrences(of: "\"", with: "&quot;")
    }

    static func unescape(_ text: String) -> String {
        text.replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
            .replacingOccurrences(of: "&amp;", with: "&")
    }

    static func failure(_ doing: String, _ outcome: DeliveryOutcome) -> ExportError {
        // One line, whatever the store answered (an HTML error page, indented XML).
        let answer = outcome.detail.prefix(500).split(whereSeparator: \.isWhitespace).joined(separator: " ")
        return ExportError(
            .objectStoreFailed,
            "\(doing): \(outcome.status.map { "HTTP \($0)" } ?? "no response") after \(outcome.attempts) attempt\(outcome.attempts == 1 ? "" : "s"): \(answer)"
        )
    }
}
